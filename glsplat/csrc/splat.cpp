// CPU entry points of the splat (splat_cpu.h does the work).
#include <torch/extension.h>

#include <vector>

#include "kernels.h"
#include "splat_cpu.h"
#include "splat_torch.h"

namespace glsplat {
namespace {

// The samples' points as a [B, K, H, W, 4] tensor, and their gradient.
struct PointTensor {
  torch::Tensor point, grad;

  template <typename T>
  cpu::GivenPoints<T> as() const {
    return {point.data_ptr<T>(), grad.defined() ? grad.data_ptr<T>() : nullptr};
  }
};

// The samples' points blended from clip-space vertices, and the vertices' gradient.
struct ClipTensor {
  torch::Tensor clip, faces, tri_id, bary, grad;
  int64_t bary_stride;

  ClipTensor(const torch::Tensor& clip_, const torch::Tensor& faces_, const torch::Tensor& bary_,
             const torch::Tensor& colors, const torch::Tensor& tri_id_)
      : clip(clip_), faces(faces_), tri_id(tri_id_) {
    TORCH_CHECK(clip.dim() == 3 && clip.size(2) == 4 && clip.is_contiguous() && clip.device().is_cpu() &&
                    (clip.size(0) == 1 || clip.size(0) == tri_id.size(0)) && clip.scalar_type() == colors.scalar_type(),
                "splat kernel: clip must be contiguous [1 or B, V, 4] in the colours' dtype");
    TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3 && faces.scalar_type() == torch::kLong &&
                    faces.is_contiguous() && faces.device().is_cpu(),
                "splat kernel: faces must be contiguous int64 [F, 3]");
    auto sizes = tri_id.sizes().vec();
    sizes.push_back(2);
    TORCH_CHECK(bary_.sizes().vec() == sizes && bary_.scalar_type() == torch::kFloat && bary_.device().is_cpu(),
                "splat kernel: bary must be float32 [B, K, H, W, 2]");
    bary = evenly_spaced(bary_, 2, &bary_stride);
  }

  template <typename T>
  cpu::ClipPoints<T> as() const {
    return {clip.data_ptr<T>(), clip.size(1), tri_id.numel() / std::max<int64_t>(tri_id.size(0), 1), clip.size(0) == 1,
            faces.data_ptr<int64_t>(), tri_id.data_ptr<int32_t>(), bary.data_ptr<float>(), bary_stride,
            grad.defined() ? grad.data_ptr<T>() : nullptr, grad.defined() ? grad.numel() : 0};
  }
};

template <typename T>
Splat<T> make_cpu_splat(const torch::Tensor& tri_id, const torch::Tensor& depth, torch::Tensor* depth_kept,
                        double scale, double sigma) {
  int64_t depth_stride;
  *depth_kept = evenly_spaced(depth, 1, &depth_stride);
  return make_splat<T>(tri_id, *depth_kept, depth_stride, scale, sigma);
}

// The colours of the covered samples, packed [N, 4] (see cpu::Packed), and where each row's begin.
struct PackedColors {
  torch::Tensor colors;
  std::vector<int64_t> first;
  int64_t K, H;

  PackedColors(const torch::Tensor& colors_, const torch::Tensor& tri_id, const torch::Tensor& depth)
      : colors(colors_), K(tri_id.size(1)), H(tri_id.size(2)) {
    check_splat_inputs(colors, tri_id, depth);
    TORCH_CHECK(tri_id.device().is_cpu(), "splat kernel: CPU tensors only");
    first = cpu::packed_rows(tri_id.data_ptr<int32_t>(), tri_id.size(0) * K * H, tri_id.size(3));
    TORCH_CHECK(colors.dim() == 2 && colors.size(1) == 4 && colors.size(0) == first.back(),
                "splat kernel: colors must be [N, 4] for the N = ", first.back(), " covered samples of the raster, got ",
                colors.sizes());
  }
  template <typename V>
  cpu::Packed<V> as(V* data) const {
    return {data, first.data(), K, H};
  }
};

// {image, buffers (empty unless with_buffers), state...}, the state sparing the backward pass all
// taps: with one layer the image and the weights [B, H, W], with more the unnormalised sums
// [B, H, W, kBuffers, 4].
template <typename Source>
std::vector<torch::Tensor> forward(const Source& source, const torch::Tensor& colors_, const torch::Tensor& tri_id,
                                   const torch::Tensor& depth, double scale, double sigma, bool with_buffers) {
  const PackedColors packed(colors_, tri_id, depth);
  const auto& colors = packed.colors;
  const int64_t B = tri_id.size(0), K = tri_id.size(1), H = tri_id.size(2), W = tri_id.size(3);
  auto image = torch::empty({B, H, W, 4}, colors.options());
  auto buffers = with_buffers ? torch::empty({kBuffers, B, H, W, 4}, colors.options()) : torch::empty({0}, colors.options());
  auto state = K == 1 ? torch::empty({B, H, W}, colors.options()) : torch::empty({B, H, W, kBuffers, 4}, colors.options());
  torch::Tensor depth_kept;
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_forward", [&] {
    cpu::forward(make_cpu_splat<scalar_t>(tri_id, depth, &depth_kept, scale, sigma), source.template as<scalar_t>(),
                 packed.as<const scalar_t>(colors.data_ptr<scalar_t>()), image.data_ptr<scalar_t>(),
                 with_buffers ? buffers.data_ptr<scalar_t>() : nullptr, state.data_ptr<scalar_t>());
  });
  if (K == 1) return {image, buffers, image, state};
  return {image, buffers, state};
}

// The gradient w.r.t. the colours; the source's gradient is written into source.grad.
template <typename Source>
torch::Tensor backward(const Source& source, const torch::Tensor& grad_out, const torch::Tensor& grad_buffers,
                       const std::vector<torch::Tensor>& state, const torch::Tensor& colors_,
                       const torch::Tensor& tri_id, const torch::Tensor& depth, double scale, double sigma) {
  const PackedColors packed(colors_, tri_id, depth);
  const auto& colors = packed.colors;
  const bool flat = tri_id.size(1) == 1;
  TORCH_CHECK(state.size() == (flat ? 2u : 1u), "splat kernel: the forward pass's state");
  auto grad_colors = torch::empty_like(colors);  // every covered sample's is written
  const std::vector<int64_t> image_sizes{tri_id.size(0), tri_id.size(2), tri_id.size(3), 4};
  auto buffer_sizes = image_sizes;
  buffer_sizes.insert(buffer_sizes.begin(), kBuffers);
  torch::Tensor depth_kept;
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_backward", [&] {
    const scalar_t* image = flat ? optional_data<scalar_t>(state[0], image_sizes, tri_id.device(), "image") : nullptr;
    std::vector<int64_t> sums_sizes(image_sizes.begin(), image_sizes.end() - 1);
    sums_sizes.insert(sums_sizes.end(), {kBuffers, 4});
    const scalar_t* kept =
        flat ? optional_data<scalar_t>(state[1], at::IntArrayRef(image_sizes).slice(0, 3), tri_id.device(), "weights")
             : optional_data<scalar_t>(state[0], sums_sizes, tri_id.device(), "sums");
    cpu::backward(make_cpu_splat<scalar_t>(tri_id, depth, &depth_kept, scale, sigma), source.template as<scalar_t>(),
                  packed.as<const scalar_t>(colors.data_ptr<scalar_t>()),
                  optional_data<scalar_t>(grad_out, image_sizes, tri_id.device(), "grad_out"),
                  optional_data<scalar_t>(grad_buffers, buffer_sizes, tri_id.device(), "grad_buffers"), image, kept,
                  packed.as<scalar_t>(grad_colors.data_ptr<scalar_t>()));
  });
  return grad_colors;
}

}  // namespace

std::vector<torch::Tensor> splat_points_forward(torch::Tensor point, torch::Tensor colors, torch::Tensor tri_id,
                                                torch::Tensor depth, double scale, double sigma, bool with_buffers) {
  check_points(point, colors, tri_id);
  return forward(PointTensor{point, {}}, colors, tri_id, depth, scale, sigma, with_buffers);
}

std::vector<torch::Tensor> splat_points_backward(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                                 std::vector<torch::Tensor> state, torch::Tensor point,
                                                 torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                                 double scale, double sigma) {
  check_points(point, colors, tri_id);
  const PointTensor source{point, torch::zeros_like(point)};
  auto grad_colors = backward(source, grad_out, grad_buffers, state, colors, tri_id, depth, scale, sigma);
  return {source.grad, grad_colors};
}

std::vector<torch::Tensor> splat_clip_forward(torch::Tensor clip, torch::Tensor faces, torch::Tensor bary,
                                              torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                              double scale, double sigma, bool with_buffers) {
  return forward(ClipTensor(clip, faces, bary, colors, tri_id), colors, tri_id, depth, scale, sigma, with_buffers);
}

std::vector<torch::Tensor> splat_clip_backward(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                               std::vector<torch::Tensor> state, torch::Tensor clip,
                                               torch::Tensor faces, torch::Tensor bary, torch::Tensor colors,
                                               torch::Tensor tri_id, torch::Tensor depth, double scale, double sigma) {
  ClipTensor source(clip, faces, bary, colors, tri_id);
  source.grad = torch::zeros_like(clip);
  auto grad_colors = backward(source, grad_out, grad_buffers, state, colors, tri_id, depth, scale, sigma);
  return {source.grad, grad_colors};
}

}  // namespace glsplat
