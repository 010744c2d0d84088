// CUDA entry points of the splat: one thread per item of splat.h, with the taps and the buffer
// gradients in image-sized tables (memory is cheap there, a second pass over it is not).
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
struct TapTable {  // [B * K * H * W, kTapValues]
  const T* taps;
  __device__ const T* operator()(int64_t n, int64_t, int64_t, int64_t) const { return taps + kTapValues * n; }
};

template <typename T>
struct GradTable {  // [kBuffers, B, H, W, 4], for one image b
  const Splat<T>& s;
  const T* grad_acc;
  int64_t b;
  __device__ const T* operator()(int k, int64_t qi, int64_t qj) const {
    return grad_acc + k * s.plane() + 4 * s.pixel(b, qi, qj);
  }
};

template <typename T>
__global__ void taps_kernel(Splat<T> splat, const T* point, const T* colors, T* taps) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= splat.B * splat.K * splat.H * splat.W || !splat.covered(n)) return;  // the rest is never read
  const int64_t j = n % splat.W, i = (n / splat.W) % splat.H;
  T* t = taps + kTapValues * n;
  splat.taps(point + 4 * n, i, j, colors[4 * n + 3], t);
  for (int c = 0; c < 3; ++c) t[kTaps + c] = colors[4 * n + c];
}

template <typename T>
__global__ void forward_kernel(Splat<T> splat, const T* taps, T* out, T* buffers, T* weights) {
  const int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (q >= splat.B * splat.H * splat.W) return;
  const int64_t qj = q % splat.W, qi = (q / splat.W) % splat.H, b = q / (splat.W * splat.H);
  T acc[kBuffers][4], buf[kBuffers][4];
  splat.accumulate(b, qi, qj, TapTable<T>{taps}, acc);
  Splat<T>::resolve(acc, buf, out + 4 * q);
  for (int k = 0; k < kBuffers; ++k) {
    for (int c = 0; c < 4; ++c) buffers[k * splat.plane() + 4 * q + c] = buf[k][c];
    weights[k * splat.B * splat.H * splat.W + q] = acc[k][3];
  }
}

template <typename T>
__global__ void buffer_gradient_kernel(Splat<T> splat, const T* grad_out, const T* grad_buffers, const T* buffers,
                                       const T* weights, T* grad_acc) {
  const int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t pixels = splat.B * splat.H * splat.W;
  if (q >= pixels) return;
  T buf[kBuffers][4], weight[kBuffers], ga[kBuffers][4];
  for (int k = 0; k < kBuffers; ++k) {
    for (int c = 0; c < 4; ++c) buf[k][c] = buffers[k * splat.plane() + 4 * q + c];
    weight[k] = weights[k * pixels + q];
  }
  Splat<T>::acc_gradient(buf, weight, grad_out ? grad_out + 4 * q : nullptr,
                         grad_buffers ? grad_buffers + 4 * q : nullptr, splat.plane(), ga);
  for (int k = 0; k < kBuffers; ++k) {
    for (int c = 0; c < 4; ++c) grad_acc[k * splat.plane() + 4 * q + c] = ga[k][c];
  }
}

template <typename T>
__global__ void backward_kernel(Splat<T> splat, const T* point, const T* colors, const T* grad_acc, T* grad_point,
                                T* grad_colors) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= splat.B * splat.K * splat.H * splat.W || !splat.covered(n)) return;  // the outputs are zeroed
  const int64_t pj = n % splat.W, pi = (n / splat.W) % splat.H, l = (n / (splat.W * splat.H)) % splat.K,
                b = n / (splat.W * splat.H * splat.K);
  splat.backward_sample(b, l, pi, pj, point + 4 * n, colors + 4 * n, GradTable<T>{splat, grad_acc, b},
                        grad_point + 4 * n, grad_colors + 4 * n);
}

struct Prepared {
  torch::Tensor depth;
  int64_t depth_stride;
};

Prepared prepare(const torch::Tensor& point, const torch::Tensor& colors, const torch::Tensor& tri_id,
                 const torch::Tensor& depth) {
  check_splat_inputs(colors, tri_id, depth);
  check_full_colors(colors, tri_id);
  check_points(point, colors, tri_id);
  TORCH_CHECK(tri_id.device().is_cuda(), "splat kernel: CUDA tensors only");
  Prepared prepared;
  prepared.depth = evenly_spaced(depth, 1, &prepared.depth_stride);
  return prepared;
}

}  // namespace

std::vector<torch::Tensor> splat_points_forward_cuda(torch::Tensor point, torch::Tensor colors, torch::Tensor tri_id,
                                                     torch::Tensor depth, double scale, double sigma,
                                                     bool with_buffers) {
  const auto prepared = prepare(point, colors, tri_id, depth);
  const c10::cuda::CUDAGuard guard(tri_id.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t B = tri_id.size(0), H = tri_id.size(2), W = tri_id.size(3), samples = tri_id.numel(),
                pixels = B * H * W;
  auto out = torch::empty({B, H, W, 4}, colors.options());
  auto buffers = torch::empty({kBuffers, B, H, W, 4}, colors.options());
  auto weights = torch::empty({kBuffers, B, H, W}, colors.options());
  auto taps = torch::empty({samples, kTapValues}, colors.options());
  if (pixels > 0) {
    AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_points_forward_cuda", [&] {
      const auto splat = make_splat<scalar_t>(tri_id, prepared.depth, prepared.depth_stride, scale, sigma);
      taps_kernel<<<blocks(samples), kThreads, 0, stream>>>(splat, point.data_ptr<scalar_t>(), colors.data_ptr<scalar_t>(),
                                                          taps.data_ptr<scalar_t>());
      forward_kernel<<<blocks(pixels), kThreads, 0, stream>>>(splat, taps.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                                            buffers.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  // The backward pass reads the normalised buffers and weights back rather than recomputing them.
  return {out, with_buffers ? buffers : torch::empty({0}, colors.options()), buffers, weights};
}

std::vector<torch::Tensor> splat_points_backward_cuda(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                                      std::vector<torch::Tensor> state, torch::Tensor point,
                                                      torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                                      double scale, double sigma) {
  const auto prepared = prepare(point, colors, tri_id, depth);
  TORCH_CHECK(state.size() == 2 && state[0].is_contiguous() && state[1].is_contiguous(),
              "splat kernel: the forward pass's buffers and weights");
  const auto& buffers = state[0];
  const auto& weights = state[1];
  const c10::cuda::CUDAGuard guard(tri_id.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  auto grad_acc = torch::empty_like(buffers);
  auto grad_point = torch::zeros_like(point);
  auto grad_colors = torch::zeros_like(colors);
  const int64_t pixels = weights.numel() / kBuffers, samples = tri_id.numel();
  if (pixels == 0) return {grad_point, grad_colors};
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_points_backward_cuda", [&] {
    const auto splat = make_splat<scalar_t>(tri_id, prepared.depth, prepared.depth_stride, scale, sigma);
    const scalar_t* g_out = optional_data<scalar_t>(grad_out, buffers.sizes().slice(1), tri_id.device(), "grad_out");
    const scalar_t* g_buf = optional_data<scalar_t>(grad_buffers, buffers.sizes(), tri_id.device(), "grad_buffers");
    buffer_gradient_kernel<<<blocks(pixels), kThreads, 0, stream>>>(
        splat, g_out, g_buf, buffers.data_ptr<scalar_t>(), weights.data_ptr<scalar_t>(), grad_acc.data_ptr<scalar_t>());
    backward_kernel<<<blocks(samples), kThreads, 0, stream>>>(splat, point.data_ptr<scalar_t>(),
                                                            colors.data_ptr<scalar_t>(), grad_acc.data_ptr<scalar_t>(),
                                                            grad_point.data_ptr<scalar_t>(),
                                                            grad_colors.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grad_point, grad_colors};
}

}  // namespace glsplat
