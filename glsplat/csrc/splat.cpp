// CPU kernels of the splat (DESIGN.md steps 6-7): accumulate every sample's 3x3 Gaussian taps
// into the S+ / S0 / S- buffers, and the matching backward pass.
//
// Both passes are written as gathers so that threads never write to the same place: the forward
// pass loops over target pixels and pulls from their 3x3 source neighbours, the backward pass
// loops over source samples and pulls the gradients of their 3x3 targets.
#include <torch/extension.h>

#include <cmath>
#include <cstdint>

#include "kernels.h"

namespace glsplat {
namespace {

template <typename T>
struct Splat {
  int64_t B, K, H, W;
  const T* point;       // [B, K, H, W, 4] clip-space point of each sample (corners blended)
  const T* colors;      // [B, K, H, W, 4] straight RGBA
  const bool* mask;     // [B, K, H, W] covered
  const float* depth;   // [B, K, H, W] window depth, 1 on background
  T scale, inv_two_sigma2, inv_sigma2;
  T half_w, half_h;     // W / 2, H / 2

  int64_t sample(int64_t b, int64_t k, int64_t i, int64_t j) const { return ((b * K + k) * H + i) * W + j; }

  float z(int64_t b, int64_t k, int64_t i, int64_t j) const {
    if (i < 0 || i >= H || j < 0 || j >= W) return 1.0f;  // outside the image: background
    return depth[sample(b, k, i, j)];
  }

  // The layer of source pixel p = (pi, pj) that lies on the surface seen at target q = (qi, qj);
  // sample layer l goes to S+ (0) if s > l, S0 (1) if s == l, S- (2) if s < l.
  int64_t surface_layer(int64_t b, int64_t pi, int64_t pj, int64_t qi, int64_t qj) const {
    const float zp0 = z(b, 0, pi, pj), zq0 = z(b, 0, qi, qj);
    int64_t a = 0, bl = 0;
    float da = INFINITY, db = INFINITY;
    for (int64_t l = 0; l < K; ++l) {
      const float dpa = std::fabs(z(b, l, pi, pj) - zq0);
      if (dpa < da) { da = dpa; a = l; }
      const float dqb = std::fabs(z(b, l, qi, qj) - zp0);
      if (dqb < db) { db = dqb; bl = l; }
    }
    return db < da ? -bl : a;
  }

  static int buffer_of(int64_t s, int64_t l) { return s > l ? 0 : (s == l ? 1 : 2); }

  // Splat position of sample n in image coordinates: x = (ndc_x + 1) W / 2, y = (1 - ndc_y) H / 2.
  void position(int64_t n, T* x, T* y) const {
    const T* p = point + 4 * n;
    *x = (p[0] / p[3] + T(1)) * half_w;
    *y = (T(1) - p[1] / p[3]) * half_h;
  }

  // Gaussian tap weight of a sample at (x, y) on the centre of pixel (qi, qj), and the offset to it.
  T weight(T x, T y, int64_t qi, int64_t qj, T* dx, T* dy) const {
    *dx = (T(qj) + T(0.5)) - x;
    *dy = (T(qi) + T(0.5)) - y;
    return scale * std::exp(-(*dx * *dx + *dy * *dy) * inv_two_sigma2);
  }

  void forward(T* acc) const {  // acc: [3, B, H, W, 4], zeroed
    const int64_t plane = B * H * W * 4;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t qi = 0; qi < H; ++qi) {
        for (int64_t qj = 0; qj < W; ++qj) {
          T* out = acc + ((b * H + qi) * W + qj) * 4;
          for (int64_t pi = qi - 1; pi <= qi + 1; ++pi) {
            if (pi < 0 || pi >= H) continue;
            for (int64_t pj = qj - 1; pj <= qj + 1; ++pj) {
              if (pj < 0 || pj >= W || !mask[sample(b, 0, pi, pj)]) continue;
              const int64_t s = surface_layer(b, pi, pj, qi, qj);
              for (int64_t l = 0; l < K; ++l) {
                const int64_t n = sample(b, l, pi, pj);
                if (!mask[n]) break;  // layers are packed: nothing behind a background layer
                T x, y, dx, dy;
                position(n, &x, &y);
                const T* c = colors + 4 * n;
                const T w = weight(x, y, qi, qj, &dx, &dy) * c[3];
                T* o = out + buffer_of(s, l) * plane;
                o[0] += w * c[0];
                o[1] += w * c[1];
                o[2] += w * c[2];
                o[3] += w;
              }
            }
          }
        }
      }
    }
  }

  void backward(const T* grad_acc, T* grad_point, T* grad_colors) const {
    const int64_t plane = B * H * W * 4;
#pragma omp parallel for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t l = 0; l < K; ++l) {
        for (int64_t pi = 0; pi < H; ++pi) {
          for (int64_t pj = 0; pj < W; ++pj) {
            const int64_t n = sample(b, l, pi, pj);
            if (!mask[n]) continue;
            const T* c = colors + 4 * n;
            T x, y;
            position(n, &x, &y);
            T g_pos_x = 0, g_pos_y = 0, g_rgb[3] = {0, 0, 0}, g_alpha = 0;
            for (int64_t qi = pi - 1; qi <= pi + 1; ++qi) {
              if (qi < 0 || qi >= H) continue;
              for (int64_t qj = pj - 1; qj <= pj + 1; ++qj) {
                if (qj < 0 || qj >= W) continue;
                const int64_t s = surface_layer(b, pi, pj, qi, qj);
                const T* g = grad_acc + buffer_of(s, l) * plane + ((b * H + qi) * W + qj) * 4;
                T dx, dy;
                const T gauss = weight(x, y, qi, qj, &dx, &dy);
                // d(loss)/d(tap weight w), where the tap adds w * (r, g, b, 1) and w = gauss * alpha
                const T g_w = g[0] * c[0] + g[1] * c[1] + g[2] * c[2] + g[3];
                g_alpha += gauss * g_w;
                const T w = gauss * c[3];
                g_rgb[0] += w * g[0];
                g_rgb[1] += w * g[1];
                g_rgb[2] += w * g[2];
                // d(gauss)/d(pos) = gauss * (centre - pos) / sigma^2
                const T g_offset = w * g_w * inv_sigma2;
                g_pos_x += g_offset * dx;
                g_pos_y += g_offset * dy;
              }
            }
            // Through the perspective divide to the blended clip-space point.
            const T* p = point + 4 * n;
            const T inv_w = T(1) / p[3];
            T* gp = grad_point + 4 * n;
            gp[0] = g_pos_x * half_w * inv_w;
            gp[1] = -g_pos_y * half_h * inv_w;
            gp[3] = (-g_pos_x * half_w * p[0] + g_pos_y * half_h * p[1]) * inv_w * inv_w;
            T* gc = grad_colors + 4 * n;
            gc[0] = g_rgb[0];
            gc[1] = g_rgb[1];
            gc[2] = g_rgb[2];
            gc[3] = g_alpha;
          }
        }
      }
    }
  }
};

template <typename T>
Splat<T> make(const torch::Tensor& point, const torch::Tensor& colors, const torch::Tensor& mask,
              const torch::Tensor& depth, double scale, double sigma) {
  return Splat<T>{mask.size(0), mask.size(1), mask.size(2), mask.size(3),
                  point.data_ptr<T>(), colors.data_ptr<T>(), mask.data_ptr<bool>(), depth.data_ptr<float>(),
                  T(scale), T(1.0 / (2 * sigma * sigma)), T(1.0 / (sigma * sigma)),
                  T(mask.size(3)) / 2, T(mask.size(2)) / 2};
}

void check(const torch::Tensor& point, const torch::Tensor& colors, const torch::Tensor& mask,
           const torch::Tensor& depth) {
  for (const auto* t : {&point, &colors, &mask, &depth}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(), "splat kernel: CPU, contiguous tensors only");
  }
  TORCH_CHECK(mask.dim() == 4 && mask.scalar_type() == torch::kBool, "splat kernel: mask must be bool [B, K, H, W]");
  TORCH_CHECK(depth.scalar_type() == torch::kFloat && depth.sizes() == mask.sizes(), "splat kernel: depth");
  TORCH_CHECK(point.scalar_type() == colors.scalar_type(), "splat kernel: point and colors dtypes differ");
  const auto samples = mask.sizes().vec();
  auto rgba = samples;
  rgba.push_back(4);
  TORCH_CHECK(point.sizes().vec() == rgba && colors.sizes().vec() == rgba,
              "splat kernel: point and colors must be [B, K, H, W, 4] matching the raster");
}

}  // namespace

torch::Tensor splat_forward(torch::Tensor point, torch::Tensor colors, torch::Tensor mask, torch::Tensor depth,
                            double scale, double sigma) {
  check(point, colors, mask, depth);
  auto acc = torch::zeros({3, mask.size(0), mask.size(2), mask.size(3), 4}, colors.options());
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_forward", [&] {
    make<scalar_t>(point, colors, mask, depth, scale, sigma).forward(acc.data_ptr<scalar_t>());
  });
  return acc;
}

std::vector<torch::Tensor> splat_backward(torch::Tensor grad_acc, torch::Tensor point, torch::Tensor colors,
                                          torch::Tensor mask, torch::Tensor depth, double scale, double sigma) {
  check(point, colors, mask, depth);
  grad_acc = grad_acc.contiguous();
  auto grad_point = torch::zeros_like(point);
  auto grad_colors = torch::zeros_like(colors);
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_backward", [&] {
    make<scalar_t>(point, colors, mask, depth, scale, sigma)
        .backward(grad_acc.data_ptr<scalar_t>(), grad_point.data_ptr<scalar_t>(), grad_colors.data_ptr<scalar_t>());
  });
  return {grad_point, grad_colors};
}

}  // namespace glsplat
