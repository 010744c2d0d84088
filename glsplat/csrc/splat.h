// The splat (DESIGN.md steps 5-8) one item at a time, shared by the CPU (row bands in
// splat_cpu.h) and CUDA (one thread per item in splat_cuda.cu) kernels: where a sample is
// splatted from (its clip-space point, blended from its face's corners, plus an optional
// image-space offset), its 3x3 Gaussian taps, their accumulation at a target pixel into the
// S+ / S0 / S- buffers, the normalization and back-to-front composite, and the matching
// backward steps.
//
// All passes are gathers, so no two items write to the same place: the forward pass works per
// target pixel and pulls the taps of its 3x3 source neighbors; the backward pass turns the
// image gradient into per-buffer gradients at every target pixel, then works per source sample
// and pulls the gradients of its 3x3 targets. Where the taps and those gradients are kept
// (a table, a ring of rows) is the caller's choice, reached through small accessor objects.
// Only the clip-space vertices' gradient is a scatter (many samples share a vertex): how it
// is summed (per-thread copies, atomics) is the caller's too.
//
// The helpers take and return values, not arrays, so that the CPU's row loops, which call them
// once per column, vectorise.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define GLSPLAT_HD __host__ __device__
#else
#define GLSPLAT_HD
#endif

namespace glsplat {

constexpr int kBuffers = 3;      // S+, S0, S-
constexpr int kTapFactors = 6;   // a sample's separable tap factors: gx[3], then gy[3] with alpha and scale
                                 // folded in; its 9 tap weights are the products gy[dy] * gx[dx]
constexpr int kFactorsAndRgb = kTapFactors + 3;  // what the forward gather reads of a sample: then r, g, b

// On the host, expf as Cephes' polynomial (within 1.1 ulp over [-87, 88]): libm's expf is a call that
// keeps the CPU splat's loops scalar, and its exponentials were a fifth of the CPU's time.
GLSPLAT_HD inline float exp_of(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  x = fminf(fmaxf(x, -87.0f), 88.0f);  // 2^n stays a normal float
  // n = round(x / ln 2) by adding and subtracting 1.5 * 2^23; not floorf, which does not vectorise
  const float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // x = n ln 2 + r, |r| <= ln 2 / 2
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;  // 2^n
  float two_n;
  memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
#endif
}
GLSPLAT_HD inline double exp_of(double x) { return exp(x); }

// An image-space vector in pixels, x right, y down: a sample's offset from its pixel's center,
// or the gradient with respect to it.
template <typename T>
struct Vec2 {
  T x, y;
};

// RGBA: a straight color, or premultiplied sums whose a is the taps' weight, or a gradient.
template <typename T>
struct Rgba {
  T r, g, b, a;
};

// The parts of a clip-space point that its image position depends on (not z), or their gradient.
template <typename T>
struct ClipXYW {
  T x, y, w;
};

// ---------------------------------------------------------------------------------------------
// Step 5: where a sample comes from.

// The three corners of a covered sample's face: their rows in the flattened [1 or B, V, C]
// vertex data and their barycentric weights (b0, b1, 1 - b0 - b1).
template <typename T>
struct Corners {
  int64_t row[3];
  T weight[3];
};

// The corner gather of `interpolate` and the splat: sample n of the [B, K, H, W] raster.
template <typename T>
struct FaceCorners {
  const int32_t* tri_id;  // [B, K, H, W] face + 1, 0 on background
  const float* bary;      // sample n's (b0, b1) at bary[n * bary_stride]
  int64_t bary_stride;    // 2 for a contiguous tensor, 4 for a view into the G-buffer
  const int64_t* faces;   // [F, 3], in range (checked before the kernel)
  int64_t V, per_image;   // vertices per mesh, samples per image (K * H * W)
  bool shared;            // one set of vertices for every image

  GLSPLAT_HD Corners<T> operator()(int64_t n) const {
    const int64_t base = shared ? 0 : (n / per_image) * V;
    const int64_t* f = faces + 3 * int64_t(tri_id[n] - 1);
    const T b0 = bary[n * bary_stride], b1 = bary[n * bary_stride + 1];
    return {{base + f[0], base + f[1], base + f[2]}, {b0, b1, T(1) - b0 - b1}};
  }
};

// A covered sample's clip-space point: the rasterized vertices [1 or B, V, 4] blended with its
// barycentrics (interpolate, fused into the splat). Its gradient goes to the corners with the
// same weights: clip_grad(corners, g) gives what corner k's row adds, weight[k] * g.
template <typename T>
struct ClipPoints {
  const T* clip;  // [1 or B, V, 4]
  FaceCorners<T> corners;

  GLSPLAT_HD ClipXYW<T> point(const Corners<T>& c) const {
    ClipXYW<T> p{T(0), T(0), T(0)};
    for (int k = 0; k < 3; ++k) {
      const T* v = clip + 4 * c.row[k];
      p = {p.x + c.weight[k] * v[0], p.y + c.weight[k] * v[1], p.w + c.weight[k] * v[3]};
    }
    return p;
  }
  GLSPLAT_HD ClipXYW<T> point(int64_t n) const { return point(corners(n)); }

  // The gradient g of a sample's point, shared out to its corners: add(e, v) adds v to element e
  // of the flattened clip gradient (z gets none).
  template <typename Add>
  GLSPLAT_HD static void scatter(const Corners<T>& c, ClipXYW<T> g, const Add& add) {
    for (int k = 0; k < 3; ++k) {
      const T w = c.weight[k];
      add(4 * c.row[k], w * g.x);
      add(4 * c.row[k] + 1, w * g.y);
      add(4 * c.row[k] + 3, w * g.w);
    }
  }
};

// The per-sample inputs, packed [N, ...] over the N covered samples in raster order (image,
// layer, row, column: Raster.index's order); `index` is a sample's place in that order.
template <typename T>
struct Packed {
  const T* colors;   // [N, 4] straight RGBA
  const T* offsets;  // [N, 2] image-space offsets (x, y) in pixels, added to each sample's position; null: none

  GLSPLAT_HD Rgba<T> color(int64_t index) const {
    const T* c = colors + 4 * index;
    return {c[0], c[1], c[2], c[3]};
  }
  GLSPLAT_HD Vec2<T> offset(int64_t index) const {
    return offsets ? Vec2<T>{offsets[2 * index], offsets[2 * index + 1]} : Vec2<T>{T(0), T(0)};
  }
};

// The glued samples (glsplat/silhouette.py's Glue) as the backward pass takes them: count of them,
// ascending by packed index (rows[count]); each one's contour edge's ends (ends[2 * i], ends[2 * i + 1],
// vertex indices within its mesh) and parameter t[i]. count 0: none.
struct GlueRows {
  const int64_t* rows;
  const int64_t* ends;
  const double* t;
  int64_t count;

  // The first glued sample whose packed index is index or more (count: none).
  GLSPLAT_HD int64_t first(int64_t index) const {
    int64_t lo = 0, hi = count;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (rows[mid] < index) lo = mid + 1; else hi = mid;
    }
    return lo;
  }
};

// ---------------------------------------------------------------------------------------------
// Steps 6-7 for one buffer at one target pixel, and their derivatives.

// Step 6: a tap of weight w (Gaussian times alpha) adds w * (r, g, b, 1) to a buffer's sums.
template <typename T>
GLSPLAT_HD inline Rgba<T> add_tap(Rgba<T> sums, T w, T r, T g, T b) {
  return {sums.r + w * r, sums.g + w * g, sums.b + w * b, sums.a + w};
}

// Step 7: a buffer is its sums divided by max(weight, 1), the weight being the sums' a.
template <typename T>
GLSPLAT_HD inline Rgba<T> normalized(Rgba<T> sums) {
  const T norm = sums.a > T(1) ? sums.a : T(1);
  return {sums.r / norm, sums.g / norm, sums.b / norm, sums.a / norm};
}

// Its backward: d(loss)/d(sums) from g = d(loss)/d(buffer), the buffer buf and its weight.
// Where weight >= 1, d(buf)/d(sums) = (I - buf e_a^T) / weight (torch's clamp passes the
// gradient at weight == 1 too); below 1 it is the identity.
template <typename T>
GLSPLAT_HD inline Rgba<T> normalized_gradient(Rgba<T> g, Rgba<T> buf, T weight) {
  if (!(weight >= T(1))) return g;  // a branch: most pixels' S+ and S- are empty, no division there
  const T inv = T(1) / weight;
  const T dot = g.r * buf.r + g.g * buf.g + g.b * buf.b + g.a * buf.a;
  return {g.r * inv, g.g * inv, g.b * inv, g.a * inv - dot * inv};
}

// Premultiplied "over": top over below.
template <typename T>
GLSPLAT_HD inline Rgba<T> over(Rgba<T> top, Rgba<T> below) {
  const T t = T(1) - top.a;
  return {top.r + t * below.r, top.g + t * below.g, top.b + t * below.b, top.a + t * below.a};
}

// ---------------------------------------------------------------------------------------------
// Step 8's pull: what a source sample gathers from its 3x3 targets going backwards.

// The loss's derivatives w.r.t. a sample's position (x, y, in pixels: also those w.r.t. its
// offset) and its straight color.
template <typename T>
struct Pull {
  Vec2<T> position;
  Rgba<T> color;
};

// What the edge glue adds to the gradients of a glued sample's clip-space point and of its contour
// edge's two ends (see Splat::glued).
template <typename T>
struct Glued {
  ClipXYW<T> point, a, b;
};

// The pull through the perspective divide: the gradient w.r.t. a clip-space point's x, y, w of its
// image position x = (X / w + 1) half_w, y = (1 - Y / w) half_h (pixels, y down; a constant shift
// changes nothing), given g, the gradient w.r.t. that position.
template <typename T>
GLSPLAT_HD inline ClipXYW<T> pulled_through_divide(ClipXYW<T> p, Vec2<T> g, T half_w, T half_h) {
  const T inv_w = T(1) / p.w;
  return {g.x * half_w * inv_w, -g.y * half_h * inv_w, (-g.x * half_w * p.x + g.y * half_h * p.y) * inv_w * inv_w};
}

// Where a sample's gradients go, packed like its inputs (see Packed).
template <typename T>
struct PackedGrads {
  T* colors;   // [N, 4]
  T* offsets;  // [N, 2]; null: not wanted

  GLSPLAT_HD void set(int64_t index, const Pull<T>& a) const {
    T* c = colors + 4 * index;
    c[0] = a.color.r;
    c[1] = a.color.g;
    c[2] = a.color.b;
    c[3] = a.color.a;
    if (offsets) {
      offsets[2 * index] = a.position.x;
      offsets[2 * index + 1] = a.position.y;
    }
  }
};

template <typename T>
struct Splat {
  int64_t B, K, H, W;
  const int32_t* tri_id;  // [B, K, H, W] face + 1, 0 on background
  const float* depth;     // window depth of sample n at depth[n * depth_stride], 1 on background
  int64_t depth_stride;   // 1 for a contiguous tensor, 4 for a view into the G-buffer
  T scale, inv_two_sigma2, inv_sigma2;
  T half_w, half_h;       // W / 2, H / 2

  GLSPLAT_HD int64_t sample(int64_t b, int64_t k, int64_t i, int64_t j) const { return ((b * K + k) * H + i) * W + j; }
  GLSPLAT_HD int64_t pixel(int64_t b, int64_t i, int64_t j) const { return (b * H + i) * W + j; }
  GLSPLAT_HD int64_t plane() const { return B * H * W * 4; }
  GLSPLAT_HD bool covered(int64_t n) const { return tri_id[n] > 0; }

  GLSPLAT_HD float z(int64_t b, int64_t k, int64_t i, int64_t j) const {
    if (i < 0 || i >= H || j < 0 || j >= W) return 1.0f;  // outside the image: background
    return depth[sample(b, k, i, j) * depth_stride];
  }

  // The layer of source pixel p = (pi, pj) that lies on the surface seen at target q = (qi, qj);
  // sample layer l goes to S+ (0) if s > l, S0 (1) if s == l, S- (2) if s < l.
  GLSPLAT_HD int64_t surface_layer(int64_t b, int64_t pi, int64_t pj, int64_t qi, int64_t qj) const {
    if (K == 1) return 0;  // one layer: every tap lands on the surface (S0)
    const float zp0 = z(b, 0, pi, pj), zq0 = z(b, 0, qi, qj);
    int64_t a = 0, bl = 0;
    float da = INFINITY, db = INFINITY;
    for (int64_t l = 0; l < K; ++l) {
      const float dpa = fabsf(z(b, l, pi, pj) - zq0);
      if (dpa < da) { da = dpa; a = l; }
      const float dqb = fabsf(z(b, l, qi, qj) - zp0);
      if (dqb < db) { db = dqb; bl = l; }
    }
    return db < da ? -bl : a;
  }

  GLSPLAT_HD static int buffer_of(int64_t s, int64_t l) { return s > l ? 0 : (s == l ? 1 : 2); }

  // Step 5's last part: the offset of a sample at pixel (i, j) with clip-space point p and
  // image-space offset shift from that pixel's center, in pixels, with x = (ndc_x + 1) W / 2
  // and y = (1 - ndc_y) H / 2 (0 in value for a zero shift; the gradient path).
  GLSPLAT_HD Vec2<T> offset(ClipXYW<T> p, Vec2<T> shift, int64_t i, int64_t j) const {
    return {(p.x / p.w + T(1)) * half_w - (T(j) + T(0.5)) + shift.x,
            (T(1) - p.y / p.w) * half_h - (T(i) + T(0.5)) + shift.y};
  }

  // Step 6's Gaussian separates: tap (dy, dx) weighs gy[dy] * gx[dx] (scale folded into gy), with
  // the taps along one axis at d = -1, 0, 1 in before, center, after: exp(-(d - o)^2 / (2 sigma^2)),
  // three exponentials (factoring them into two overflows and underflows together, far from
  // the pixel, into a wrong finite weight or NaN).
  struct Axis {
    T before, center, after;
  };
  GLSPLAT_HD static T tap(Axis a, int d) { return d < 0 ? a.before : (d == 0 ? a.center : a.after); }
  GLSPLAT_HD Axis axis(T o, T factor) const {
    const T before = T(-1) - o, after = T(1) - o;
    return {factor * exp_of(-before * before * inv_two_sigma2), factor * exp_of(-o * o * inv_two_sigma2),
            factor * exp_of(-after * after * inv_two_sigma2)};
  }

  // The kTapFactors of a covered sample with offset o from its pixel's center: gx, and gy with
  // the scale and the sample's alpha folded in.
  struct Factors {
    Axis x, y;
  };
  GLSPLAT_HD Factors tap_factors(Vec2<T> o, T alpha) const {
    const Axis gx = axis(o.x, T(1)), gy = axis(o.y, scale);
    return {gx, {gy.before * alpha, gy.center * alpha, gy.after * alpha}};
  }

  // Step 6 at target pixel q = (b, qi, qj): the unnormalized S+/S0/S- sums. `record(n, l, pi, pj)`
  // gives the kFactorsAndRgb of covered sample n (layer l of source pixel (pi, pj)).
  template <typename Records>
  GLSPLAT_HD void accumulate(int64_t b, int64_t qi, int64_t qj, const Records& record, Rgba<T> sums[kBuffers]) const {
    for (int k = 0; k < kBuffers; ++k) sums[k] = {T(0), T(0), T(0), T(0)};
    for (int64_t pi = qi - 1; pi <= qi + 1; ++pi) {
      if (pi < 0 || pi >= H) continue;
      for (int64_t pj = qj - 1; pj <= qj + 1; ++pj) {
        if (pj < 0 || pj >= W || !covered(sample(b, 0, pi, pj))) continue;
        const int64_t s = surface_layer(b, pi, pj, qi, qj);
        for (int64_t l = 0; l < K; ++l) {
          const int64_t n = sample(b, l, pi, pj);
          if (!covered(n)) break;  // layers are packed: nothing behind a background layer
          const T* t = record(n, l, pi, pj);
          const T* c = t + kTapFactors;
          Rgba<T>& a = sums[buffer_of(s, l)];
          a = add_tap(a, t[qj - pj + 1] * t[3 + qi - pi + 1], c[0], c[1], c[2]);
        }
      }
    }
  }

  // Step 7: normalize each buffer into buf and composite back to front (S- under S0 under S+).
  GLSPLAT_HD static Rgba<T> resolve(const Rgba<T> sums[kBuffers], Rgba<T> buf[kBuffers]) {
    Rgba<T> out{T(0), T(0), T(0), T(0)};
    for (int k = kBuffers - 1; k >= 0; --k) {
      buf[k] = normalized(sums[k]);
      out = over(buf[k], out);
    }
    return out;
  }

  // Backward of step 7 at a target pixel: the gradients ga w.r.t. the unnormalized sums, given
  // the sums, the image gradient g_out and the buffers' gradients g_buf[k * buf_stride + c];
  // either gradient may be null (absent).
  GLSPLAT_HD static void sums_gradient(const Rgba<T> sums[kBuffers], const T* g_out, const T* g_buf,
                                       int64_t buf_stride, Rgba<T> ga[kBuffers]) {
    Rgba<T> buf[kBuffers];
    resolve(sums, buf);
    const Rgba<T>& front = buf[0];
    const Rgba<T>& surface = buf[1];
    const Rgba<T>& back = buf[2];
    // out = F over M,  M = S over Bk: out = F + (1 - F.a) M,  M = S + (1 - S.a) Bk.
    const Rgba<T> g = g_out ? Rgba<T>{g_out[0], g_out[1], g_out[2], g_out[3]} : Rgba<T>{T(0), T(0), T(0), T(0)};
    const Rgba<T> middle = over(surface, back);
    const T tf = T(1) - front.a, ts = T(1) - surface.a;
    const Rgba<T> g_middle{tf * g.r, tf * g.g, tf * g.b, tf * g.a};
    Rgba<T> gb[kBuffers] = {
        {g.r, g.g, g.b, g.a - (g.r * middle.r + g.g * middle.g + g.b * middle.b + g.a * middle.a)},
        {g_middle.r, g_middle.g, g_middle.b,
         g_middle.a - (g_middle.r * back.r + g_middle.g * back.g + g_middle.b * back.b + g_middle.a * back.a)},
        {ts * g_middle.r, ts * g_middle.g, ts * g_middle.b, ts * g_middle.a}};
    for (int k = 0; k < kBuffers; ++k) {
      if (g_buf) {
        const T* e = g_buf + k * buf_stride;
        gb[k] = {gb[k].r + e[0], gb[k].g + e[1], gb[k].b + e[2], gb[k].a + e[3]};
      }
      ga[k] = normalized_gradient(gb[k], buf[k], sums[k].a);
    }
  }

  // Backward of steps 5-6, one tap: a source sample of straight color c gathers from a target
  // whose buffer has gradient g; gauss is the tap's Gaussian, e = (its center - the sample's position).
  GLSPLAT_HD Pull<T> pull(Pull<T> a, T gauss, T ex, T ey, Rgba<T> c, Rgba<T> g) const {
    // d(loss)/d(tap weight w), where the tap adds w * (r, g, b, 1) and w = gauss * alpha
    const T g_w = g.r * c.r + g.g * c.g + g.b * c.b + g.a;
    const T w = gauss * c.a;
    // d(gauss)/d(position) = gauss * (center - position) / sigma^2
    const T g_position = w * g_w * inv_sigma2;
    return {{a.position.x + g_position * ex, a.position.y + g_position * ey},
            {a.color.r + w * g.r, a.color.g + w * g.g, a.color.b + w * g.b, a.color.a + gauss * g_w}};
  }

  // The pull through the perspective divide: the gradient w.r.t. the clip-space point's x, y, w.
  GLSPLAT_HD ClipXYW<T> pulled(ClipXYW<T> p, Vec2<T> g) const { return pulled_through_divide(p, g, half_w, half_h); }

  // The edge glue (glsplat/silhouette.py), backwards. A glued sample's position also moves by
  //   d = m m^T [(q - q0) - (p - p0)],   zero in value,
  // q = (1 - t) a + t b its contour edge's point at the fixed perspective-correct parameter t
  // (a, b the edge's clip-space ends), p its own clip-space point, m the edge's unit image normal
  // (constant: it multiplies a zero). Given g = d(loss)/d(the sample's position), d adds
  // (m m^T g)^T (dq - dp): the pull of m m^T g through q's divide, shared (1 - t, t) by the ends,
  // and minus its pull through p's.
  GLSPLAT_HD Glued<T> glued(ClipXYW<T> p, ClipXYW<T> a, ClipXYW<T> b, T t, Vec2<T> g) const {
    // the ends' image positions, up to a common shift (which m does not see)
    const T ex = (b.x / b.w - a.x / a.w) * half_w, ey = (a.y / a.w - b.y / b.w) * half_h;
    const T along = (ex * g.y - ey * g.x) / (ex * ex + ey * ey);  // m^T g / |e|, m = (-ey, ex) / |e|
    const Vec2<T> normal{-ey * along, ex * along};                // m m^T g
    const T s = T(1) - t;
    const ClipXYW<T> dq = pulled(ClipXYW<T>{s * a.x + t * b.x, s * a.y + t * b.y, s * a.w + t * b.w}, normal);
    const ClipXYW<T> dp = pulled(p, normal);
    return {{-dp.x, -dp.y, -dp.w}, {s * dq.x, s * dq.y, s * dq.w}, {t * dq.x, t * dq.y, t * dq.w}};
  }

  // Backward for a covered source sample (layer l of pixel (b, pi, pj)) with clip-space point p,
  // image-space offset shift and straight color c: its pull from its 3x3 targets.
  // `grad_at(k, qi, qj)` gives the gradient (an Rgba) w.r.t. buffer k's unnormalized sums at
  // target (qi, qj) of the same image.
  template <typename GradAt>
  GLSPLAT_HD Pull<T> backward_sample(int64_t b, int64_t l, int64_t pi, int64_t pj, ClipXYW<T> p, Vec2<T> shift,
                                     Rgba<T> c, const GradAt& grad_at) const {
    const Vec2<T> o = offset(p, shift, pi, pj);
    const Axis gx = axis(o.x, T(1)), gy = axis(o.y, scale);
    Pull<T> a{{T(0), T(0)}, {T(0), T(0), T(0), T(0)}};
    for (int64_t qi = pi - 1; qi <= pi + 1; ++qi) {
      if (qi < 0 || qi >= H) continue;
      for (int64_t qj = pj - 1; qj <= pj + 1; ++qj) {
        if (qj < 0 || qj >= W) continue;
        a = pull(a, tap(gx, int(qj - pj)) * tap(gy, int(qi - pi)), T(qj - pj) - o.x, T(qi - pi) - o.y, c,
                 grad_at(buffer_of(surface_layer(b, pi, pj, qi, qj), l), qi, qj));
      }
    }
    return a;
  }
};

// Splat::glued for glued sample i of the glue (of image b, with clip-space point p and position
// gradient g), reading its edge's ends from points' vertices: add(e, v) adds v to element e of
// the flattened clip gradient for the ends' part; the point's part is returned.
template <typename T, typename Add>
GLSPLAT_HD ClipXYW<T> glue_gradient(const Splat<T>& s, const ClipPoints<T>& points, const GlueRows& glue, int64_t i,
                                    int64_t b, ClipXYW<T> p, Vec2<T> g, const Add& add) {
  const int64_t base = points.corners.shared ? 0 : b * points.corners.V;
  const int64_t ea = 4 * (base + glue.ends[2 * i]), eb = 4 * (base + glue.ends[2 * i + 1]);
  const T* v = points.clip;
  const Glued<T> d = s.glued(p, ClipXYW<T>{v[ea], v[ea + 1], v[ea + 3]}, ClipXYW<T>{v[eb], v[eb + 1], v[eb + 3]},
                             T(glue.t[i]), g);
  add(ea, d.a.x), add(ea + 1, d.a.y), add(ea + 3, d.a.w);
  add(eb, d.b.x), add(eb + 1, d.b.y), add(eb + 3, d.b.w);
  return d.point;
}

}  // namespace glsplat
