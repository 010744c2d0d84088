// CUDA entry points of the splat: one thread per item of splat.h.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include "splat_torch.h"

namespace glsplat {
namespace {

constexpr int kThreads = 256;

inline int blocks(int64_t items) { return static_cast<int>((items + kThreads - 1) / kThreads); }

template <typename T>
__global__ void taps_kernel(Splat<T> splat, int64_t samples, T* taps) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n < samples) splat.taps_of(n, taps);
}

template <typename T>
__global__ void forward_kernel(Splat<T> splat, const T* taps, T* out, T* buffers, T* weights) {
  const int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (q >= splat.B * splat.H * splat.W) return;
  const int64_t qj = q % splat.W, qi = (q / splat.W) % splat.H, b = q / (splat.W * splat.H);
  splat.forward_pixel(b, qi, qj, taps, out, buffers, weights);
}

template <typename T>
__global__ void buffer_gradient_kernel(Splat<T> splat, const T* grad_out, const T* grad_buffers, const T* buffers,
                                       const T* weights, T* grad_acc) {
  const int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (q < splat.B * splat.H * splat.W) splat.buffer_gradient(q, grad_out, grad_buffers, buffers, weights, grad_acc);
}

template <typename T>
__global__ void backward_kernel(Splat<T> splat, int64_t samples, const T* grad_acc, T* grad_point, T* grad_colors) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n < samples) splat.backward_sample(n, grad_acc, grad_point, grad_colors);
}

void check_cuda(const torch::Tensor& mask) {
  TORCH_CHECK(mask.device().is_cuda(), "splat kernel: CUDA tensors only");
}

}  // namespace

std::vector<torch::Tensor> splat_forward_cuda(torch::Tensor point, torch::Tensor colors, torch::Tensor mask,
                                              torch::Tensor depth, double scale, double sigma) {
  check_splat_inputs(point, colors, mask, depth);
  check_cuda(mask);
  const c10::cuda::CUDAGuard guard(mask.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t B = mask.size(0), H = mask.size(2), W = mask.size(3), samples = mask.numel(), pixels = B * H * W;
  auto out = torch::empty({B, H, W, 4}, colors.options());
  auto buffers = torch::empty({kBuffers, B, H, W, 4}, colors.options());
  auto weights = torch::empty({kBuffers, B, H, W}, colors.options());
  auto taps = torch::empty({samples, 6}, colors.options());
  if (pixels == 0) return {out, buffers, weights};
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_forward_cuda", [&] {
    const auto splat = make_splat<scalar_t>(point, colors, mask, depth, scale, sigma);
    taps_kernel<<<blocks(samples), kThreads, 0, stream>>>(splat, samples, taps.data_ptr<scalar_t>());
    forward_kernel<<<blocks(pixels), kThreads, 0, stream>>>(splat, taps.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                                          buffers.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, buffers, weights};
}

std::vector<torch::Tensor> splat_backward_cuda(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                               torch::Tensor buffers, torch::Tensor weights, torch::Tensor point,
                                               torch::Tensor colors, torch::Tensor mask, torch::Tensor depth,
                                               double scale, double sigma) {
  check_splat_inputs(point, colors, mask, depth);
  check_cuda(mask);
  TORCH_CHECK(buffers.is_contiguous() && weights.is_contiguous(), "splat kernel: saved buffers");
  const c10::cuda::CUDAGuard guard(mask.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  auto grad_acc = torch::empty_like(buffers);
  auto grad_point = torch::zeros_like(point);
  auto grad_colors = torch::zeros_like(colors);
  const int64_t pixels = weights.numel() / kBuffers, samples = mask.numel();
  if (pixels == 0) return {grad_point, grad_colors};
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_backward_cuda", [&] {
    const auto splat = make_splat<scalar_t>(point, colors, mask, depth, scale, sigma);
    const scalar_t* g_out = optional_data<scalar_t>(grad_out, buffers.sizes().slice(1), mask.device(), "grad_out");
    const scalar_t* g_buf = optional_data<scalar_t>(grad_buffers, buffers.sizes(), mask.device(), "grad_buffers");
    buffer_gradient_kernel<<<blocks(pixels), kThreads, 0, stream>>>(
        splat, g_out, g_buf, buffers.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(), grad_acc.data_ptr<scalar_t>());
    backward_kernel<<<blocks(samples), kThreads, 0, stream>>>(
        splat, samples, grad_acc.data_ptr<scalar_t>(), grad_point.data_ptr<scalar_t>(), grad_colors.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grad_point, grad_colors};
}

}  // namespace glsplat
