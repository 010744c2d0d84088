// CPU kernel of glsplat.nvdiffrast's `texture` for 2D textures: nearest, bilinear and mip-mapped
// sampling with the wrap / clamp / zero boundary rules, forward and backward. Pixels go in blocks
// of 64: first each pixel's taps (where it reads and with what weights) in a loop the compiler
// vectorizes, then the texel reads and blends (vectorized too for 'linear' forward and for the
// backward pass to uv alone, the nvdiffrast benchmark's path).
// glsplat/nvdiffrast/texture.py holds the torch reference (`_bilinear`, `_nearest` and the
// mip-level blend of `texture`), which this file follows step by step, in the same order of
// operations. The mip stack itself and the mip level of each pixel (its footprint, bias and
// clamp) stay in torch: the kernel takes the stack's flat texel array and the clamped level.
// No fused multiply-adds (as torch's separate elementwise ops): the samples equal the torch
// gather's (`_bilinear`, `_nearest`) bit for bit, in float32 too.
#pragma GCC optimize("fp-contract=off")
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels.h"
#include "splat_cpu.h"

namespace glsplat {
namespace {

enum Filter { kNearest = 0, kLinear = 1, kMipNearest = 2, kMipLinear = 3 };
enum Boundary { kWrap = 0, kClamp = 1, kZero = 2 };

// NaN and infinity by their bits (the build has -ffinite-math-only, under which std::isnan and
// std::isinf may fold to false), in integers of T's size so that the loops using them vectorize.
template <typename T>
struct Bits {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  static constexpr U kExponent = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  static constexpr U kMagnitude = U(~U(0)) >> 1;
  static U of(T x) { return __builtin_bit_cast(U, x); }
};
template <typename T>
inline bool non_finite(T x) { return (Bits<T>::of(x) & Bits<T>::kExponent) == Bits<T>::kExponent; }
template <typename T>
inline bool is_nan(T x) { return (Bits<T>::of(x) & Bits<T>::kMagnitude) > Bits<T>::kExponent; }

constexpr int kBlock = 64;  // pixels per block

// The mip levels as arrays indexed by level (a pixel's level is a gather in the vectorized loop).
template <typename T>
struct Levels {
  std::vector<T> wf, hf;                          // width, height
  std::vector<int64_t> w, h, offset, stride;      // offset: first element of image 0; stride: per image
};

// The taps of a block of pixels, structure of arrays. The sample of pixel j is
// top + fy (bottom - top), top = t00 + fx (t10 - t00), bottom = t01 + fx (t11 - t01), taps in
// the order 00, 10, 01, 11 (x first); a tap is the element index of its channel 0 in texels,
// -1 for a 'zero' tap off the texture (value 0).
template <typename T>
struct TapBlock {
  alignas(64) int64_t tap[4][kBlock];
  alignas(64) T fx[kBlock];
  alignas(64) T fy[kBlock];
  alignas(64) T dx_du[kBlock];  // d(x, y)/d(u, v): the level's (w, h), 0 where 'clamp' holds x (y) at an edge
  alignas(64) T dy_dv[kBlock];
};

// A block's coordinates and levels: bad[j] marks a pixel that cannot be sampled (NaN, or an
// infinite coordinate under 'wrap'): its output is NaN and it has no gradient.
template <typename T>
struct PixelBlock {
  int64_t first, tz;  // its first pixel, its texture image
  int n;              // pixels in it
  alignas(64) T u[kBlock];
  alignas(64) T v[kBlock];
  alignas(64) int64_t k0[kBlock];  // mip level read (mip filters), and the next one (mip-linear)
  alignas(64) int64_t k1[kBlock];
  alignas(64) T frac[kBlock];      // mip-linear's weight of level k1 (0: none)
  alignas(64) bool bad[kBlock];
};

// The sampler of boundary rule B (compile time: the pixel loops are the kernel's whole cost) and
// NC channels (1..4 at compile time; 0: C at run time).
template <typename T, int B, int NC>
struct Texture2D {
  const T* texels;  // [T, C]: level 0 [I, h0, w0], then each mip level, in memory order
  int64_t C;
  int64_t images, per_image;  // I = 1 (shared) or B texture images; pixels per texture image
  Levels<T> level;            // level 0 only without a mip filter
  int filter;

  int64_t channels() const { return NC ? NC : C; }
  int64_t blocks_per_image() const { return (per_image + kBlock - 1) / kBlock; }
  int64_t blocks() const { return images * blocks_per_image(); }

  // Block b's pixels (blocks do not straddle texture images): coordinates, then levels.
  void load(int64_t b, const T* uv, const T* level_of, PixelBlock<T>& px) const {
    px.tz = b / blocks_per_image();
    px.first = px.tz * per_image + (b % blocks_per_image()) * kBlock;
    px.n = int(std::min<int64_t>(kBlock, (px.tz + 1) * per_image - px.first));
    const T* __restrict c = uv + 2 * px.first;
    T *__restrict pu = px.u, *__restrict pv = px.v;
    bool* __restrict bad = px.bad;
#pragma omp simd
    for (int j = 0; j < px.n; ++j) {
      // NaN, and +-inf under 'wrap' (frac(inf) is NaN): unusable; under 'clamp' and 'zero' an
      // infinite coordinate stands for any far-away one. Stand-ins keep the steps below in range.
      const T u = c[2 * j], v = c[2 * j + 1];
      const bool inf_u = non_finite(u), inf_v = non_finite(v);
      const bool unusable = is_nan(u) || is_nan(v) || (B == kWrap && (inf_u || inf_v));
      bad[j] = unusable;
      const T far_u = std::signbit(u) ? T(-2) : T(2), far_v = std::signbit(v) ? T(-2) : T(2);
      pu[j] = unusable ? T(0) : (inf_u ? far_u : u);
      pv[j] = unusable ? T(0) : (inf_v ? far_v : v);
    }
    if (filter < kMipNearest) return;
    const T top = T(level.w.size() - 1);
#pragma omp simd
    for (int j = 0; j < px.n; ++j) {  // texture.py: level0 = floor(level), level1 = min(level0 + 1, top)
      const T l = std::min(std::max(level_of[px.first + j], T(0)), top);
      const T floor_l = std::floor(l);
      px.k0[j] = int64_t(floor_l);
      px.k1[j] = int64_t(std::min(floor_l + 1, top));
      px.frac[j] = filter == kMipLinear ? l - floor_l : T(0);
    }
  }

  // texture.py `_bilinear`'s steps for a block's pixels at levels k (kMip) or level 0.
  template <bool kMip>
  void taps(const PixelBlock<T>& px, const int64_t* __restrict k, TapBlock<T>& t) const {
    const int64_t nc = channels();
    const T* __restrict lwf = level.wf.data();
    const T* __restrict lhf = level.hf.data();
    const int64_t *__restrict lw = level.w.data(), *__restrict lh = level.h.data(),
                  *__restrict lbase = level.offset.data(), *__restrict lstride = level.stride.data();
    const T* __restrict pu = px.u;
    const T* __restrict pv = px.v;
    int64_t *__restrict t00 = t.tap[0], *__restrict t10 = t.tap[1], *__restrict t01 = t.tap[2],
            *__restrict t11 = t.tap[3];
    T *__restrict tfx = t.fx, *__restrict tfy = t.fy, *__restrict tdx = t.dx_du, *__restrict tdy = t.dy_dv;
    const int64_t tz = px.tz;
#pragma omp simd
    for (int j = 0; j < px.n; ++j) {
      const int64_t kj = kMip ? k[j] : 0;
      const T wf = lwf[kj], hf = lhf[kj];
      const int64_t w = lw[kj], h = lh[kj];
      T u = pu[j], v = pv[j];
      if (B == kWrap) u = u - std::floor(u), v = v - std::floor(v);
      T x = u * wf - T(0.5), y = v * hf - T(0.5);
      T dx_du = wf, dy_dv = hf;
      int64_t step_x = 1, step_y = 1;
      bool off = false;
      if (B == kClamp) {  // to the edge texels' centers; there both taps are the edge texel
        dx_du = x >= T(0) && x <= wf - 1 ? wf : T(0);
        dy_dv = y >= T(0) && y <= hf - 1 ? hf : T(0);
        x = std::min(std::max(x, T(0)), wf - 1);
        y = std::min(std::max(y, T(0)), hf - 1);
        step_x = x != T(0) && x != wf - 1;
        step_y = y != T(0) && y != hf - 1;
      } else if (B == kZero) {  // more than a texel off: every tap is a zero tap
        off = x < T(-1) || x >= wf || y < T(-1) || y >= hf;
        x = std::min(std::max(x, T(-1)), wf);  // keeps the conversions below in range
        y = std::min(std::max(y, T(-1)), hf);
      }
      const T x0 = std::floor(x), y0 = std::floor(y);
      tfx[j] = x - x0, tfy[j] = y - y0;
      tdx[j] = dx_du, tdy[j] = dy_dv;
      int64_t ix0 = int64_t(x0), iy0 = int64_t(y0), ix1 = ix0 + step_x, iy1 = iy0 + step_y;
      if (B == kWrap) {  // ix0 in -1..w - 1, ix1 in 0..w (x in [-0.5, w - 0.5])
        ix0 += ix0 < 0 ? w : 0, ix1 -= ix1 >= w ? w : 0;
        iy0 += iy0 < 0 ? h : 0, iy1 -= iy1 >= h ? h : 0;
      }
      const int64_t base = lbase[kj] + tz * lstride[kj];
      const int64_t i00 = base + (iy0 * w + ix0) * nc, i10 = base + (iy0 * w + ix1) * nc;
      const int64_t i01 = base + (iy1 * w + ix0) * nc, i11 = base + (iy1 * w + ix1) * nc;
      if (B == kZero) {
        const bool x0_on = !off && ix0 >= 0, x1_on = !off && ix1 < w, y0_on = iy0 >= 0, y1_on = iy1 < h;
        t00[j] = x0_on && y0_on ? i00 : -1;
        t10[j] = x1_on && y0_on ? i10 : -1;
        t01[j] = x0_on && y1_on ? i01 : -1;
        t11[j] = x1_on && y1_on ? i11 : -1;
      } else {
        t00[j] = i00, t10[j] = i10, t01[j] = i01, t11[j] = i11;
      }
    }
  }

  // texture.py `_nearest` for a block: the base level's texel (as tap 0; -1 for a 'zero' texel).
  void nearest(const PixelBlock<T>& px, TapBlock<T>& t) const {
    const T wf = level.wf[0], hf = level.hf[0];
    const int64_t w = level.w[0], nc = channels(), base = px.tz * level.stride[0];
#pragma omp simd
    for (int j = 0; j < px.n; ++j) {
      T u = px.u[j], v = px.v[j];
      if (B == kWrap) u = u - std::floor(u), v = v - std::floor(v);
      const T x = std::floor(u * wf), y = std::floor(v * hf);
      const bool off = B == kZero && (x < T(0) || x >= wf || y < T(0) || y >= hf);
      const int64_t ix = int64_t(std::min(std::max(x, T(0)), wf - 1));
      const int64_t iy = int64_t(std::min(std::max(y, T(0)), hf - 1));
      t.tap[0][j] = off ? -1 : base + (iy * w + ix) * nc;
    }
  }

  T texel(int64_t tap, int64_t e) const { return B == kZero && tap < 0 ? T(0) : texels[tap + e]; }

  // The bilinear value of pixel j's channel e.
  T value(const TapBlock<T>& t, int j, int64_t e) const {
    const T v00 = texel(t.tap[0][j], e), v10 = texel(t.tap[1][j], e);
    const T v01 = texel(t.tap[2][j], e), v11 = texel(t.tap[3][j], e);
    const T top = v00 + t.fx[j] * (v10 - v00);
    const T bottom = v01 + t.fx[j] * (v11 - v01);
    return top + t.fy[j] * (bottom - top);
  }

  void forward(const T* uv, const T* level_of, T* out) const {
    const int64_t nc = channels();
#pragma omp parallel
    {
      PixelBlock<T> px;
      TapBlock<T> t0, t1;
#pragma omp for schedule(static)
      for (int64_t b = 0; b < blocks(); ++b) {
        load(b, uv, level_of, px);
        T* o = out + px.first * nc;
        if (filter == kNearest) {
          nearest(px, t0);
          for (int j = 0; j < px.n; ++j) {
            for (int64_t e = 0; e < nc; ++e) o[j * nc + e] = texel(t0.tap[0][j], e);
          }
        } else if (filter == kLinear) {
          taps<false>(px, nullptr, t0);
          if (NC) {
#pragma omp simd
            for (int j = 0; j < px.n; ++j) {
#pragma GCC unroll 4
              for (int e = 0; e < NC; ++e) o[j * NC + e] = value(t0, j, e);
            }
          } else {
            for (int j = 0; j < px.n; ++j) {
              for (int64_t e = 0; e < nc; ++e) o[j * nc + e] = value(t0, j, e);
            }
          }
        } else {  // out = out0 + frac (out1 - out0) where frac > 0
          taps<true>(px, px.k0, t0);
          if (filter == kMipLinear) taps<true>(px, px.k1, t1);
          for (int j = 0; j < px.n; ++j) {
            const T frac = px.frac[j];
            for (int64_t e = 0; e < nc; ++e) {
              const T near = value(t0, j, e);
              o[j * nc + e] = frac > T(0) ? near + frac * (value(t1, j, e) - near) : near;
            }
          }
        }
        for (int j = 0; j < px.n; ++j) {
          if (px.bad[j]) {
            for (int64_t e = 0; e < nc; ++e) o[j * nc + e] = std::numeric_limits<T>::quiet_NaN();
          }
        }
      }
    }
  }

  // d loss / d(u, v) of pixel j's bilinear sample through (fx, fy), added to (gu, gv); g (C
  // values) is d loss / d sample.
  //   d/dfx = (1 - fy) (t10 - t00) + fy (t11 - t01),  d/dfy = bottom - top.
  void coordinate_backward(const TapBlock<T>& t, int j, const T* g, T& gu, T& gv) const {
    const T fx = t.fx[j], fy = t.fy[j];
    T gfx = T(0), gfy = T(0);
#pragma GCC unroll 4
    for (int64_t e = 0; e < channels(); ++e) {
      const T v00 = texel(t.tap[0][j], e), v10 = texel(t.tap[1][j], e);
      const T v01 = texel(t.tap[2][j], e), v11 = texel(t.tap[3][j], e);
      const T top = v00 + fx * (v10 - v00);
      const T bottom = v01 + fx * (v11 - v01);
      const T g_bottom = g[e] * fy, g_top = g[e] - g_bottom;
      gfx += g_top * (v10 - v00) + g_bottom * (v11 - v01);
      gfy += g[e] * (bottom - top);
    }
    gu += gfx * t.dx_du[j];
    gv += gfy * t.dy_dv[j];
  }

  // The texels' gradients of pixel j's bilinear sample, added to sum:
  //   d/dt00 = (1 - fy)(1 - fx), d/dt10 = (1 - fy) fx, d/dt01 = fy (1 - fx), d/dt11 = fy fx.
  void texel_backward(const TapBlock<T>& t, int j, const T* g, cpu::PrivateSum<T>& sum) const {
    const T fx = t.fx[j], fy = t.fy[j];
    for (int64_t e = 0; e < channels(); ++e) {
      const T g_bottom = g[e] * fy, g_top = g[e] - g_bottom;
      const T w[4] = {g_top - g_top * fx, g_top * fx, g_bottom - g_bottom * fx, g_bottom * fx};
      for (int i = 0; i < 4; ++i) {
        if (B != kZero || t.tap[i][j] >= 0) sum.add(t.tap[i][j] + e, w[i]);
      }
    }
  }

  void bilinear_backward(const TapBlock<T>& t, int j, const T* g, cpu::PrivateSum<T>* sum, T& gu, T& gv) const {
    coordinate_backward(t, j, g, gu, gv);
    if (sum) texel_backward(t, j, g, *sum);
  }

  void backward(const T* grad_out, const T* uv, const T* level_of, T* grad_texels, int64_t texels_numel,
                T* grad_uv, T* grad_level) const {
    const int64_t nc = channels();
#pragma omp parallel
    {
      cpu::PrivateSum<T> sum(grad_texels, texels_numel);
      cpu::PrivateSum<T>* tex_sum = grad_texels ? &sum : nullptr;
      std::vector<T> g0(nc), g1(nc);
      PixelBlock<T> px;
      TapBlock<T> t0, t1;
#pragma omp for schedule(static)
      for (int64_t b = 0; b < blocks(); ++b) {
        load(b, uv, level_of, px);
        if (filter == kNearest) {
          nearest(px, t0);
        } else if (filter == kLinear) {
          taps<false>(px, nullptr, t0);
          if (!tex_sum) {  // the coordinates' gradient only: vectorized over pixels
            if (!grad_uv) continue;
            const T* g = grad_out + px.first * nc;
            T* g_uv = grad_uv + 2 * px.first;
#pragma omp simd
            for (int j = 0; j < px.n; ++j) {
              T gu = T(0), gv = T(0);
              coordinate_backward(t0, j, g + j * nc, gu, gv);
              g_uv[2 * j] = px.bad[j] ? T(0) : gu;
              g_uv[2 * j + 1] = px.bad[j] ? T(0) : gv;
            }
            continue;
          }
        } else {
          taps<true>(px, px.k0, t0);
          if (filter == kMipLinear) taps<true>(px, px.k1, t1);
        }
        for (int j = 0; j < px.n; ++j) {
          const int64_t p = px.first + j;
          const T* g = grad_out + p * nc;
          T gu = T(0), gv = T(0), gl = T(0);
          if (px.bad[j]) {
          } else if (filter == kNearest) {
            const int64_t tap = t0.tap[0][j];
            if (tex_sum && (B != kZero || tap >= 0)) {
              for (int64_t e = 0; e < nc; ++e) sum.add(tap + e, g[e]);
            }
          } else if (filter == kMipLinear && px.frac[j] > T(0)) {
            // out = out0 + frac (out1 - out0): d/dout0 = g - frac g, d/dout1 = frac g,
            // d/dfrac = g . (out1 - out0)
            const T frac = px.frac[j];
            for (int64_t e = 0; e < nc; ++e) {
              gl += g[e] * (value(t1, j, e) - value(t0, j, e));
              g0[e] = g[e] - frac * g[e];
              g1[e] = frac * g[e];
            }
            bilinear_backward(t0, j, g0.data(), tex_sum, gu, gv);
            bilinear_backward(t1, j, g1.data(), tex_sum, gu, gv);
          } else {
            bilinear_backward(t0, j, g, tex_sum, gu, gv);
          }
          if (grad_uv) grad_uv[2 * p] = gu, grad_uv[2 * p + 1] = gv;
          if (grad_level) grad_level[p] = gl;
        }
      }
      sum.reduce();
    }
  }
};

// Checks the kernel's own contract (not the user's input: texture.py checked that) and runs f
// with the sampler of the tensors' dtype, boundary rule and channel count.
template <typename F>
void with_sampler(const torch::Tensor& texels, const torch::Tensor& uv, const torch::Tensor& level,
                  const std::vector<int64_t>& heights, const std::vector<int64_t>& widths, int64_t images,
                  int64_t filter, int64_t boundary, F&& f) {
  TORCH_CHECK(texels.dim() == 2 && uv.dim() == 2 && uv.size(1) == 2, "texture kernel: texels [T, C], uv [P, 2]");
  for (const auto* t : {&texels, &uv, &level}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous() && t->scalar_type() == texels.scalar_type(),
                "texture kernel: CPU, contiguous tensors of one dtype");
  }
  TORCH_CHECK(filter >= kNearest && filter <= kMipLinear && boundary >= kWrap && boundary <= kZero,
              "texture kernel: filter or boundary code");
  TORCH_CHECK(!heights.empty() && heights.size() == widths.size() && images >= 1, "texture kernel: level sizes");
  TORCH_CHECK(filter < kMipNearest || level.numel() == uv.size(0), "texture kernel: level [P] for a mip filter");
  const int64_t pixels = uv.size(0), C = texels.size(1);
  TORCH_CHECK(pixels % images == 0, "texture kernel: pixels of whole images");
  AT_DISPATCH_FLOATING_TYPES(texels.scalar_type(), "texture2d", [&] {
    using T = scalar_t;
    Levels<T> levels;
    int64_t start = 0;
    const int64_t count = filter >= kMipNearest ? int64_t(heights.size()) : 1;
    for (int64_t i = 0; i < count; ++i) {
      levels.wf.push_back(T(widths[i]));
      levels.hf.push_back(T(heights[i]));
      levels.w.push_back(widths[i]);
      levels.h.push_back(heights[i]);
      levels.offset.push_back(start * C);
      levels.stride.push_back(heights[i] * widths[i] * C);
      start += images * heights[i] * widths[i];
    }
    TORCH_CHECK(start <= texels.size(0), "texture kernel: texels too short for the level sizes");
    auto run = [&](auto b, auto nc) {
      f(Texture2D<T, decltype(b)::value, decltype(nc)::value>{texels.data_ptr<T>(), C, images, pixels / images,
                                                              levels, int(filter)});
    };
    auto channels = [&](auto b) {
      switch (C) {
        case 1: return run(b, std::integral_constant<int, 1>());
        case 2: return run(b, std::integral_constant<int, 2>());
        case 3: return run(b, std::integral_constant<int, 3>());
        case 4: return run(b, std::integral_constant<int, 4>());
        default: return run(b, std::integral_constant<int, 0>());
      }
    };
    if (boundary == kWrap) channels(std::integral_constant<int, kWrap>());
    if (boundary == kClamp) channels(std::integral_constant<int, kClamp>());
    if (boundary == kZero) channels(std::integral_constant<int, kZero>());
  });
}

}  // namespace

torch::Tensor nvdr_texture_forward(torch::Tensor texels, torch::Tensor uv, torch::Tensor level,
                                std::vector<int64_t> heights, std::vector<int64_t> widths, int64_t images,
                                int64_t filter, int64_t boundary) {
  auto out = torch::empty({uv.size(0), texels.size(1)}, texels.options());
  with_sampler(texels, uv, level, heights, widths, images, filter, boundary, [&](const auto& sampler) {
    using T = typename std::remove_const_t<std::remove_reference_t<decltype(*sampler.texels)>>;
    sampler.forward(uv.data_ptr<T>(), level.numel() ? level.data_ptr<T>() : nullptr, out.data_ptr<T>());
  });
  return out;
}

std::vector<torch::Tensor> nvdr_texture_backward(torch::Tensor grad_out, torch::Tensor texels, torch::Tensor uv,
                                              torch::Tensor level, std::vector<int64_t> heights,
                                              std::vector<int64_t> widths, int64_t images, int64_t filter,
                                              int64_t boundary, bool want_texels, bool want_uv, bool want_level) {
  grad_out = grad_out.contiguous();
  TORCH_CHECK(grad_out.sizes() == torch::IntArrayRef({uv.size(0), texels.size(1)}) &&
                  grad_out.scalar_type() == texels.scalar_type(), "texture kernel: grad_out [P, C]");
  auto none = torch::empty({0}, texels.options());
  auto grad_texels = want_texels ? torch::zeros_like(texels) : none;
  auto grad_uv = want_uv && filter != kNearest ? torch::empty_like(uv) : none;
  auto grad_level = want_level && filter == kMipLinear ? torch::empty({uv.size(0)}, uv.options()) : none;
  with_sampler(texels, uv, level, heights, widths, images, filter, boundary, [&](const auto& sampler) {
    using T = typename std::remove_const_t<std::remove_reference_t<decltype(*sampler.texels)>>;
    auto ptr = [](torch::Tensor& x) { return x.numel() ? x.data_ptr<T>() : nullptr; };
    sampler.backward(grad_out.data_ptr<T>(), uv.data_ptr<T>(), ptr(level), ptr(grad_texels), texels.numel(),
                     ptr(grad_uv), ptr(grad_level));
  });
  return {grad_texels, grad_uv, grad_level};
}

}  // namespace glsplat
