// CPU kernel of glsplat.nvdiffrast's `texture` for 2D textures: nearest, bilinear and mip-mapped
// sampling with the wrap / clamp / zero boundary rules, forward and backward, one pixel at a time.
// glsplat/nvdiffrast/texture.py holds the torch reference (`_bilinear`, `_nearest` and the
// mip-level blend of `texture`), which this file follows step by step, in the same order of
// operations. The mip stack itself and the mip level of each pixel (its footprint, bias and
// clamp) stay in torch: the kernel takes the stack's flat texel array and the clamped level.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"
#include "splat_cpu.h"

namespace glsplat {
namespace {

enum Filter { kNearest = 0, kLinear = 1, kMipNearest = 2, kMipLinear = 3 };
enum Boundary { kWrap = 0, kClamp = 1, kZero = 2 };

// NaN and infinity by their bits (the build has -ffinite-math-only, under which std::isnan and
// std::isinf may fold to false).
inline uint64_t bits_of(float x) {
  uint32_t b;
  memcpy(&b, &x, sizeof b);
  return (uint64_t(b & 0x7f800000u) << 32) | (b & 0x007fffffu);  // (exponent, mantissa) kept apart
}
inline uint64_t bits_of(double x) {
  uint64_t b;
  memcpy(&b, &x, sizeof b);
  return b & 0x7fffffffffffffffull;
}
template <typename T>
constexpr uint64_t kExponentMask = sizeof(T) == 4 ? uint64_t(0x7f800000u) << 32 : 0x7ff0000000000000ull;
template <typename T>
inline bool non_finite(T x) { return (bits_of(x) & kExponentMask<T>) == kExponentMask<T>; }
template <typename T>
inline bool is_nan(T x) { return non_finite(x) && (bits_of(x) & ~kExponentMask<T>) != 0; }

// The four taps of a bilinear sample: flat texel rows (-1: a 'zero' tap off the texture, value 0)
// and the fractions. The sample is top + fy (bottom - top), top = t00 + fx (t10 - t00),
// bottom = t01 + fx (t11 - t01), taps in the order 00, 10, 01, 11 (x first).
template <typename T>
struct Taps {
  int64_t row[4];
  T fx, fy;
  T dx_du, dy_dv;  // d(x, y)/d(u, v): the level's (w, h), 0 where 'clamp' holds x (y) at an edge
};

template <typename T>
struct Texture2D {
  const T* texels;  // [T, C]: level 0 [I, h0, w0], then each mip level, in memory order
  int64_t C;
  int64_t images, per_image;  // I = 1 (shared) or B texture images; pixels per image
  std::vector<int64_t> offset, height, width;  // per level
  int filter, boundary;

  int64_t image(int64_t p) const { return images == 1 ? 0 : p / per_image; }

  // Coordinates a pixel cannot be sampled at: NaN, and +-inf under 'wrap' (frac(inf) is NaN);
  // under 'clamp' and 'zero' an infinite coordinate stands for any far-away one.
  bool unusable(T& u, T& v) const {
    for (T* c : {&u, &v}) {
      if (!non_finite(*c)) continue;
      if (is_nan(*c) || boundary == kWrap) return true;
      *c = *c > 0 ? T(2) : T(-2);
    }
    return false;
  }

  // texture.py `_bilinear` for one pixel of image tz at mip level k. False: every tap is a 'zero'
  // tap (a coordinate more than a texel off the texture): the sample is 0 and has no gradient.
  bool taps(int64_t k, int64_t tz, T u, T v, Taps<T>& t) const {
    const int64_t w = width[k], h = height[k];
    const T wf = T(w), hf = T(h);
    if (boundary == kWrap) u = u - std::floor(u), v = v - std::floor(v);
    T x = u * wf - T(0.5), y = v * hf - T(0.5);
    int64_t step_x = 1, step_y = 1;
    t.dx_du = wf, t.dy_dv = hf;
    if (boundary == kClamp) {  // to the edge texels' centers; there both taps are the edge texel
      if (!(x > T(0))) t.dx_du = x == T(0) ? wf : T(0), x = T(0);
      if (!(x < wf - 1)) t.dx_du = x == wf - 1 ? wf : T(0), x = wf - 1;
      if (!(y > T(0))) t.dy_dv = y == T(0) ? hf : T(0), y = T(0);
      if (!(y < hf - 1)) t.dy_dv = y == hf - 1 ? hf : T(0), y = hf - 1;
      step_x = x != T(0) && x != wf - 1;
      step_y = y != T(0) && y != hf - 1;
    } else if (boundary == kZero && (x < T(-1) || x >= wf || y < T(-1) || y >= hf)) {
      return false;  // both columns (rows) of taps are off; also keeps the conversions below in range
    }
    const T x0 = std::floor(x), y0 = std::floor(y);
    t.fx = x - x0, t.fy = y - y0;
    const int64_t ix[2] = {int64_t(x0), int64_t(x0) + step_x}, iy[2] = {int64_t(y0), int64_t(y0) + step_y};
    const int64_t base = offset[k] + tz * h * w;
    for (int j = 0; j < 2; ++j) {
      for (int i = 0; i < 2; ++i) {
        int64_t cx = ix[i], cy = iy[j];
        if (boundary == kWrap) {  // ix in -1..w (floor(u w - 0.5) for u in [0, 1])
          cx = cx < 0 ? cx + w : (cx >= w ? cx - w : cx);
          cy = cy < 0 ? cy + h : (cy >= h ? cy - h : cy);
        } else if (boundary == kZero && (cx < 0 || cx >= w || cy < 0 || cy >= h)) {
          t.row[2 * j + i] = -1;
          continue;
        }
        t.row[2 * j + i] = base + cy * w + cx;
      }
    }
    return true;
  }

  T texel(int64_t row, int64_t e) const { return row < 0 ? T(0) : texels[row * C + e]; }

  // The bilinear value of channel e.
  T value(const Taps<T>& t, int64_t e) const {
    const T v00 = texel(t.row[0], e), v10 = texel(t.row[1], e), v01 = texel(t.row[2], e), v11 = texel(t.row[3], e);
    const T top = v00 + t.fx * (v10 - v00);
    const T bottom = v01 + t.fx * (v11 - v01);
    return top + t.fy * (bottom - top);
  }

  // texture.py `_nearest`: the base level's texel row of a pixel (-1: a 'zero' texel, value 0).
  int64_t nearest(int64_t tz, T u, T v) const {
    const int64_t w = width[0], h = height[0];
    if (boundary == kWrap) u = u - std::floor(u), v = v - std::floor(v);
    T x = std::floor(u * T(w)), y = std::floor(v * T(h));
    if (boundary == kZero && (x < T(0) || x >= T(w) || y < T(0) || y >= T(h))) return -1;
    const int64_t ix = int64_t(std::min(std::max(x, T(0)), T(w - 1)));
    const int64_t iy = int64_t(std::min(std::max(y, T(0)), T(h - 1)));
    return offset[0] + (tz * h + iy) * w + ix;
  }

  // The mip levels a pixel reads and the weight of the second (mip-linear's fraction, 0: none).
  void levels(const T* level, int64_t p, int64_t& k0, int64_t& k1, T& frac) const {
    const int64_t top = int64_t(offset.size()) - 1;
    const T l = std::min(std::max(level[p], T(0)), T(top));
    const T floor_l = std::floor(l);
    k0 = int64_t(floor_l);
    k1 = std::min(k0 + 1, top);
    frac = filter == kMipLinear && top > 0 ? l - floor_l : T(0);
  }

  void forward(const T* uv, const T* level, T* out, int64_t pixels) const {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels; ++p) {
      T* o = out + p * C;
      T u = uv[2 * p], v = uv[2 * p + 1];
      if (unusable(u, v)) {
        for (int64_t e = 0; e < C; ++e) o[e] = std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      const int64_t tz = image(p);
      if (filter == kNearest) {
        const int64_t row = nearest(tz, u, v);
        for (int64_t e = 0; e < C; ++e) o[e] = texel(row, e);
        continue;
      }
      int64_t k0 = 0, k1 = 0;
      T frac = T(0);
      if (filter != kLinear) levels(level, p, k0, k1, frac);
      Taps<T> t0, t1;
      const bool on0 = taps(k0, tz, u, v, t0), on1 = frac > T(0) && taps(k1, tz, u, v, t1);
      for (int64_t e = 0; e < C; ++e) {
        const T near = on0 ? value(t0, e) : T(0);
        o[e] = frac > T(0) ? near + frac * ((on1 ? value(t1, e) : T(0)) - near) : near;
      }
    }
  }

  // The backward pass of one bilinear sample: g (C values) is d loss / d sample. Adds the texel
  // gradients to sum (if any) and returns d loss / d(u, v) through (fx, fy).
  //   d/dfx = (1 - fy) (t10 - t00) + fy (t11 - t01),  d/dfy = bottom - top,
  //   d/dt00 = (1 - fy)(1 - fx), d/dt10 = (1 - fy) fx, d/dt01 = fy (1 - fx), d/dt11 = fy fx.
  void bilinear_backward(const Taps<T>& t, const T* g, cpu::PrivateSum<T>* sum, T& gu, T& gv) const {
    T gfx = T(0), gfy = T(0);
    for (int64_t e = 0; e < C; ++e) {
      const T v00 = texel(t.row[0], e), v10 = texel(t.row[1], e), v01 = texel(t.row[2], e), v11 = texel(t.row[3], e);
      const T top = v00 + t.fx * (v10 - v00);
      const T bottom = v01 + t.fx * (v11 - v01);
      const T g_bottom = g[e] * t.fy, g_top = g[e] - g_bottom;
      gfx += g_top * (v10 - v00) + g_bottom * (v11 - v01);
      gfy += g[e] * (bottom - top);
      if (sum) {
        const T w[4] = {g_top - g_top * t.fx, g_top * t.fx, g_bottom - g_bottom * t.fx, g_bottom * t.fx};
        for (int i = 0; i < 4; ++i) {
          if (t.row[i] >= 0) sum->add(t.row[i] * C + e, w[i]);
        }
      }
    }
    gu += gfx * t.dx_du;
    gv += gfy * t.dy_dv;
  }

  void backward(const T* grad_out, const T* uv, const T* level, T* grad_texels, int64_t texels_numel, T* grad_uv,
                T* grad_level, int64_t pixels) const {
#pragma omp parallel
    {
      cpu::PrivateSum<T> sum(grad_texels, texels_numel);
      cpu::PrivateSum<T>* tex_sum = grad_texels ? &sum : nullptr;
      std::vector<T> g0(C), g1(C);
#pragma omp for schedule(static)
      for (int64_t p = 0; p < pixels; ++p) {
        const T* g = grad_out + p * C;
        T u = uv[2 * p], v = uv[2 * p + 1];
        T gu = T(0), gv = T(0), gl = T(0);
        if (!unusable(u, v)) {
          const int64_t tz = image(p);
          if (filter == kNearest) {
            const int64_t row = nearest(tz, u, v);
            if (tex_sum && row >= 0) {
              for (int64_t e = 0; e < C; ++e) sum.add(row * C + e, g[e]);
            }
          } else {
            int64_t k0 = 0, k1 = 0;
            T frac = T(0);
            if (filter != kLinear) levels(level, p, k0, k1, frac);
            Taps<T> t0, t1;
            const bool on0 = taps(k0, tz, u, v, t0), on1 = frac > T(0) && taps(k1, tz, u, v, t1);
            if (frac > T(0)) {
              // out = out0 + frac (out1 - out0): d/dout0 = g - frac g, d/dout1 = frac g,
              // d/dfrac = g . (out1 - out0)
              for (int64_t e = 0; e < C; ++e) {
                gl += g[e] * ((on1 ? value(t1, e) : T(0)) - (on0 ? value(t0, e) : T(0)));
                g0[e] = g[e] - frac * g[e];
                g1[e] = frac * g[e];
              }
              if (on0) bilinear_backward(t0, g0.data(), tex_sum, gu, gv);
              if (on1) bilinear_backward(t1, g1.data(), tex_sum, gu, gv);
            } else if (on0) {
              bilinear_backward(t0, g, tex_sum, gu, gv);
            }
          }
        }
        if (grad_uv) grad_uv[2 * p] = gu, grad_uv[2 * p + 1] = gv;
        if (grad_level) grad_level[p] = gl;
      }
      sum.reduce();
    }
  }
};

template <typename T>
Texture2D<T> make(const torch::Tensor& texels, const torch::Tensor& uv, const torch::Tensor& level,
                  const std::vector<int64_t>& heights, const std::vector<int64_t>& widths, int64_t images,
                  int64_t filter, int64_t boundary) {
  TORCH_CHECK(texels.dim() == 2 && uv.dim() == 2 && uv.size(1) == 2, "texture kernel: texels [T, C], uv [P, 2]");
  for (const auto* t : {&texels, &uv, &level}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous() && t->scalar_type() == texels.scalar_type(),
                "texture kernel: CPU, contiguous tensors of one dtype");
  }
  TORCH_CHECK(filter >= kNearest && filter <= kMipLinear && boundary >= kWrap && boundary <= kZero,
              "texture kernel: filter or boundary code");
  TORCH_CHECK(!heights.empty() && heights.size() == widths.size() && images >= 1, "texture kernel: level sizes");
  TORCH_CHECK(filter < kMipNearest || level.numel() == uv.size(0), "texture kernel: level [P] for a mip filter");
  const int64_t pixels = uv.size(0);
  TORCH_CHECK(pixels % images == 0, "texture kernel: pixels of whole images");
  Texture2D<T> k{texels.data_ptr<T>(), texels.size(1), images, std::max<int64_t>(pixels / images, 1), {}, heights,
                 widths, int(filter), int(boundary)};
  int64_t start = 0;
  const int64_t levels = filter >= kMipNearest ? int64_t(heights.size()) : 1;
  for (int64_t i = 0; i < levels; ++i) {
    k.offset.push_back(start);
    start += images * heights[i] * widths[i];
  }
  TORCH_CHECK(start <= texels.size(0), "texture kernel: texels too short for the level sizes");
  return k;
}

}  // namespace

torch::Tensor texture2d_forward(torch::Tensor texels, torch::Tensor uv, torch::Tensor level,
                                std::vector<int64_t> heights, std::vector<int64_t> widths, int64_t images,
                                int64_t filter, int64_t boundary) {
  auto out = torch::empty({uv.size(0), texels.size(1)}, texels.options());
  AT_DISPATCH_FLOATING_TYPES(texels.scalar_type(), "texture2d_forward", [&] {
    make<scalar_t>(texels, uv, level, heights, widths, images, filter, boundary)
        .forward(uv.data_ptr<scalar_t>(), level.numel() ? level.data_ptr<scalar_t>() : nullptr,
                 out.data_ptr<scalar_t>(), uv.size(0));
  });
  return out;
}

std::vector<torch::Tensor> texture2d_backward(torch::Tensor grad_out, torch::Tensor texels, torch::Tensor uv,
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
  AT_DISPATCH_FLOATING_TYPES(texels.scalar_type(), "texture2d_backward", [&] {
    make<scalar_t>(texels, uv, level, heights, widths, images, filter, boundary)
        .backward(grad_out.data_ptr<scalar_t>(), uv.data_ptr<scalar_t>(),
                  level.numel() ? level.data_ptr<scalar_t>() : nullptr,
                  grad_texels.numel() ? grad_texels.data_ptr<scalar_t>() : nullptr, texels.numel(),
                  grad_uv.numel() ? grad_uv.data_ptr<scalar_t>() : nullptr,
                  grad_level.numel() ? grad_level.data_ptr<scalar_t>() : nullptr, uv.size(0));
  });
  return {grad_texels, grad_uv, grad_level};
}

}  // namespace glsplat
