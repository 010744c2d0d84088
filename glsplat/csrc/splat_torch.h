// The splat's tensors as the kernels of both devices take them: checked, and viewed as splat.h's
// accessors. Users' input is checked once, at splat.py's door; these checks guard the kernels'
// memory accesses against a wrong call from inside (shapes, dtypes, devices: no pass over data).
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

// The inputs of splat_forward / splat_backward (see kernels.h).
struct SplatTensors {
  torch::Tensor clip, faces, bary, colors, tri_id, depth, offset;  // bary and depth evenly spaced
  int64_t bary_stride, depth_stride;

  SplatTensors(const torch::Tensor& clip_, const torch::Tensor& faces_, const torch::Tensor& bary_,
               const torch::Tensor& colors_, const torch::Tensor& tri_id_, const torch::Tensor& depth_,
               const torch::Tensor& offset_)
      : clip(clip_), faces(faces_), colors(colors_), tri_id(tri_id_), offset(offset_) {
    const auto device = tri_id.device();
    for (const torch::Tensor* t : {&clip_, &faces_, &bary_, &colors_, &depth_}) {
      TORCH_CHECK(t->device() == device, "splat kernel: tensors on one device only");
    }
    TORCH_CHECK(tri_id.dim() == 4 && tri_id.scalar_type() == torch::kInt && tri_id.is_contiguous(),
                "splat kernel: tri_id must be contiguous int32 [B, K, H, W]");
    TORCH_CHECK(depth_.scalar_type() == torch::kFloat && depth_.sizes() == tri_id.sizes(), "splat kernel: depth");
    auto sizes = tri_id.sizes().vec();
    sizes.push_back(2);
    TORCH_CHECK(bary_.sizes().vec() == sizes && bary_.scalar_type() == torch::kFloat,
                "splat kernel: bary must be float32 [B, K, H, W, 2]");
    TORCH_CHECK(clip.dim() == 3 && clip.size(2) == 4 && clip.is_contiguous() &&
                    (clip.size(0) == 1 || clip.size(0) == tri_id.size(0)) && clip.scalar_type() == colors.scalar_type(),
                "splat kernel: clip must be contiguous [1 or B, V, 4] in the colors' dtype");
    TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3 && faces.scalar_type() == torch::kLong && faces.is_contiguous(),
                "splat kernel: faces must be contiguous int64 [F, 3]");
    TORCH_CHECK(colors.dim() == 2 && colors.size(1) == 4 && colors.is_contiguous(),
                "splat kernel: colors must be contiguous [N, 4]");
    TORCH_CHECK(offset.numel() == 0 || (offset.device() == device && offset.sizes() == at::IntArrayRef{colors.size(0), 2} &&
                                        offset.is_contiguous() && offset.scalar_type() == colors.scalar_type()),
                "splat kernel: offset must be empty or contiguous [N, 2] in the colors' dtype");
    bary = evenly_spaced(bary_, 2, &bary_stride);
    depth = evenly_spaced(depth_, 1, &depth_stride);
  }

  int64_t B() const { return tri_id.size(0); }
  int64_t K() const { return tri_id.size(1); }
  int64_t H() const { return tri_id.size(2); }
  int64_t W() const { return tri_id.size(3); }
  bool has_offset() const { return offset.numel() > 0; }

  template <typename T>
  Splat<T> splat(double scale, double sigma) const {
    return Splat<T>{B(), K(), H(), W(), tri_id.data_ptr<int32_t>(), depth.data_ptr<float>(), depth_stride,
                    T(scale), T(1.0 / (2 * sigma * sigma)), T(1.0 / (sigma * sigma)), T(W()) / 2, T(H()) / 2};
  }
  template <typename T>
  ClipPoints<T> points() const {
    return {clip.data_ptr<T>(),
            {tri_id.data_ptr<int32_t>(), bary.data_ptr<float>(), bary_stride, faces.data_ptr<int64_t>(), clip.size(1),
             K() * H() * W(), clip.size(0) == 1}};
  }
  template <typename T>
  Packed<T> packed() const {
    return {colors.data_ptr<T>(), has_offset() ? offset.data_ptr<T>() : nullptr};
  }
};

// The glue of splat_backward (see kernels.h): rows [G] int64, edge [G, 2] int64, t [G] float64, on
// the raster's device (all empty: none); rows index the N packed samples.
inline GlueRows checked_glue(const torch::Tensor& rows, const torch::Tensor& edge, const torch::Tensor& t,
                          const SplatTensors& splat) {
  const int64_t count = rows.numel();
  const bool shapes = rows.dim() == 1 && edge.sizes() == at::IntArrayRef({count, 2}) && t.sizes() == rows.sizes();
  const bool types = rows.scalar_type() == torch::kLong && edge.scalar_type() == torch::kLong &&
                     t.scalar_type() == torch::kDouble;
  const bool layout = rows.is_contiguous() && edge.is_contiguous() && t.is_contiguous();
  const bool device = count == 0 || (rows.device() == splat.tri_id.device() && edge.device() == rows.device() &&
                                     t.device() == rows.device());
  TORCH_CHECK(shapes && types && layout && device,
              "splat kernel: the glue must be rows [G] int64, edge [G, 2] int64 and t [G] float64 on the raster's device");
  if (count == 0) return {nullptr, nullptr, nullptr, 0};
  return {rows.data_ptr<int64_t>(), edge.data_ptr<int64_t>(), t.data_ptr<double>(), count};
}

// An optional gradient: null where absent (an empty tensor).
template <typename T>
const T* optional_data(const torch::Tensor& t, at::IntArrayRef sizes, const torch::Device& device, const char* name) {
  if (!t.defined() || t.numel() == 0) return nullptr;
  TORCH_CHECK(t.sizes() == sizes && t.is_contiguous() && t.device() == device, "splat kernel: ", name);
  return t.data_ptr<T>();
}

// The backward pass's outputs: the clip-space vertices' gradient (zeros like clip, or empty
// unless wanted), the packed colors' and the offsets' (empty unless wanted and given).
struct SplatGradients {
  torch::Tensor clip, colors, offset;

  SplatGradients(const SplatTensors& t, bool want_clip, bool want_offset)
      : clip(want_clip ? torch::zeros_like(t.clip) : torch::empty({0}, t.clip.options())),
        colors(torch::empty_like(t.colors)),  // every covered sample's is written
        offset(want_offset && t.has_offset() ? torch::empty_like(t.offset) : torch::empty({0}, t.colors.options())) {}

  template <typename T>
  PackedGrads<T> packed() const {
    return {colors.data_ptr<T>(), offset.numel() ? offset.data_ptr<T>() : nullptr};
  }
  template <typename T>
  T* clip_data() const {
    return clip.numel() ? clip.data_ptr<T>() : nullptr;
  }
  std::vector<torch::Tensor> list() const { return {clip, colors, offset}; }
};

}  // namespace glsplat
