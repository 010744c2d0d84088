// CPU entry points of the splat: OpenMP loops over the items of splat.h.
#include <torch/extension.h>

#include "kernels.h"
#include "splat_torch.h"

namespace glsplat {
namespace {

template <typename T>
void forward_cpu(const Splat<T>& splat, T* taps, T* out, T* buffers, T* weights) {
  const int64_t samples = splat.B * splat.K * splat.H * splat.W;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < samples; ++n) splat.taps_of(n, taps);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < splat.B; ++b) {
    for (int64_t qi = 0; qi < splat.H; ++qi) {
      for (int64_t qj = 0; qj < splat.W; ++qj) splat.forward_pixel(b, qi, qj, taps, out, buffers, weights);
    }
  }
}

template <typename T>
void backward_cpu(const Splat<T>& splat, const T* grad_out, const T* grad_buffers, const T* buffers,
                  const T* weights, T* grad_acc, T* grad_point, T* grad_colors) {
  const int64_t pixels = splat.B * splat.H * splat.W, samples = pixels * splat.K;
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < pixels; ++q) splat.buffer_gradient(q, grad_out, grad_buffers, buffers, weights, grad_acc);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < samples; ++n) splat.backward_sample(n, grad_acc, grad_point, grad_colors);
}

}  // namespace

std::vector<torch::Tensor> splat_forward(torch::Tensor point, torch::Tensor colors, torch::Tensor mask,
                                         torch::Tensor depth, double scale, double sigma) {
  check_splat_inputs(point, colors, mask, depth);
  TORCH_CHECK(mask.device().is_cpu(), "splat kernel: CPU tensors only");
  const int64_t B = mask.size(0), H = mask.size(2), W = mask.size(3);
  auto out = torch::empty({B, H, W, 4}, colors.options());
  auto buffers = torch::empty({kBuffers, B, H, W, 4}, colors.options());
  auto weights = torch::empty({kBuffers, B, H, W}, colors.options());
  auto taps = torch::empty({mask.numel(), 6}, colors.options());  // read only where mask is set
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_forward", [&] {
    forward_cpu(make_splat<scalar_t>(point, colors, mask, depth, scale, sigma), taps.data_ptr<scalar_t>(),
                out.data_ptr<scalar_t>(), buffers.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>());
  });
  return {out, buffers, weights};
}

std::vector<torch::Tensor> splat_backward(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                          torch::Tensor buffers, torch::Tensor weights, torch::Tensor point,
                                          torch::Tensor colors, torch::Tensor mask, torch::Tensor depth,
                                          double scale, double sigma) {
  check_splat_inputs(point, colors, mask, depth);
  TORCH_CHECK(mask.device().is_cpu(), "splat kernel: CPU tensors only");
  TORCH_CHECK(buffers.is_contiguous() && weights.is_contiguous(), "splat kernel: saved buffers");
  auto grad_acc = torch::empty_like(buffers);
  auto grad_point = torch::zeros_like(point);
  auto grad_colors = torch::zeros_like(colors);
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_backward", [&] {
    backward_cpu(make_splat<scalar_t>(point, colors, mask, depth, scale, sigma),
                 optional_data<scalar_t>(grad_out, buffers.sizes().slice(1), mask.device(), "grad_out"),
                 optional_data<scalar_t>(grad_buffers, buffers.sizes(), mask.device(), "grad_buffers"),
                 buffers.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(), grad_acc.data_ptr<scalar_t>(),
                 grad_point.data_ptr<scalar_t>(), grad_colors.data_ptr<scalar_t>());
  });
  return {grad_point, grad_colors};
}

}  // namespace glsplat
