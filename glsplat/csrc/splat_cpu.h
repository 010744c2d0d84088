// The splat on the CPU, free of torch: the image is cut into bands of rows, one OpenMP task
// each; a band keeps the taps (and, going backwards, the per-buffer gradients) of the few rows
// around the current one in small rings instead of image-sized tables, so a call allocates
// nothing but its outputs: on a CPU, writing fresh memory (page faults) costs as much as the
// arithmetic. The maths of every step is splat.h's; this file only arranges the loops.
#pragma once
#include <omp.h>

#include <algorithm>
#include <vector>

#include "splat.h"

namespace glsplat {
namespace cpu {

// A scatter-add target shared by threads (a vertex gradient): each thread adds into a private
// copy, then the copies are summed into the target one thread at a time. A null target: nothing
// to sum, no copy made.
template <typename T>
struct PrivateSum {
  T* target;
  std::vector<T> local;

  PrivateSum(T* target_, int64_t numel) : target(target_), local(target_ ? numel : 0, T(0)) {}
  void add(int64_t e, T v) { local[e] += v; }
  void reduce() const {
    if (!target) return;
#pragma omp critical(glsplat_private_sum)
    for (size_t e = 0; e < local.size(); ++e) target[e] += local[e];
  }
};

// Where the packed values of each row begin (see Packed): row r of layer l of image b holds the
// consecutive indices from first[(b * K + l) * H + r] on; first[B * K * H] = N.
struct PackedRows {
  std::vector<int64_t> first;
  int64_t K, H;

  // For the raster tri_id [B, K, H, W].
  PackedRows(const int32_t* tri_id, int64_t B, int64_t layers, int64_t height, int64_t W)
      : first(B * layers * height + 1, 0), K(layers), H(height) {
    const int64_t rows = B * K * H;
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const int32_t* id = tri_id + row * W;
      int64_t count = 0;
      for (int64_t j = 0; j < W; ++j) count += id[j] > 0;
      first[row + 1] = count;
    }
    for (int64_t row = 0; row < rows; ++row) first[row + 1] += first[row];
  }
  int64_t start(int64_t b, int64_t l, int64_t r) const { return first[(b * K + l) * H + r]; }
  int64_t count() const { return first.back(); }
};

// Columns lo .. hi - 1 of a row.
struct Span {
  int64_t lo, hi;
};

// For every row of every image, the columns from its first to its last covered sample (layers
// are packed: layer 0's), found once per call.
struct Coverage {
  int64_t H, W;
  std::vector<Span> spans;  // [B * H]

  template <typename T>
  explicit Coverage(const Splat<T>& s) : H(s.H), W(s.W), spans(s.B * s.H) {
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < s.B * H; ++row) {
      const int32_t* id = s.tri_id + ((row / H) * s.K * H + row % H) * W;  // layer 0 of image row / H
      int64_t lo = 0, hi = W;
      while (lo < hi && id[lo] <= 0) ++lo;
      while (hi > lo && id[hi - 1] <= 0) --hi;
      spans[row] = {lo, hi};
    }
  }

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

// What a call reads: the raster's splat, where its samples come from and their packed values.
template <typename T>
struct Inputs {
  Splat<T> s;
  ClipPoints<T> points;
  Packed<T> packed;
  const PackedRows& rows;
  Coverage coverage;

  GlueRows glue;  // the backward pass's: the glued samples (count 0: none)

  Inputs(const Splat<T>& splat, const ClipPoints<T>& points_, const Packed<T>& packed_, const PackedRows& rows_,
         const GlueRows& glue_ = GlueRows{nullptr, nullptr, nullptr, 0})
      : s(splat), points(points_), packed(packed_), rows(rows_), coverage(splat), glue(glue_) {}
};

// What the backward pass writes: the packed gradients, and the clip-space vertices' (null: not
// wanted) with its element count.
template <typename T>
struct Gradients {
  PackedGrads<T> packed;
  T* clip;
  int64_t clip_numel;
};

// A band's share of the clip gradient: the gradient g of sample n's point, to its corners.
template <typename T>
inline void add_point_gradient(const ClipPoints<T>& points, PrivateSum<T>& clip, int64_t n, ClipXYW<T> g) {
  if (clip.target) ClipPoints<T>::scatter(points.corners(n), g, [&](int64_t e, T v) { clip.add(e, v); });
}

// The first glued sample at or after packed index `index` (glue.count: none); none where the clip
// gradient is not wanted.
template <typename T>
inline int64_t first_glued(const Inputs<T>& in, const PrivateSum<T>& clip, int64_t index) {
  return clip.target ? in.glue.first(index) : in.glue.count;
}

// glue_gradient (splat.h) into a band's share of the clip gradient.
template <typename T>
inline ClipXYW<T> add_glue_gradient(const Inputs<T>& in, PrivateSum<T>& clip, int64_t i, int64_t b, ClipXYW<T> p,
                                    Vec2<T> g) {
  return glue_gradient(in.s, in.points, in.glue, i, b, p, g, [&](int64_t e, T v) { clip.add(e, v); });
}

// The kFactorsAndRgb of 3 consecutive source rows of one image; row r lives in slot r % 3 (a
// constant divisor: the lookup is in the innermost loop).
template <typename T>
struct TapRing {
  const Splat<T>& s;
  std::vector<T> data;  // [3, K, W, kFactorsAndRgb]

  explicit TapRing(const Splat<T>& splat) : s(splat), data(3 * splat.K * splat.W * kFactorsAndRgb) {}

  const T* operator()(int64_t, int64_t l, int64_t pi, int64_t pj) const {
    return data.data() + (((pi % 3) * s.K + l) * s.W + pj) * kFactorsAndRgb;
  }
  void fill(int64_t b, int64_t r, const Inputs<T>& in) {
    if (r < 0 || r >= s.H) return;
    const Span span = in.coverage.row(b, r);
    for (int64_t l = 0; l < s.K; ++l) {
      T* row = data.data() + ((r % 3) * s.K + l) * s.W * kFactorsAndRgb;
      int64_t index = in.rows.start(b, l, r);
      for (int64_t j = span.lo; j < span.hi; ++j) {
        const int64_t n = s.sample(b, l, r, j);
        if (!s.covered(n)) continue;  // never read
        const Rgba<T> c = in.packed.color(index);
        const auto f = s.tap_factors(s.offset(in.points.point(n), in.packed.offset(index), r, j), c.a);
        T* t = row + j * kFactorsAndRgb;
        t[0] = f.x.before, t[1] = f.x.center, t[2] = f.x.after;
        t[3] = f.y.before, t[4] = f.y.center, t[5] = f.y.after;
        t[6] = c.r, t[7] = c.g, t[8] = c.b;
        ++index;
      }
    }
  }
};

// The gradients w.r.t. the unnormalized buffer sums of 3 consecutive target rows.
template <typename T>
struct GradRing {
  int64_t W;
  std::vector<Rgba<T>> data;  // [3, W, kBuffers]

  explicit GradRing(int64_t width) : W(width), data(3 * width * kBuffers) {}
  Rgba<T>* at(int64_t qi, int64_t qj) { return data.data() + ((qi % 3) * W + qj) * kBuffers; }
  Rgba<T> operator()(int k, int64_t qi, int64_t qj) const { return data[((qi % 3) * W + qj) * kBuffers + k]; }
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

// Any number of layers. The forward pass keeps the unnormalized S+/S0/S- sums of every pixel,
// sums[B, H, W, kBuffers] (zero where no tap reaches), so the backward pass needs no taps:
// per target row, the gradient w.r.t. the sums; per covered source sample, its 3x3 pull.
template <typename T>
void forward_layered(const Inputs<T>& in, T* out, T* buffers, Rgba<T>* sums) {
  const Splat<T>& s = in.s;
  for_bands(s.B, s.H, [&] { return TapRing<T>(s); },
            [&](TapRing<T>& taps, int64_t b, int64_t r0, int64_t r1) {
              const Splat<T> s = in.s;  // a band's own copy: kept in registers across the stores
              taps.fill(b, r0 - 1, in);
              taps.fill(b, r0, in);
              for (int64_t qi = r0; qi < r1; ++qi) {
                taps.fill(b, qi + 1, in);
                const int64_t q0 = s.pixel(b, qi, 0);
                const Span span = in.coverage.reach(b, qi);
                // Within the span every value is written below; zero the rest of the row.
                auto zero_outside = [&](auto* row, int64_t per_pixel, auto zero) {
                  std::fill(row, row + per_pixel * span.lo, zero);
                  std::fill(row + per_pixel * span.hi, row + per_pixel * s.W, zero);
                };
                zero_outside(out + 4 * q0, 4, T(0));
                zero_outside(sums + kBuffers * q0, kBuffers, Rgba<T>{T(0), T(0), T(0), T(0)});
                for (int k = 0; buffers && k < kBuffers; ++k) zero_outside(buffers + k * s.plane() + 4 * q0, 4, T(0));
                for (int64_t qj = span.lo; qj < span.hi; ++qj) {
                  const int64_t q = q0 + qj;
                  Rgba<T>* acc = sums + kBuffers * q;
                  s.accumulate(b, qi, qj, taps, acc);
                  Rgba<T> buf[kBuffers];
                  const Rgba<T> image = Splat<T>::resolve(acc, buf);
                  T* o = out + 4 * q;
                  o[0] = image.r, o[1] = image.g, o[2] = image.b, o[3] = image.a;
                  for (int k = 0; buffers && k < kBuffers; ++k) {
                    T* e = buffers + k * s.plane() + 4 * q;
                    e[0] = buf[k].r, e[1] = buf[k].g, e[2] = buf[k].b, e[3] = buf[k].a;
                  }
                }
              }
            },
            [](TapRing<T>&) {});
}

template <typename T>
void backward_layered(const Inputs<T>& in, const T* grad_out, const T* grad_buffers, const Rgba<T>* sums,
                      const Gradients<T>& grads) {
  const Splat<T>& s = in.s;
  struct Scratch {
    GradRing<T> ring;
    PrivateSum<T> clip;
    std::vector<int64_t> index;  // per layer, the packed index of the next covered sample
    std::vector<int64_t> glued;  // per layer, the next glued sample's place in the glue
  };
  for_bands(s.B, s.H,
            [&] {
              return Scratch{GradRing<T>(s.W), PrivateSum<T>(grads.clip, grads.clip_numel), std::vector<int64_t>(s.K),
                             std::vector<int64_t>(s.K)};
            },
            [&](Scratch& t, int64_t b, int64_t r0, int64_t r1) {
              const Splat<T> s = in.s;  // a band's own copy: kept in registers across the stores
              // Row r's gradients are read only within a pixel of a covered sample: made there only.
              auto grad_row = [&](int64_t r) {
                if (r < 0 || r >= s.H) return;
                const Span span = in.coverage.reach(b, r);
                for (int64_t qj = span.lo; qj < span.hi; ++qj) {
                  const int64_t q = s.pixel(b, r, qj);
                  Splat<T>::sums_gradient(sums + kBuffers * q, grad_out ? grad_out + 4 * q : nullptr,
                                          grad_buffers ? grad_buffers + 4 * q : nullptr, s.plane(), t.ring.at(r, qj));
                }
              };
              grad_row(r0 - 1);
              grad_row(r0);
              for (int64_t pi = r0; pi < r1; ++pi) {
                grad_row(pi + 1);
                for (int64_t l = 0; l < s.K; ++l) {
                  t.index[l] = in.rows.start(b, l, pi);
                  t.glued[l] = first_glued(in, t.clip, t.index[l]);
                }
                const Span span = in.coverage.row(b, pi);
                for (int64_t pj = span.lo; pj < span.hi; ++pj) {
                  for (int64_t l = 0; l < s.K; ++l) {
                    const int64_t n = s.sample(b, l, pi, pj);
                    if (!s.covered(n)) break;  // layers are packed
                    const int64_t index = t.index[l]++;
                    const ClipXYW<T> p = in.points.point(n);
                    const Pull<T> a = s.backward_sample(b, l, pi, pj, p, in.packed.offset(index),
                                                        in.packed.color(index), t.ring);
                    grads.packed.set(index, a);
                    ClipXYW<T> g = s.pulled(p, a.position);
                    if (t.glued[l] < in.glue.count && in.glue.rows[t.glued[l]] == index) {
                      const ClipXYW<T> glue = add_glue_gradient(in, t.clip, t.glued[l]++, b, p, a.position);
                      g = {g.x + glue.x, g.y + glue.y, g.w + glue.w};
                    }
                    add_point_gradient(in.points, t.clip, n, g);
                  }
                }
              }
            },
            [&](Scratch& t) { t.clip.reduce(); });
}

// One layer: every tap lands in S0 and the image is S0 normalized. Rows of samples, taps and
// gradients are kept as arrays over their columns (structure of arrays), padded by one column
// each side and zero where nothing is covered, so that the 3x3 gathers have no branches and
// vectorise.

// Per-sample values of one row of layer 0, kValues arrays over its columns.
template <typename T>
struct RowArrays {
  static constexpr int kValues = 9;
  int64_t W;
  std::vector<T> data;  // [kValues, W]

  explicit RowArrays(int64_t width) : W(width), data(kValues * width) {}
  T* operator[](int k) { return data.data() + k * W; }
  const T* operator[](int k) const { return data.data() + k * W; }
};

// A row's samples: its clip-space point's x, y, w, its offset's x, y, its straight r, g, b, a;
// the point (0, 0, 1), no offset and the color 0 where nothing is covered, so that the columns
// between covered ones can go through the same vector loops and add nothing.
enum RowSample { kX, kY, kW, kShiftX, kShiftY, kRed, kGreen, kBlue, kAlpha };

// Row r of image b, for the columns of span, into v.
template <typename T>
void gather_row(const Inputs<T>& in, int64_t b, int64_t r, Span span, RowArrays<T>& v) {
  int64_t index = in.rows.start(b, 0, r);
  for (int64_t j = span.lo; j < span.hi; ++j) {
    const int64_t n = in.s.sample(b, 0, r, j);
    ClipXYW<T> p{T(0), T(0), T(1)};
    Vec2<T> shift{T(0), T(0)};
    Rgba<T> c{T(0), T(0), T(0), T(0)};
    if (in.s.covered(n)) {
      p = in.points.point(n);
      shift = in.packed.offset(index);
      c = in.packed.color(index);
      ++index;
    }
    v[kX][j] = p.x, v[kY][j] = p.y, v[kW][j] = p.w;
    v[kShiftX][j] = shift.x, v[kShiftY][j] = shift.y;
    v[kRed][j] = c.r, v[kGreen][j] = c.g, v[kBlue][j] = c.b, v[kAlpha][j] = c.a;
  }
}

template <typename T>
struct FlatRows {
  // Per column: the kTapFactors (scale and alpha folded into gy), then r, g, b
  const Splat<T>& s;
  int64_t depth, stride;       // stride = W + 2, the padded row
  std::vector<T> data, zeros;  // [depth, kFactorsAndRgb, W + 2]; rows outside the image
  std::vector<Span> written;   // per slot, the columns that may be non-zero
  RowArrays<T> samples;

  FlatRows(const Splat<T>& splat, int64_t rows)
      : s(splat), depth(rows), stride(splat.W + 2), data(rows * kFactorsAndRgb * stride),
        zeros(kFactorsAndRgb * stride), written(rows, Span{0, 0}), samples(splat.W) {}

  const T* row(int64_t r) const {
    return r < 0 || r >= s.H ? zeros.data() : data.data() + (r % depth) * kFactorsAndRgb * stride;
  }
  void fill(int64_t b, int64_t r, const Inputs<T>& in) {
    if (r < 0 || r >= s.H) return;
    T* row = data.data() + (r % depth) * kFactorsAndRgb * stride + 1;
    Span& span = written[r % depth];  // all else in the slot is zero
    for (int k = 0; k < kFactorsAndRgb; ++k) std::fill(row + k * stride + span.lo, row + k * stride + span.hi, T(0));
    span = in.coverage.row(b, r);
    gather_row(in, b, r, span, samples);
    const RowArrays<T>& v = samples;
    const T *x = v[kX], *y = v[kY], *w = v[kW], *sx = v[kShiftX], *sy = v[kShiftY], *alpha = v[kAlpha];
#pragma omp simd
    for (int64_t j = span.lo; j < span.hi; ++j) {
      const auto f = s.tap_factors(s.offset(ClipXYW<T>{x[j], y[j], w[j]}, Vec2<T>{sx[j], sy[j]}, r, j), alpha[j]);
      row[j] = f.x.before;
      row[stride + j] = f.x.center;
      row[2 * stride + j] = f.x.after;
      row[3 * stride + j] = f.y.before;
      row[4 * stride + j] = f.y.center;
      row[5 * stride + j] = f.y.after;
    }
    for (int k = 0; k < 3; ++k) {  // r, g, b
      std::copy(v[kRed + k] + span.lo, v[kRed + k] + span.hi, row + (kTapFactors + k) * stride + span.lo);
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
        // one expression: GCC's simd lowering does not vectorise a reassigned aggregate
        const Rgba<T> a = add_tap(add_tap(add_tap(Rgba<T>{sr[qj], sg[qj], sb[qj], sa[qj]}, gx2[qj - 1] * gy[qj - 1],
                                                  cr[qj - 1], cg[qj - 1], cb[qj - 1]),
                                          gx1[qj] * gy[qj], cr[qj], cg[qj], cb[qj]),
                                  gx0[qj + 1] * gy[qj + 1], cr[qj + 1], cg[qj + 1], cb[qj + 1]);
        sr[qj] = a.r, sg[qj] = a.g, sb[qj] = a.b, sa[qj] = a.a;
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
[[gnu::always_inline]] inline Pull<T> pull_row(const Splat<T>& s, Pull<T> a, const T* g, int64_t stride,
                                               typename Splat<T>::Axis gx, T wy, T ey, T ox, Rgba<T> c) {
  a = s.pull(a, gx.before * wy, T(-1) - ox, ey, c, Rgba<T>{g[-1], g[stride - 1], g[2 * stride - 1], g[3 * stride - 1]});
  a = s.pull(a, gx.center * wy, -ox, ey, c, Rgba<T>{g[0], g[stride], g[2 * stride], g[3 * stride]});
  return s.pull(a, gx.after * wy, T(1) - ox, ey, c, Rgba<T>{g[1], g[stride + 1], g[2 * stride + 1], g[3 * stride + 1]});
}

// What the pull of a row of sources gives per column: d(loss)/d x, y, w of the clip-space point,
// then d(loss)/d(offset) x, y and d(loss)/d r, g, b, a.
enum RowPull { kPointX, kPointY, kPointW, kPositionX, kPositionY, kColorR, kColorG, kColorB, kColorA };

// The 3x3 pulls of the samples of source row pi (columns span) into pulled, from the row's
// samples and the gradients w.r.t. the sums of rows pi - 1 .. pi + 1.
template <typename T>
void pull_row_of_sources(const Splat<T>& s, int64_t pi, Span span, const RowArrays<T>& v, const FlatGrads<T>& grads,
                         RowArrays<T>& pulled) {
  const int64_t stride = grads.stride, W = s.W;
  const T *above = grads.row(pi - 1), *here = grads.row(pi), *below = grads.row(pi + 1);
  const T *x = v[kX], *y = v[kY], *w = v[kW], *sx = v[kShiftX], *sy = v[kShiftY], *red = v[kRed],
          *green = v[kGreen], *blue = v[kBlue], *alpha = v[kAlpha];
  T* out = pulled[0];
#pragma GCC ivdep
  for (int64_t pj = span.lo; pj < span.hi; ++pj) {
    const ClipXYW<T> p{x[pj], y[pj], w[pj]};
    const Vec2<T> o = s.offset(p, Vec2<T>{sx[pj], sy[pj]}, pi, pj);
    const auto gx = s.axis(o.x, T(1)), gy = s.axis(o.y, s.scale);
    const Rgba<T> c{red[pj], green[pj], blue[pj], alpha[pj]};
    Pull<T> a{{T(0), T(0)}, {T(0), T(0), T(0), T(0)}};
    a = pull_row(s, a, above + pj, stride, gx, gy.before, T(-1) - o.y, o.x, c);
    a = pull_row(s, a, here + pj, stride, gx, gy.center, -o.y, o.x, c);
    a = pull_row(s, a, below + pj, stride, gx, gy.after, T(1) - o.y, o.x, c);
    const ClipXYW<T> d = s.pulled(p, a.position);
    out[kPointX * W + pj] = d.x;
    out[kPointY * W + pj] = d.y;
    out[kPointW * W + pj] = d.w;
    out[kPositionX * W + pj] = a.position.x;
    out[kPositionY * W + pj] = a.position.y;
    out[kColorR * W + pj] = a.color.r;
    out[kColorG * W + pj] = a.color.g;
    out[kColorB * W + pj] = a.color.b;
    out[kColorA * W + pj] = a.color.a;
  }
}

template <typename T>
void forward_flat(const Inputs<T>& in, T* out, T* buffers, T* weights) {
  const Splat<T>& s = in.s;
  struct Scratch {
    FlatRows<T> rows;
    std::vector<T> sums;
  };
  for_bands(s.B, s.H, [&] { return Scratch{FlatRows<T>(s, 3), std::vector<T>(4 * s.W)}; },
            [&](Scratch& t, int64_t b, int64_t r0, int64_t r1) {
              const Splat<T> s = in.s;  // a band's own copy: kept in registers across the stores
              t.rows.fill(b, r0 - 1, in);
              t.rows.fill(b, r0, in);
              for (int64_t qi = r0; qi < r1; ++qi) {
                t.rows.fill(b, qi + 1, in);
                const Span span = in.coverage.reach(b, qi);
                t.rows.sums(qi, span, t.sums.data());
                const int64_t q0 = s.pixel(b, qi, 0);
                T* o = out + 4 * q0;
                std::fill(o, o + 4 * span.lo, T(0));
                std::fill(o + 4 * span.hi, o + 4 * s.W, T(0));
                std::fill(weights + q0, weights + q0 + span.lo, T(0));
                std::fill(weights + q0 + span.hi, weights + q0 + s.W, T(0));
                const T *sr = t.sums.data(), *sg = sr + s.W, *sb = sg + s.W, *sa = sb + s.W;
                for (int64_t qj = span.lo; qj < span.hi; ++qj) {
                  const Rgba<T> image = normalized(Rgba<T>{sr[qj], sg[qj], sb[qj], sa[qj]});
                  o[4 * qj] = image.r, o[4 * qj + 1] = image.g, o[4 * qj + 2] = image.b, o[4 * qj + 3] = image.a;
                  weights[q0 + qj] = sa[qj];
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

// The forward pass kept the image (= S0 normalized) and the weights, so the backward pass needs
// no taps: per target row, the gradient w.r.t. the sums; per row of sources, their 3x3 pulls.
template <typename T>
void backward_flat(const Inputs<T>& in, const T* grad_out, const T* grad_buffers, const T* image, const T* weights,
                   const Gradients<T>& grads) {
  const Splat<T>& s = in.s;
  struct Scratch {
    FlatGrads<T> ring;
    RowArrays<T> samples, pulled;
    PrivateSum<T> clip;
    std::vector<T> zeros;  // a row's absent gradient
  };
  for_bands(s.B, s.H,
            [&] {
              return Scratch{FlatGrads<T>(s.H, s.W), RowArrays<T>(s.W), RowArrays<T>(s.W),
                             PrivateSum<T>(grads.clip, grads.clip_numel), std::vector<T>(4 * s.W, T(0))};
            },
            [&](Scratch& t, int64_t b, int64_t r0, int64_t r1) {
              const Splat<T> s = in.s;  // a band's own copy: kept in registers across the stores
              // Row r's gradients are read only within a pixel of a source row's span: made there only.
              auto grad_row = [&](int64_t r) {
                if (r < 0 || r >= s.H) return;
                T* __restrict ga = t.ring.row(r);
                const int64_t stride = t.ring.stride, q0 = s.pixel(b, r, 0);
                const Span span = in.coverage.reach(b, r);
                // S+ and S- are empty: the image's gradient is S0's; an absent gradient reads zeros
                const T* __restrict go = grad_out ? grad_out + 4 * q0 : t.zeros.data();
                const T* __restrict gb = grad_buffers ? grad_buffers + s.plane() + 4 * q0 : t.zeros.data();
                const T* __restrict im = image + 4 * q0;
                const T* __restrict weight = weights + q0;
                for (int64_t qj = span.lo; qj < span.hi; ++qj) {
                  const T* o = go + 4 * qj;
                  const T* e = gb + 4 * qj;
                  const T* buf = im + 4 * qj;
                  const Rgba<T> g = normalized_gradient(Rgba<T>{o[0] + e[0], o[1] + e[1], o[2] + e[2], o[3] + e[3]},
                                                        Rgba<T>{buf[0], buf[1], buf[2], buf[3]}, weight[qj]);
                  ga[qj] = g.r, ga[stride + qj] = g.g, ga[2 * stride + qj] = g.b, ga[3 * stride + qj] = g.a;
                }
              };
              grad_row(r0 - 1);
              grad_row(r0);
              for (int64_t pi = r0; pi < r1; ++pi) {
                grad_row(pi + 1);
                const Span span = in.coverage.row(b, pi);
                gather_row(in, b, pi, span, t.samples);
                pull_row_of_sources(s, pi, span, t.samples, t.ring, t.pulled);
                const RowArrays<T>& d = t.pulled;
                int64_t index = in.rows.start(b, 0, pi);
                int64_t glued = first_glued(in, t.clip, index);
                for (int64_t pj = span.lo; pj < span.hi; ++pj) {
                  const int64_t n = s.sample(b, 0, pi, pj);
                  if (!s.covered(n)) continue;
                  const Vec2<T> position{d[kPositionX][pj], d[kPositionY][pj]};
                  grads.packed.set(index, Pull<T>{position, {d[kColorR][pj], d[kColorG][pj], d[kColorB][pj],
                                                             d[kColorA][pj]}});
                  ClipXYW<T> g{d[kPointX][pj], d[kPointY][pj], d[kPointW][pj]};
                  if (glued < in.glue.count && in.glue.rows[glued] == index) {
                    const RowArrays<T>& v = t.samples;
                    const ClipXYW<T> glue =
                        add_glue_gradient(in, t.clip, glued++, b, ClipXYW<T>{v[kX][pj], v[kY][pj], v[kW][pj]}, position);
                    g = {g.x + glue.x, g.y + glue.y, g.w + glue.w};
                  }
                  ++index;
                  add_point_gradient(in.points, t.clip, n, g);
                }
              }
            },
            [&](Scratch& t) { t.clip.reduce(); });
}

// state, the backward pass's: with one layer the weights [B, H, W], with more the sums
// [B, H, W, kBuffers, 4].
template <typename T>
void forward(const Inputs<T>& in, T* out, T* buffers, T* state) {
  if (in.s.K == 1) {
    forward_flat(in, out, buffers, state);
  } else {
    forward_layered(in, out, buffers, reinterpret_cast<Rgba<T>*>(state));
  }
}

// image (one layer only) and state: from the forward pass. Every covered sample's color
// gradient (and offset gradient, if wanted) is written.
template <typename T>
void backward(const Inputs<T>& in, const T* grad_out, const T* grad_buffers, const T* image, const T* state,
              const Gradients<T>& grads) {
  if (in.s.K == 1) {
    backward_flat(in, grad_out, grad_buffers, image, state, grads);
  } else {
    backward_layered(in, grad_out, grad_buffers, reinterpret_cast<const Rgba<T>*>(state), grads);
  }
}

}  // namespace cpu
}  // namespace glsplat
