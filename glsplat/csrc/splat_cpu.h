// The splat on the CPU, free of torch: the image is cut into bands of rows, one OpenMP task
// each; a band keeps the taps (and, going backwards, the per-buffer gradients) of the few rows
// around the current one in small rings instead of image-sized tables, so a call allocates
// nothing but its outputs: on a CPU, writing fresh memory (page faults) costs as much as the
// arithmetic.
#pragma once
#include <omp.h>

#include <algorithm>
#include <vector>

#include "splat.h"

namespace glsplat {
namespace cpu {

// Where a sample's clip-space point comes from and where its gradient goes: a tensor of points.
template <typename T>
struct GivenPoints {
  const T* point;  // [B, K, H, W, 4]
  T* grad;         // same shape, zeroed

  using Local = int;  // nothing to accumulate per thread: every sample writes its own gradient
  Local local() const { return 0; }
  void get(int64_t n, T p[4]) const {
    for (int c = 0; c < 4; ++c) p[c] = point[4 * n + c];
  }
  void add_grad(Local&, int64_t n, const T g[4]) const {
    for (int c = 0; c < 4; ++c) grad[4 * n + c] = g[c];
  }
  void reduce(const Local&) const {}
};

// ... or the rasterized clip-space vertices blended with the raster's barycentrics (interpolate
// fused into the splat: no per-sample point tensor, forwards or backwards).
template <typename T>
struct ClipPoints {
  const T* clip;            // [1 or B, V, 4]
  int64_t V, per_image;     // per_image = K * H * W samples
  bool shared;              // one set of vertices for every image
  const int64_t* faces;     // [F, 3]
  const int32_t* tri_id;    // [B, K, H, W]
  const float* bary;        // sample n's (b0, b1) at bary[n * bary_stride]
  int64_t bary_stride;
  T* grad;                  // like clip, zeroed
  int64_t grad_numel;

  void corners(int64_t n, int64_t v[3], T w[3]) const {
    const int64_t base = shared ? 0 : (n / per_image) * V;
    const int64_t* f = faces + 3 * int64_t(tri_id[n] - 1);
    for (int i = 0; i < 3; ++i) v[i] = base + f[i];
    w[0] = bary[n * bary_stride];
    w[1] = bary[n * bary_stride + 1];
    w[2] = T(1) - w[0] - w[1];
  }
  void get(int64_t n, T p[4]) const {
    int64_t v[3];
    T w[3];
    corners(n, v, w);
    for (int c = 0; c < 4; ++c) p[c] = w[0] * clip[4 * v[0] + c] + w[1] * clip[4 * v[1] + c] + w[2] * clip[4 * v[2] + c];
  }
  // Scatter-add into a private copy per thread; the copies are added up at the end.
  using Local = std::vector<T>;
  Local local() const { return Local(grad_numel, T(0)); }
  void add_grad(Local& local, int64_t n, const T g[4]) const {
    int64_t v[3];
    T w[3];
    corners(n, v, w);
    for (int i = 0; i < 3; ++i) {
      for (int c = 0; c < 4; ++c) local[4 * v[i] + c] += w[i] * g[c];
    }
  }
  void reduce(const Local& local) const {
#pragma omp critical
    for (int64_t e = 0; e < grad_numel; ++e) grad[e] += local[e];
  }
};

// Values of the covered samples only, [N, 4], packed in raster order (image, layer, row,
// column) as Fragments.index orders them: row r of layer l of image b holds the consecutive
// entries from first[(b * K + l) * H + r] on.
template <typename V>
struct Packed {
  V* data;
  const int64_t* first;  // [B * K * H + 1]; first[B * K * H] = N
  int64_t K, H;

  V* row(int64_t b, int64_t l, int64_t r) const { return data + 4 * first[(b * K + l) * H + r]; }
};

// Packed's first[] for the raster tri_id, `rows` (= B * K * H) rows of W samples.
inline std::vector<int64_t> packed_rows(const int32_t* tri_id, int64_t rows, int64_t W) {
  std::vector<int64_t> first(rows + 1, 0);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const int32_t* id = tri_id + row * W;
    int64_t count = 0;
    for (int64_t j = 0; j < W; ++j) count += id[j] > 0;
    first[row + 1] = count;
  }
  for (int64_t row = 0; row < rows; ++row) first[row + 1] += first[row];
  return first;
}

// Columns lo .. hi - 1 of a row.
struct Span {
  int64_t lo, hi;
};

// For every row of every image, the columns from its first to its last covered sample (layers
// are packed: layer 0's), found once per call.
struct Coverage {
  int64_t H, W;
  std::vector<Span> spans;  // [B * H]

  Coverage(int64_t B, int64_t height, int64_t width, const int32_t* tri_id, int64_t layers)
      : H(height), W(width), spans(B * height) {
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < B * H; ++row) {
      const int32_t* id = tri_id + ((row / H) * layers * H + row % H) * W;  // layer 0 of image row / H
      int64_t lo = 0, hi = W;
      while (lo < hi && id[lo] <= 0) ++lo;
      while (hi > lo && id[hi - 1] <= 0) --hi;
      spans[row] = {lo, hi};
    }
  }
  template <typename T>
  explicit Coverage(const Splat<T>& s) : Coverage(s.B, s.H, s.W, s.tri_id, s.K) {}

  Span row(int64_t b, int64_t r) const { return r < 0 || r >= H ? Span{0, 0} : spans[b * H + r]; }

  // The columns of target row r within one pixel of a covered sample: the only ones a tap reaches.
  Span reach(int64_t b, int64_t r) const {
    int64_t lo = W, hi = 0;
    for (int64_t i = r - 1; i <= r + 1; ++i) {
      const Span span = row(b, i);
      if (span.lo < span.hi) {
        lo = std::min(lo, span.lo);
        hi = std::max(hi, span.hi);
      }
    }
    return lo < hi ? Span{std::max<int64_t>(lo - 1, 0), std::min(hi + 1, W)} : Span{0, 0};
  }
};

// The taps and colours (kTapValues each) of 3 consecutive source rows of one image; row r lives
// in slot r % 3 (a constant divisor: the lookup is in the innermost loop).
template <typename T>
struct TapRing {
  const Splat<T>& s;
  std::vector<T> data;  // [3, K, W, kTapValues]

  explicit TapRing(const Splat<T>& splat) : s(splat), data(3 * splat.K * splat.W * kTapValues) {}

  const T* operator()(int64_t, int64_t l, int64_t pi, int64_t pj) const {
    return data.data() + (((pi % 3) * s.K + l) * s.W + pj) * kTapValues;
  }
  template <typename Points>
  void fill(int64_t b, int64_t r, const Points& points, const Packed<const T>& colors, const Coverage& coverage) {
    if (r < 0 || r >= s.H) return;
    const Span span = coverage.row(b, r);
    for (int64_t l = 0; l < s.K; ++l) {
      T* row = data.data() + ((r % 3) * s.K + l) * s.W * kTapValues;
      const T* c = colors.row(b, l, r);
      for (int64_t j = span.lo; j < span.hi; ++j) {
        const int64_t n = s.sample(b, l, r, j);
        if (!s.covered(n)) continue;  // never read
        T p[4];
        points.get(n, p);
        T* t = row + j * kTapValues;
        s.taps(p, r, j, c[3], t);
        for (int k = 0; k < 3; ++k) t[kTaps + k] = c[k];
        c += 4;
      }
    }
  }
};

// The gradients w.r.t. the unnormalised buffer sums of 3 consecutive target rows.
template <typename T>
struct GradRing {
  int64_t W;
  std::vector<T> data;  // [3, W, kBuffers, 4]

  explicit GradRing(int64_t width) : W(width), data(3 * width * kBuffers * 4) {}
  T (*at(int64_t qi, int64_t qj))[4] {
    return reinterpret_cast<T (*)[4]>(data.data() + ((qi % 3) * W + qj) * kBuffers * 4);
  }
  const T* operator()(int k, int64_t qi, int64_t qj) const {
    return data.data() + (((qi % 3) * W + qj) * kBuffers + k) * 4;
  }
};

// Bands of rows: a few per thread, so that the covered rows (the costly ones) spread over the
// threads, and at least 8 rows high, since a band recomputes a row or two around its edges.
// Runs body(scratch, b, r0, r1) for rows r0 .. r1 - 1 of image b, for every band; each thread
// makes its scratch once with make() and hands it to finish() at the end.
template <typename Make, typename Body, typename Finish>
void for_bands(int64_t B, int64_t H, const Make& make, const Body& body, const Finish& finish) {
  const int64_t wanted = (4 * int64_t(omp_get_max_threads()) + B - 1) / std::max<int64_t>(B, 1);
  const int64_t count = std::max<int64_t>(1, std::min(wanted, H / 8));
  const int64_t rows = std::max<int64_t>(1, (H + count - 1) / count), per_image = (H + rows - 1) / rows;
#pragma omp parallel
  {
    auto scratch = make();
#pragma omp for schedule(dynamic, 1)
    for (int64_t band = 0; band < B * per_image; ++band) {
      const int64_t r0 = (band % per_image) * rows;
      body(scratch, band / per_image, r0, std::min(H, r0 + rows));
    }
    finish(scratch);
  }
}

// Any number of layers. The forward pass keeps the unnormalised S+/S0/S- sums of every pixel,
// sums[B, H, W, kBuffers, 4] (zero where no tap reaches), so the backward pass needs no taps:
// per target row, the gradient w.r.t. the sums; per covered source sample, its 3x3 pull.
template <typename T, typename Points>
void forward_layered(const Splat<T>& s, const Points& points, const Packed<const T>& colors, T* out, T* buffers,
                     T* sums) {
  const Coverage coverage(s);
  for_bands(s.B, s.H, [&] { return TapRing<T>(s); },
            [&](TapRing<T>& taps, int64_t b, int64_t r0, int64_t r1) {
              taps.fill(b, r0 - 1, points, colors, coverage);
              taps.fill(b, r0, points, colors, coverage);
              for (int64_t qi = r0; qi < r1; ++qi) {
                taps.fill(b, qi + 1, points, colors, coverage);
                const int64_t q0 = s.pixel(b, qi, 0);
                const Span span = coverage.reach(b, qi);
                // Within the span every value is written below; zero the rest of the row.
                auto zero_outside = [&](T* row, int64_t per_pixel) {
                  std::fill(row, row + per_pixel * span.lo, T(0));
                  std::fill(row + per_pixel * span.hi, row + per_pixel * s.W, T(0));
                };
                zero_outside(out + 4 * q0, 4);
                zero_outside(sums + kBuffers * 4 * q0, kBuffers * 4);
                for (int k = 0; buffers && k < kBuffers; ++k) zero_outside(buffers + k * s.plane() + 4 * q0, 4);
                for (int64_t qj = span.lo; qj < span.hi; ++qj) {
                  const int64_t q = q0 + qj;
                  T(*acc)[4] = reinterpret_cast<T(*)[4]>(sums + kBuffers * 4 * q);
                  s.accumulate(b, qi, qj, taps, acc);
                  T buf[kBuffers][4];
                  Splat<T>::resolve(acc, buf, out + 4 * q);
                  for (int k = 0; buffers && k < kBuffers; ++k) {
                    for (int c = 0; c < 4; ++c) buffers[k * s.plane() + 4 * q + c] = buf[k][c];
                  }
                }
              }
            },
            [](TapRing<T>&) {});
}

template <typename T, typename Points>
void backward_layered(const Splat<T>& s, const Points& points, const Packed<const T>& colors, const T* grad_out,
                      const T* grad_buffers, const T* sums, const Packed<T>& grad_colors) {
  const Coverage coverage(s);
  struct Scratch {
    GradRing<T> grads;
    typename Points::Local local;
    std::vector<const T*> c;  // per layer, the colour and its gradient of the next covered sample
    std::vector<T*> gc;
  };
  for_bands(s.B, s.H,
            [&] { return Scratch{GradRing<T>(s.W), points.local(), std::vector<const T*>(s.K), std::vector<T*>(s.K)}; },
            [&](Scratch& t, int64_t b, int64_t r0, int64_t r1) {
              // Row r's gradients are read only within a pixel of a covered sample: made there only.
              auto grad_row = [&](int64_t r) {
                if (r < 0 || r >= s.H) return;
                const Span span = coverage.reach(b, r);
                for (int64_t qj = span.lo; qj < span.hi; ++qj) {
                  const int64_t q = s.pixel(b, r, qj);
                  const T(*acc)[4] = reinterpret_cast<const T(*)[4]>(sums + kBuffers * 4 * q);
                  T buf[kBuffers][4], image[4];
                  Splat<T>::resolve(acc, buf, image);
                  const T weight[kBuffers] = {acc[0][3], acc[1][3], acc[2][3]};
                  Splat<T>::acc_gradient(buf, weight, grad_out ? grad_out + 4 * q : nullptr,
                                         grad_buffers ? grad_buffers + 4 * q : nullptr, s.plane(), t.grads.at(r, qj));
                }
              };
              grad_row(r0 - 1);
              grad_row(r0);
              for (int64_t pi = r0; pi < r1; ++pi) {
                grad_row(pi + 1);
                for (int64_t l = 0; l < s.K; ++l) {
                  t.c[l] = colors.row(b, l, pi);
                  t.gc[l] = grad_colors.row(b, l, pi);
                }
                const Span span = coverage.row(b, pi);
                for (int64_t pj = span.lo; pj < span.hi; ++pj) {
                  for (int64_t l = 0; l < s.K; ++l) {
                    const int64_t n = s.sample(b, l, pi, pj);
                    if (!s.covered(n)) break;  // layers are packed
                    T p[4], gp[4];
                    points.get(n, p);
                    s.backward_sample(b, l, pi, pj, p, t.c[l], t.grads, gp, t.gc[l]);
                    t.c[l] += 4;
                    t.gc[l] += 4;
                    points.add_grad(t.local, n, gp);
                  }
                }
              }
            },
            [&](Scratch& t) { points.reduce(t.local); });
}

// One layer: every tap lands in S0 and the image is S0 normalised. Rows of samples, taps and
// gradients are kept as arrays over their columns (structure of arrays), padded by one column
// each side and zero where nothing is covered, so that the 3x3 gathers have no branches and
// vectorise.

// The samples of one row of layer 0: the clip-space x, y, w of the point and the straight
// r, g, b, a; the point (0, 0, 0, 1) and the colour 0 where nothing is covered, so that the
// columns between covered ones can go through the same vector loops and add nothing.
template <typename T>
struct RowSamples {
  static constexpr int kValues = 7;
  int64_t W;
  std::vector<T> data;  // [kValues, W]

  explicit RowSamples(int64_t width) : W(width), data(kValues * width) {}
  T* operator[](int k) { return data.data() + k * W; }
  const T* operator[](int k) const { return data.data() + k * W; }

  // Row r of image b, for the columns of span; c: the row's packed colours.
  template <typename Points>
  void gather(const Splat<T>& s, int64_t b, int64_t r, Span span, const Points& points, const T* c) {
    static constexpr T kNone[4] = {0, 0, 0, 0};
    T* v = data.data();
    for (int64_t j = span.lo; j < span.hi; ++j) {
      const int64_t n = s.sample(b, 0, r, j);
      T p[4] = {0, 0, 0, 1};
      const T* colour = kNone;
      if (s.covered(n)) {
        points.get(n, p);
        colour = c;
        c += 4;
      }
      v[j] = p[0];
      v[W + j] = p[1];
      v[2 * W + j] = p[3];
      for (int k = 0; k < 4; ++k) v[(3 + k) * W + j] = colour[k];
    }
  }
};

template <typename T>
struct FlatRows {
  static constexpr int kValues = 9;  // gx[3], gy[3] (scale and alpha folded in), r, g, b
  const Splat<T>& s;
  int64_t depth, stride;             // stride = W + 2, the padded row
  std::vector<T> data, zeros;        // [depth, kValues, W + 2]; rows outside the image
  std::vector<Span> written;         // per slot, the columns that may be non-zero
  RowSamples<T> samples;

  FlatRows(const Splat<T>& splat, int64_t rows)
      : s(splat), depth(rows), stride(splat.W + 2), data(rows * kValues * stride), zeros(kValues * stride),
        written(rows, Span{0, 0}), samples(splat.W) {}

  const T* row(int64_t r) const {
    return r < 0 || r >= s.H ? zeros.data() : data.data() + (r % depth) * kValues * stride;
  }
  template <typename Points>
  void fill(int64_t b, int64_t r, const Points& points, const Packed<const T>& colors, const Coverage& coverage) {
    if (r < 0 || r >= s.H) return;
    T* row = data.data() + (r % depth) * kValues * stride + 1;
    Span& span = written[r % depth];  // all else in the slot is zero
    for (int k = 0; k < kValues; ++k) std::fill(row + k * stride + span.lo, row + k * stride + span.hi, T(0));
    span = coverage.row(b, r);
    samples.gather(s, b, r, span, points, colors.row(b, 0, r));
    const T *x = samples[0], *y = samples[1], *w = samples[2], *alpha = samples[6];
#pragma omp simd
    for (int64_t j = span.lo; j < span.hi; ++j) {
      const auto o = s.offset(x[j], y[j], w[j], r, j);
      const auto gx = s.axis(o.x, T(1)), gy = s.axis(o.y, s.scale);
      row[j] = gx.before;
      row[stride + j] = gx.centre;
      row[2 * stride + j] = gx.after;
      row[3 * stride + j] = gy.before * alpha[j];
      row[4 * stride + j] = gy.centre * alpha[j];
      row[5 * stride + j] = gy.after * alpha[j];
    }
    for (int k = 0; k < 3; ++k) {  // r, g, b
      std::copy(samples[3 + k] + span.lo, samples[3 + k] + span.hi, row + (6 + k) * stride + span.lo);
    }
  }
  // The S0 sums of target row r into sums[4][W] (r, g, b, weight), for the columns of span.
  void sums(int64_t r, Span span, T* sums) const {
    const int64_t W = s.W;
    T* __restrict sr = sums;
    T* __restrict sg = sums + W;
    T* __restrict sb = sums + 2 * W;
    T* __restrict sa = sums + 3 * W;
    for (int c = 0; c < 4; ++c) std::fill(sums + c * W + span.lo, sums + c * W + span.hi, T(0));
    for (int dy = -1; dy <= 1; ++dy) {  // source row r + dy, whose taps towards row r are gy[1 - dy]
      const T* __restrict base = row(r + dy) + 1;  // column j at base[j], j = -1 .. W
      const T* __restrict gx0 = base;
      const T* __restrict gx1 = base + stride;
      const T* __restrict gx2 = base + 2 * stride;
      const T* __restrict gy = base + (4 - dy) * stride;
      const T* __restrict cr = base + 6 * stride;
      const T* __restrict cg = base + 7 * stride;
      const T* __restrict cb = base + 8 * stride;
#pragma omp simd
      for (int64_t qj = span.lo; qj < span.hi; ++qj) {  // from sources qj - 1, qj, qj + 1: taps gx[2], gx[1], gx[0]
        const T wl = gx2[qj - 1] * gy[qj - 1], wc = gx1[qj] * gy[qj], wr = gx0[qj + 1] * gy[qj + 1];
        sr[qj] += wl * cr[qj - 1] + wc * cr[qj] + wr * cr[qj + 1];
        sg[qj] += wl * cg[qj - 1] + wc * cg[qj] + wr * cg[qj + 1];
        sb[qj] += wl * cb[qj - 1] + wc * cb[qj] + wr * cb[qj + 1];
        sa[qj] += wl + wc + wr;
      }
    }
  }
};

// The gradients w.r.t. the S0 sums (r, g, b, weight) of 3 consecutive target rows, [4, W + 2]
// each, zero in the padding columns and for rows outside the image (taps that land there are
// dropped).
template <typename T>
struct FlatGrads {
  int64_t H, W, stride;
  std::vector<T> data, zeros;

  FlatGrads(int64_t height, int64_t width)
      : H(height), W(width), stride(width + 2), data(3 * 4 * stride), zeros(4 * stride) {}
  // Channel c of column j of row r at row(r)[c * stride + j], j = -1 .. W.
  T* row(int64_t r) { return data.data() + (r % 3) * 4 * stride + 1; }
  const T* row(int64_t r) const { return r < 0 || r >= H ? zeros.data() + 1 : data.data() + (r % 3) * 4 * stride + 1; }
};

// A sample's pull from the three targets of one row (gradient channel k of column dx at
// g[k * stride + dx]), whose taps weigh gx * wy and lie ey below it; written out, not a loop,
// so that the loop over the sample's row vectorises.
template <typename T>
[[gnu::always_inline]] inline typename Splat<T>::Pull pull_row(const Splat<T>& s, typename Splat<T>::Pull a, const T* g,
                                                               int64_t stride, typename Splat<T>::Axis gx, T wy, T ey, T ox,
                                                               typename Splat<T>::Rgba c) {
  using Rgba = typename Splat<T>::Rgba;
  a = s.pull(a, gx.before * wy, T(-1) - ox, ey, c, Rgba{g[-1], g[stride - 1], g[2 * stride - 1], g[3 * stride - 1]});
  a = s.pull(a, gx.centre * wy, -ox, ey, c, Rgba{g[0], g[stride], g[2 * stride], g[3 * stride]});
  return s.pull(a, gx.after * wy, T(1) - ox, ey, c, Rgba{g[1], g[stride + 1], g[2 * stride + 1], g[3 * stride + 1]});
}

// The 3x3 pulls of the samples of source row pi (columns span) into pulled: d(loss)/d x, y, w
// of each point, then d(loss)/d r, g, b, a; from the row's samples and the gradients w.r.t. the
// sums of rows pi - 1 .. pi + 1.
template <typename T>
void pull_row_of_sources(const Splat<T>& s, int64_t pi, Span span, const RowSamples<T>& samples,
                         const FlatGrads<T>& grads, RowSamples<T>& pulled) {
  using Rgba = typename Splat<T>::Rgba;
  const int64_t stride = grads.stride, W = s.W;
  const T *above = grads.row(pi - 1), *here = grads.row(pi), *below = grads.row(pi + 1);
  const T *x = samples[0], *y = samples[1], *w = samples[2], *red = samples[3], *green = samples[4],
          *blue = samples[5], *alpha = samples[6];
  T* out = pulled[0];
#pragma GCC ivdep
  for (int64_t pj = span.lo; pj < span.hi; ++pj) {
    const auto o = s.offset(x[pj], y[pj], w[pj], pi, pj);
    const auto gx = s.axis(o.x, T(1)), gy = s.axis(o.y, s.scale);
    const Rgba c{red[pj], green[pj], blue[pj], alpha[pj]};
    typename Splat<T>::Pull a{T(0), T(0), {T(0), T(0), T(0), T(0)}};
    a = pull_row(s, a, above + pj, stride, gx, gy.before, T(-1) - o.y, o.x, c);
    a = pull_row(s, a, here + pj, stride, gx, gy.centre, -o.y, o.x, c);
    a = pull_row(s, a, below + pj, stride, gx, gy.after, T(1) - o.y, o.x, c);
    const auto d = s.pulled(x[pj], y[pj], w[pj], a);
    out[pj] = d.x;
    out[W + pj] = d.y;
    out[2 * W + pj] = d.w;
    out[3 * W + pj] = a.colour.r;
    out[4 * W + pj] = a.colour.g;
    out[5 * W + pj] = a.colour.b;
    out[6 * W + pj] = a.colour.a;
  }
}

template <typename T, typename Points>
void forward_flat(const Splat<T>& s, const Points& points, const Packed<const T>& colors, T* out, T* buffers,
                  T* weights) {
  const Coverage coverage(s);
  struct Scratch {
    FlatRows<T> rows;
    std::vector<T> sums;
  };
  for_bands(s.B, s.H, [&] { return Scratch{FlatRows<T>(s, 3), std::vector<T>(4 * s.W)}; },
            [&](Scratch& t, int64_t b, int64_t r0, int64_t r1) {
              t.rows.fill(b, r0 - 1, points, colors, coverage);
              t.rows.fill(b, r0, points, colors, coverage);
              for (int64_t qi = r0; qi < r1; ++qi) {
                t.rows.fill(b, qi + 1, points, colors, coverage);
                const Span span = coverage.reach(b, qi);
                t.rows.sums(qi, span, t.sums.data());
                const int64_t q0 = s.pixel(b, qi, 0);
                T* o = out + 4 * q0;
                std::fill(o, o + 4 * span.lo, T(0));
                std::fill(o + 4 * span.hi, o + 4 * s.W, T(0));
                std::fill(weights + q0, weights + q0 + span.lo, T(0));
                std::fill(weights + q0 + span.hi, weights + q0 + s.W, T(0));
                for (int64_t qj = span.lo; qj < span.hi; ++qj) {
                  const T weight = t.sums[3 * s.W + qj], norm = weight > T(1) ? weight : T(1);
                  for (int c = 0; c < 4; ++c) o[4 * qj + c] = t.sums[c * s.W + qj] / norm;
                  weights[q0 + qj] = weight;
                }
                if (buffers) {  // S+ and S- are empty
                  for (int k = 0; k < kBuffers; ++k) {
                    T* buf = buffers + k * s.plane() + 4 * s.pixel(b, qi, 0);
                    for (int64_t e = 0; e < 4 * s.W; ++e) buf[e] = k == 1 ? o[e] : T(0);
                  }
                }
              }
            },
            [](Scratch&) {});
}

// The forward pass kept the image (= S0 normalised) and the weights, so the backward pass needs
// no taps: per target row, the gradient w.r.t. the sums; per row of sources, their 3x3 pulls.
template <typename T, typename Points>
void backward_flat(const Splat<T>& s, const Points& points, const Packed<const T>& colors, const T* grad_out,
                   const T* grad_buffers, const T* image, const T* weights, const Packed<T>& grad_colors) {
  const Coverage coverage(s);
  struct Scratch {
    FlatGrads<T> grads;
    RowSamples<T> samples, pulled;  // pulled: d(loss)/d x, y, w of the point, then r, g, b, a
    typename Points::Local local;
    std::vector<T> zeros;           // a row's absent gradient
  };
  for_bands(s.B, s.H,
            [&] {
              return Scratch{FlatGrads<T>(s.H, s.W), RowSamples<T>(s.W), RowSamples<T>(s.W), points.local(),
                             std::vector<T>(4 * s.W, T(0))};
            },
            [&](Scratch& t, int64_t b, int64_t r0, int64_t r1) {
              // Row r's gradients are read only within a pixel of a source row's span: made there only.
              auto grad_row = [&](int64_t r) {
                if (r < 0 || r >= s.H) return;
                T* __restrict ga = t.grads.row(r);
                const int64_t stride = t.grads.stride, q0 = s.pixel(b, r, 0);
                const Span span = coverage.reach(b, r);
                // S+ and S- are empty: the image's gradient is S0's; an absent gradient reads zeros
                const T* __restrict go = grad_out ? grad_out + 4 * q0 : t.zeros.data();
                const T* __restrict gb = grad_buffers ? grad_buffers + s.plane() + 4 * q0 : t.zeros.data();
                const T* __restrict im = image + 4 * q0;
                const T* __restrict weight = weights + q0;
                for (int64_t qj = span.lo; qj < span.hi; ++qj) {
                  T g[4], dot = 0;
                  for (int c = 0; c < 4; ++c) {
                    g[c] = go[4 * qj + c] + gb[4 * qj + c];
                    dot += g[c] * im[4 * qj + c];
                  }
                  // image = sums / weight where weight >= 1; torch's clamp passes the gradient at 1 too
                  const bool normalised = weight[qj] >= T(1);
                  const T inv = normalised ? T(1) / weight[qj] : T(1);
                  for (int c = 0; c < 4; ++c) ga[c * stride + qj] = g[c] * inv;
                  ga[3 * stride + qj] -= normalised ? dot * inv : T(0);
                }
              };
              grad_row(r0 - 1);
              grad_row(r0);
              for (int64_t pi = r0; pi < r1; ++pi) {
                grad_row(pi + 1);
                const Span span = coverage.row(b, pi);
                t.samples.gather(s, b, pi, span, points, colors.row(b, 0, pi));
                pull_row_of_sources(s, pi, span, t.samples, t.grads, t.pulled);
                const T* out = t.pulled[0];
                T* gc = grad_colors.row(b, 0, pi);
                for (int64_t pj = span.lo; pj < span.hi; ++pj) {
                  const int64_t n = s.sample(b, 0, pi, pj);
                  if (!s.covered(n)) continue;
                  const T gp[4] = {out[pj], out[s.W + pj], T(0), out[2 * s.W + pj]};
                  for (int k = 0; k < 4; ++k) gc[k] = out[(3 + k) * s.W + pj];
                  gc += 4;
                  points.add_grad(t.local, n, gp);
                }
              }
            },
            [&](Scratch& t) { points.reduce(t.local); });
}

// state, the backward pass's: with one layer the weights [B, H, W], with more the sums
// [B, H, W, kBuffers, 4].
template <typename T, typename Points>
void forward(const Splat<T>& s, const Points& points, const Packed<const T>& colors, T* out, T* buffers, T* state) {
  if (s.K == 1) {
    forward_flat(s, points, colors, out, buffers, state);
  } else {
    forward_layered(s, points, colors, out, buffers, state);
  }
}

// image (one layer only) and state: from the forward pass. Every covered sample's colour
// gradient is written.
template <typename T, typename Points>
void backward(const Splat<T>& s, const Points& points, const Packed<const T>& colors, const T* grad_out,
              const T* grad_buffers, const T* image, const T* state, const Packed<T>& grad_colors) {
  if (s.K == 1) {
    backward_flat(s, points, colors, grad_out, grad_buffers, image, state, grad_colors);
  } else {
    backward_layered(s, points, colors, grad_out, grad_buffers, state, grad_colors);
  }
}

}  // namespace cpu
}  // namespace glsplat
