// The splat (DESIGN.md steps 6-8) one item at a time, shared by the CPU (row bands in
// splat.cpp) and CUDA (one thread per item in splat_cuda.cu) kernels: a sample's 3x3 Gaussian
// taps, their accumulation at a target pixel into the S+ / S0 / S- buffers, the normalisation
// and back-to-front composite, and the matching backward steps.
//
// All passes are gathers, so no two items write to the same place: the forward pass works per
// target pixel and pulls the taps of its 3x3 source neighbours; the backward pass turns the
// image gradient into per-buffer gradients at every target pixel, then works per source sample
// and pulls the gradients of its 3x3 targets. Where the taps and those gradients are kept
// (a table, a ring of rows) is the caller's choice, reached through small accessor objects.
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

constexpr int kBuffers = 3;  // S+, S0, S-
constexpr int kTaps = 6;     // a sample's separable tap weights: gx[3], then gy[3] with alpha and scale
constexpr int kTapValues = kTaps + 3;  // what the forward gather reads of a sample: its taps, then its r, g, b

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

  // The helpers below take and return values, not arrays, so that the CPU's row loops, which
  // call them once per column, vectorise.

  // Offset (x, y) of a sample at pixel (i, j) with clip-space point (px, py, ., pw) from that
  // pixel's centre (0 in value; the gradient path), in pixels, with x = (ndc_x + 1) W / 2 and
  // y = (1 - ndc_y) H / 2.
  struct Offset {
    T x, y;
  };
  GLSPLAT_HD Offset offset(T px, T py, T pw, int64_t i, int64_t j) const {
    return {(px / pw + T(1)) * half_w - (T(j) + T(0.5)), (T(1) - py / pw) * half_h - (T(i) + T(0.5))};
  }

  // The Gaussian separates: tap (dy, dx) weighs gy[dy] * gx[dx] (scale folded into gy), with the
  // taps along one axis at d = -1, 0, 1 in before, centre, after: exp(-(d - o)^2 / (2 sigma^2)),
  // three exponentials (factoring them into two overflows and underflows together, far from
  // the pixel, into a wrong finite weight or NaN).
  struct Axis {
    T before, centre, after;
  };
  GLSPLAT_HD static T tap(Axis a, int d) { return d < 0 ? a.before : (d == 0 ? a.centre : a.after); }
  GLSPLAT_HD Axis axis(T o, T factor) const {
    const T before = T(-1) - o, after = T(1) - o;
    return {factor * exp_of(-before * before * inv_two_sigma2), factor * exp_of(-o * o * inv_two_sigma2),
            factor * exp_of(-after * after * inv_two_sigma2)};
  }

  // The kTaps weights of a covered sample at (i, j) with point p, its alpha folded into gy.
  GLSPLAT_HD void taps(const T* p, int64_t i, int64_t j, T alpha, T* t) const {
    const Offset o = offset(p[0], p[1], p[3], i, j);
    const Axis gx = axis(o.x, T(1)), gy = axis(o.y, scale);
    t[0] = gx.before;
    t[1] = gx.centre;
    t[2] = gx.after;
    t[3] = gy.before * alpha;
    t[4] = gy.centre * alpha;
    t[5] = gy.after * alpha;
  }

  // Forward at target pixel q = (b, qi, qj): the unnormalised S+/S0/S- sums acc. `taps_at(n, l,
  // pi, pj)` gives the kTapValues of covered sample n (layer l of source pixel (pi, pj)).
  template <typename Taps>
  GLSPLAT_HD void accumulate(int64_t b, int64_t qi, int64_t qj, const Taps& taps_at, T acc[kBuffers][4]) const {
    for (int k = 0; k < kBuffers; ++k) acc[k][0] = acc[k][1] = acc[k][2] = acc[k][3] = T(0);
    for (int64_t pi = qi - 1; pi <= qi + 1; ++pi) {
      if (pi < 0 || pi >= H) continue;
      for (int64_t pj = qj - 1; pj <= qj + 1; ++pj) {
        if (pj < 0 || pj >= W || !covered(sample(b, 0, pi, pj))) continue;
        const int64_t s = surface_layer(b, pi, pj, qi, qj);
        for (int64_t l = 0; l < K; ++l) {
          const int64_t n = sample(b, l, pi, pj);
          if (!covered(n)) break;  // layers are packed: nothing behind a background layer
          const T* t = taps_at(n, l, pi, pj);
          const T w = t[qj - pj + 1] * t[3 + qi - pi + 1];
          const T* c = t + kTaps;
          T* a = acc[buffer_of(s, l)];
          a[0] += w * c[0];
          a[1] += w * c[1];
          a[2] += w * c[2];
          a[3] += w;
        }
      }
    }
  }

  // Normalise each buffer by max(weight, 1) into buf and composite back to front (S- under S0
  // under S+) into out.
  GLSPLAT_HD static void resolve(const T acc[kBuffers][4], T buf[kBuffers][4], T out[4]) {
    for (int c = 0; c < 4; ++c) out[c] = T(0);
    for (int k = kBuffers - 1; k >= 0; --k) {
      const T norm = acc[k][3] > T(1) ? acc[k][3] : T(1);
      for (int c = 0; c < 4; ++c) buf[k][c] = acc[k][c] / norm;
      for (int c = 0; c < 4; ++c) out[c] = buf[k][c] + (T(1) - buf[k][3]) * out[c];
    }
  }

  // Backward at a target pixel: the gradient ga w.r.t. the unnormalised sums, given the
  // normalised buffers buf, their weights, the image gradient g_out[4] and the buffers'
  // gradients g_buf[k * buf_stride + c]; either gradient may be null (absent).
  GLSPLAT_HD static void acc_gradient(const T buf[kBuffers][4], const T weight[kBuffers], const T* g_out,
                                      const T* g_buf, int64_t buf_stride, T ga[kBuffers][4]) {
    const T* front = buf[0];
    const T* surface = buf[1];
    const T* back = buf[2];
    // out = F + (1 - F.a) M,  M = S + (1 - S.a) Bk.
    T g[kBuffers][4];
    T g_front_a = 0, g_surface_a = 0;
    for (int c = 0; c < 4; ++c) {
      const T gc = g_out ? g_out[c] : T(0);
      const T g_below = (T(1) - front[3]) * gc;
      g[0][c] = gc;
      g[1][c] = g_below;
      g[2][c] = (T(1) - surface[3]) * g_below;
      g_front_a -= gc * (surface[c] + (T(1) - surface[3]) * back[c]);
      g_surface_a -= g_below * back[c];
    }
    g[0][3] += g_front_a;
    g[1][3] += g_surface_a;
    for (int k = 0; k < kBuffers; ++k) {
      if (g_buf) {
        for (int c = 0; c < 4; ++c) g[k][c] += g_buf[k * buf_stride + c];
      }
      // buf = acc / max(acc.a, 1); torch's clamp passes the gradient at acc.a == 1 too.
      if (weight[k] >= T(1)) {
        T dot = 0;
        for (int c = 0; c < 4; ++c) dot += g[k][c] * buf[k][c];
        for (int c = 0; c < 4; ++c) ga[k][c] = g[k][c] / weight[k];
        ga[k][3] -= dot / weight[k];
      } else {
        for (int c = 0; c < 4; ++c) ga[k][c] = g[k][c];
      }
    }
  }

  struct Rgba {
    T r, g, b, a;
  };

  // What a source sample's 3x3 pull gathers: the loss's derivatives w.r.t. its offset (x, y)
  // and its colour.
  struct Pull {
    T x, y;
    Rgba colour;
  };

  // One tap of the pull: the tap's Gaussian gauss at (ex, ey) = its centre minus the sample's
  // position, the sample's straight colour c and the target buffer's gradient g.
  GLSPLAT_HD Pull pull(Pull a, T gauss, T ex, T ey, Rgba c, Rgba g) const {
    // d(loss)/d(tap weight w), where the tap adds w * (r, g, b, 1) and w = gauss * alpha
    const T g_w = g.r * c.r + g.g * c.g + g.b * c.b + g.a;
    const T w = gauss * c.a;
    // d(gauss)/d(pos) = gauss * (centre - pos) / sigma^2
    const T g_offset = w * g_w * inv_sigma2;
    return {a.x + g_offset * ex, a.y + g_offset * ey,
            {a.colour.r + w * g.r, a.colour.g + w * g.g, a.colour.b + w * g.b, a.colour.a + gauss * g_w}};
  }

  // The pull through the perspective divide: the gradient w.r.t. the clip-space point's x, y, w
  // (its z has none).
  struct Pulled {
    T x, y, w;
  };
  GLSPLAT_HD Pulled pulled(T px, T py, T pw, Pull a) const {
    const T inv_w = T(1) / pw;
    return {a.x * half_w * inv_w, -a.y * half_h * inv_w, (-a.x * half_w * px + a.y * half_h * py) * inv_w * inv_w};
  }

  // Backward for a covered source sample (layer l of pixel (b, pi, pj)) with clip-space point p
  // and straight RGBA c: the gradients gp w.r.t. p and gc w.r.t. c. `grad_at(k, qi, qj)` gives
  // the gradient w.r.t. buffer k's unnormalised sums at target (qi, qj) of the same image.
  template <typename GradAt>
  GLSPLAT_HD void backward_sample(int64_t b, int64_t l, int64_t pi, int64_t pj, const T* p, const T* c,
                                  const GradAt& grad_at, T gp[4], T gc[4]) const {
    const Offset o = offset(p[0], p[1], p[3], pi, pj);
    const Axis gx = axis(o.x, T(1)), gy = axis(o.y, scale);
    const Rgba colour{c[0], c[1], c[2], c[3]};
    Pull a{T(0), T(0), {T(0), T(0), T(0), T(0)}};
    for (int64_t qi = pi - 1; qi <= pi + 1; ++qi) {
      if (qi < 0 || qi >= H) continue;
      for (int64_t qj = pj - 1; qj <= pj + 1; ++qj) {
        if (qj < 0 || qj >= W) continue;
        const T* g = grad_at(buffer_of(surface_layer(b, pi, pj, qi, qj), l), qi, qj);
        a = pull(a, tap(gx, int(qj - pj)) * tap(gy, int(qi - pi)), T(qj - pj) - o.x, T(qi - pi) - o.y, colour,
                 Rgba{g[0], g[1], g[2], g[3]});
      }
    }
    const Pulled d = pulled(p[0], p[1], p[3], a);
    gp[0] = d.x;
    gp[1] = d.y;
    gp[2] = T(0);
    gp[3] = d.w;
    gc[0] = a.colour.r;
    gc[1] = a.colour.g;
    gc[2] = a.colour.b;
    gc[3] = a.colour.a;
  }
};

}  // namespace glsplat
