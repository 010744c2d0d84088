// Tensor checks and the Splat view over tensors, shared by the CPU and CUDA entry points.
#pragma once
#include <torch/extension.h>

#include "splat.h"

namespace glsplat {

// Per-sample values of `t`, whose last axis holds `values` numbers per sample, evenly spaced:
// t itself when it is, e.g., a view into the [B, K, H, W, 4] G-buffer, else a contiguous copy.
// `stride` receives the distance between consecutive samples, in elements.
inline torch::Tensor evenly_spaced(const torch::Tensor& t, int64_t values, int64_t* stride) {
  const int64_t dims = values == 1 ? t.dim() : t.dim() - 1;
  if (dims > 0 && t.size(dims - 1) > 1 && (values == 1 || t.stride(-1) == 1)) {
    const int64_t step = t.stride(dims - 1);
    bool even = true;
    int64_t expected = step;
    for (int64_t d = dims - 1; d >= 0; --d) {
      if (t.size(d) != 1 && t.stride(d) != expected) even = false;
      expected *= t.size(d);
    }
    if (even && step >= values) {
      *stride = step;
      return t;
    }
  }
  *stride = values;
  return t.contiguous();
}

inline void check_splat_inputs(const torch::Tensor& colors, const torch::Tensor& tri_id, const torch::Tensor& depth) {
  TORCH_CHECK(colors.device() == tri_id.device() && depth.device() == tri_id.device() && colors.is_contiguous() &&
                  tri_id.is_contiguous(), "splat kernel: contiguous tensors on one device only");
  TORCH_CHECK(tri_id.dim() == 4 && tri_id.scalar_type() == torch::kInt, "splat kernel: tri_id must be int32 [B, K, H, W]");
  TORCH_CHECK(depth.scalar_type() == torch::kFloat && depth.sizes() == tri_id.sizes(), "splat kernel: depth");
}

// Colours of every sample, [B, K, H, W, 4] (what the CUDA kernels take).
inline void check_full_colors(const torch::Tensor& colors, const torch::Tensor& tri_id) {
  auto rgba = tri_id.sizes().vec();
  rgba.push_back(4);
  TORCH_CHECK(colors.sizes().vec() == rgba, "splat kernel: colors must be [B, K, H, W, 4] matching the raster");
}

inline void check_points(const torch::Tensor& point, const torch::Tensor& colors, const torch::Tensor& tri_id) {
  TORCH_CHECK(point.scalar_type() == colors.scalar_type(), "splat kernel: point and colors dtypes differ");
  auto sizes = tri_id.sizes().vec();
  sizes.push_back(4);
  TORCH_CHECK(point.sizes().vec() == sizes && point.is_contiguous() && point.device() == colors.device(),
              "splat kernel: point must be [B, K, H, W, 4] matching the raster");
}

template <typename T>
Splat<T> make_splat(const torch::Tensor& tri_id, const torch::Tensor& depth, int64_t depth_stride, double scale,
                    double sigma) {
  return Splat<T>{tri_id.size(0), tri_id.size(1), tri_id.size(2), tri_id.size(3),
                  tri_id.data_ptr<int32_t>(), depth.data_ptr<float>(), depth_stride,
                  T(scale), T(1.0 / (2 * sigma * sigma)), T(1.0 / (sigma * sigma)),
                  T(tri_id.size(3)) / 2, T(tri_id.size(2)) / 2};
}

// An optional gradient: null where absent (an empty tensor).
template <typename T>
const T* optional_data(const torch::Tensor& t, at::IntArrayRef sizes, const torch::Device& device, const char* name) {
  if (!t.defined() || t.numel() == 0) return nullptr;
  TORCH_CHECK(t.sizes() == sizes && t.is_contiguous() && t.device() == device, "splat kernel: ", name);
  return t.data_ptr<T>();
}

}  // namespace glsplat
