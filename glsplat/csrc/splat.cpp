// CPU entry points of the splat (splat_cpu.h does the work).
#include <torch/extension.h>

#include <vector>

#include "kernels.h"
#include "splat_cpu.h"
#include "splat_torch.h"

namespace glsplat {
namespace {

// The packed rows of the raster, checked against the N rows of the packed colors.
cpu::PackedRows packed_rows(const SplatTensors& t) {
  TORCH_CHECK(t.tri_id.device().is_cpu(), "splat kernel: CPU tensors only");
  cpu::PackedRows rows(t.tri_id.data_ptr<int32_t>(), t.B(), t.K(), t.H(), t.W());
  TORCH_CHECK(t.colors.size(0) == rows.count(), "splat kernel: colors must be [N, 4] for the N = ", rows.count(),
              " covered samples of the raster, got ", t.colors.sizes());
  return rows;
}

}  // namespace

std::vector<torch::Tensor> splat_forward(torch::Tensor clip, torch::Tensor faces, torch::Tensor bary,
                                         torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                         torch::Tensor offset, double scale, double sigma, bool with_buffers) {
  const SplatTensors t(clip, faces, bary, colors, tri_id, depth, offset);
  const cpu::PackedRows rows = packed_rows(t);
  const int64_t B = t.B(), K = t.K(), H = t.H(), W = t.W();
  const auto options = colors.options();
  auto image = torch::empty({B, H, W, 4}, options);
  auto buffers = with_buffers ? torch::empty({kBuffers, B, H, W, 4}, options) : torch::empty({0}, options);
  auto state = K == 1 ? torch::empty({B, H, W}, options) : torch::empty({B, H, W, kBuffers, 4}, options);
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_forward", [&] {
    cpu::forward(cpu::Inputs<scalar_t>(t.splat<scalar_t>(scale, sigma), t.points<scalar_t>(), t.packed<scalar_t>(), rows),
                 image.data_ptr<scalar_t>(), with_buffers ? buffers.data_ptr<scalar_t>() : nullptr,
                 state.data_ptr<scalar_t>());
  });
  if (K == 1) return {image, buffers, image, state};
  return {image, buffers, state};
}

std::vector<torch::Tensor> splat_backward(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                          std::vector<torch::Tensor> state, torch::Tensor clip, torch::Tensor faces,
                                          torch::Tensor bary, torch::Tensor colors, torch::Tensor tri_id,
                                          torch::Tensor depth, torch::Tensor offset, torch::Tensor glue_rows,
                                          torch::Tensor glue_edge, torch::Tensor glue_t, double scale, double sigma,
                                          bool want_clip, bool want_offset) {
  const SplatTensors t(clip, faces, bary, colors, tri_id, depth, offset);
  const GlueRows glue = checked_glue(glue_rows, glue_edge, glue_t, t);
  const cpu::PackedRows rows = packed_rows(t);
  const bool flat = t.K() == 1;
  TORCH_CHECK(state.size() == (flat ? 2u : 1u), "splat kernel: the forward pass's state");
  const SplatGradients grads(t, want_clip, want_offset);
  const std::vector<int64_t> image_sizes{t.B(), t.H(), t.W(), 4};
  auto buffer_sizes = image_sizes;
  buffer_sizes.insert(buffer_sizes.begin(), kBuffers);
  const std::vector<int64_t> sums_sizes{t.B(), t.H(), t.W(), kBuffers, 4};
  const auto device = tri_id.device();
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_backward", [&] {
    const scalar_t* image = flat ? optional_data<scalar_t>(state[0], image_sizes, device, "image") : nullptr;
    const scalar_t* kept = flat ? optional_data<scalar_t>(state[1], at::IntArrayRef(image_sizes).slice(0, 3), device, "weights")
                                : optional_data<scalar_t>(state[0], sums_sizes, device, "sums");
    cpu::backward(cpu::Inputs<scalar_t>(t.splat<scalar_t>(scale, sigma), t.points<scalar_t>(), t.packed<scalar_t>(), rows,
                                        glue),
                  optional_data<scalar_t>(grad_out, image_sizes, device, "grad_out"),
                  optional_data<scalar_t>(grad_buffers, buffer_sizes, device, "grad_buffers"), image, kept,
                  cpu::Gradients<scalar_t>{grads.packed<scalar_t>(), grads.clip_data<scalar_t>(), clip.numel()});
  });
  return grads.list();
}

}  // namespace glsplat
