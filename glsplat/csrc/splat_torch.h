// Tensor checks and the Splat view over tensors, shared by the CPU and CUDA entry points.
#pragma once
#include <torch/extension.h>

#include "splat.h"

namespace glsplat {

template <typename T>
Splat<T> make_splat(const torch::Tensor& point, const torch::Tensor& colors, const torch::Tensor& mask,
                    const torch::Tensor& depth, double scale, double sigma) {
  return Splat<T>{mask.size(0), mask.size(1), mask.size(2), mask.size(3),
                  point.data_ptr<T>(), colors.data_ptr<T>(), mask.data_ptr<bool>(), depth.data_ptr<float>(),
                  T(scale), T(1.0 / (2 * sigma * sigma)), T(1.0 / (sigma * sigma)),
                  T(mask.size(3)) / 2, T(mask.size(2)) / 2};
}

inline void check_splat_inputs(const torch::Tensor& point, const torch::Tensor& colors, const torch::Tensor& mask,
                               const torch::Tensor& depth) {
  for (const auto* t : {&point, &colors, &mask, &depth}) {
    TORCH_CHECK(t->device() == mask.device() && t->is_contiguous(),
                "splat kernel: contiguous tensors on one device only");
  }
  TORCH_CHECK(mask.dim() == 4 && mask.scalar_type() == torch::kBool, "splat kernel: mask must be bool [B, K, H, W]");
  TORCH_CHECK(depth.scalar_type() == torch::kFloat && depth.sizes() == mask.sizes(), "splat kernel: depth");
  TORCH_CHECK(point.scalar_type() == colors.scalar_type(), "splat kernel: point and colors dtypes differ");
  auto rgba = mask.sizes().vec();
  rgba.push_back(4);
  TORCH_CHECK(point.sizes().vec() == rgba && colors.sizes().vec() == rgba,
              "splat kernel: point and colors must be [B, K, H, W, 4] matching the raster");
}

// An optional gradient: null where absent (an empty tensor).
template <typename T>
const T* optional_data(const torch::Tensor& t, at::IntArrayRef sizes, const torch::Device& device, const char* name) {
  if (!t.defined() || t.numel() == 0) return nullptr;
  TORCH_CHECK(t.sizes() == sizes && t.is_contiguous() && t.device() == device, "splat kernel: ", name);
  return t.data_ptr<T>();
}

}  // namespace glsplat
