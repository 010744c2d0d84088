// CUDA entry points of the splat: one thread per item of splat.h, with the taps and the buffer
// gradients in image-sized tables (memory is cheap there, a second pass over it is not). The
// inputs and arguments are the CPU's (kernels.h); the state kept for the backward pass is the
// unnormalized sums [B, H, W, kBuffers, 4] and each sample's packed index.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include "kernels.h"
#include "splat_torch.h"

namespace glsplat {
namespace {

constexpr int kThreads = 256;

inline int blocks(int64_t items) { return static_cast<int>((items + kThreads - 1) / kThreads); }

template <typename T>
struct TapTable {  // [B * K * H * W, kFactorsAndRgb]
  const T* taps;
  __device__ const T* operator()(int64_t n, int64_t, int64_t, int64_t) const { return taps + kFactorsAndRgb * n; }
};

template <typename T>
struct GradTable {  // the gradients w.r.t. the sums, [B, H, W, kBuffers], read for image b
  const Splat<T>& s;
  const Rgba<T>* grad_sums;
  int64_t b;
  __device__ Rgba<T> operator()(int k, int64_t qi, int64_t qj) const {
    return grad_sums[s.pixel(b, qi, qj) * kBuffers + k];
  }
};

template <typename T>
struct AtomicAdd {  // many samples share a vertex: their gradients add up with atomics
  T* target;
  __device__ void operator()(int64_t e, T v) const { atomicAdd(target + e, v); }
};

template <typename T>
__global__ void taps_kernel(Splat<T> s, ClipPoints<T> points, Packed<T> packed, const int64_t* index, T* taps) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= s.B * s.K * s.H * s.W || !s.covered(n)) return;  // the rest is never read
  const int64_t j = n % s.W, i = (n / s.W) % s.H, p = index[n];
  const Rgba<T> c = packed.color(p);
  const auto f = s.tap_factors(s.offset(points.point(n), packed.offset(p), i, j), c.a);
  T* t = taps + kFactorsAndRgb * n;
  t[0] = f.x.before, t[1] = f.x.center, t[2] = f.x.after;
  t[3] = f.y.before, t[4] = f.y.center, t[5] = f.y.after;
  t[6] = c.r, t[7] = c.g, t[8] = c.b;
}

template <typename T>
__global__ void forward_kernel(Splat<T> s, const T* taps, T* out, T* buffers, Rgba<T>* sums) {
  const int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (q >= s.B * s.H * s.W) return;
  const int64_t qj = q % s.W, qi = (q / s.W) % s.H, b = q / (s.W * s.H);
  Rgba<T> acc[kBuffers], buf[kBuffers];
  s.accumulate(b, qi, qj, TapTable<T>{taps}, acc);
  const Rgba<T> image = Splat<T>::resolve(acc, buf);
  T* o = out + 4 * q;
  o[0] = image.r, o[1] = image.g, o[2] = image.b, o[3] = image.a;
  for (int k = 0; k < kBuffers; ++k) {
    sums[kBuffers * q + k] = acc[k];
    if (buffers) {
      T* e = buffers + k * s.plane() + 4 * q;
      e[0] = buf[k].r, e[1] = buf[k].g, e[2] = buf[k].b, e[3] = buf[k].a;
    }
  }
}

template <typename T>
__global__ void sums_gradient_kernel(Splat<T> s, const Rgba<T>* sums, const T* grad_out, const T* grad_buffers,
                                     Rgba<T>* grad_sums) {
  const int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (q >= s.B * s.H * s.W) return;
  Rgba<T> acc[kBuffers], ga[kBuffers];
  for (int k = 0; k < kBuffers; ++k) acc[k] = sums[kBuffers * q + k];
  Splat<T>::sums_gradient(acc, grad_out ? grad_out + 4 * q : nullptr, grad_buffers ? grad_buffers + 4 * q : nullptr,
                          s.plane(), ga);
  for (int k = 0; k < kBuffers; ++k) grad_sums[kBuffers * q + k] = ga[k];
}

template <typename T>
__global__ void backward_kernel(Splat<T> s, ClipPoints<T> points, Packed<T> packed, const int64_t* index,
                                const Rgba<T>* grad_sums, PackedGrads<T> grads, T* grad_clip, GlueRows glue) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= s.B * s.K * s.H * s.W || !s.covered(n)) return;
  const int64_t pj = n % s.W, pi = (n / s.W) % s.H, l = (n / (s.W * s.H)) % s.K, b = n / (s.W * s.H * s.K);
  const Corners<T> c = points.corners(n);
  const ClipXYW<T> p = points.point(c);
  const int64_t k = index[n];
  const Pull<T> a = s.backward_sample(b, l, pi, pj, p, packed.offset(k), packed.color(k), GradTable<T>{s, grad_sums, b});
  grads.set(k, a);
  if (!grad_clip) return;
  ClipXYW<T> g = s.pulled(p, a.position);
  const int64_t i = glue.first(k);
  if (i < glue.count && glue.rows[i] == k) {  // glued: the edge's ends take their part
    const ClipXYW<T> d = glue_gradient(s, points, glue, i, b, p, a.position, AtomicAdd<T>{grad_clip});
    g = {g.x + d.x, g.y + d.y, g.w + d.w};
  }
  ClipPoints<T>::scatter(c, g, AtomicAdd<T>{grad_clip});
}

// Each sample's place among the covered samples in raster order (-1 on background).
torch::Tensor packed_index(const torch::Tensor& tri_id) { return tri_id.gt(0).view(-1).cumsum(0, torch::kLong).sub_(1); }

const SplatTensors& on_cuda(const SplatTensors& t) {
  TORCH_CHECK(t.tri_id.is_cuda(), "splat kernel: CUDA tensors only");
  return t;
}

}  // namespace

std::vector<torch::Tensor> splat_forward_cuda(torch::Tensor clip, torch::Tensor faces, torch::Tensor bary,
                                              torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                              torch::Tensor offset, double scale, double sigma, bool with_buffers) {
  const SplatTensors t(clip, faces, bary, colors, tri_id, depth, offset);
  on_cuda(t);
  const c10::cuda::CUDAGuard guard(tri_id.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t B = t.B(), H = t.H(), W = t.W(), samples = tri_id.numel(), pixels = B * H * W;
  const auto options = colors.options();
  auto index = packed_index(tri_id);
  auto image = torch::empty({B, H, W, 4}, options);
  auto buffers = with_buffers ? torch::empty({kBuffers, B, H, W, 4}, options) : torch::empty({0}, options);
  auto sums = torch::empty({B, H, W, kBuffers, 4}, options);
  auto taps = torch::empty({samples, kFactorsAndRgb}, options);
  if (pixels > 0) {
    AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_forward_cuda", [&] {
      const auto s = t.splat<scalar_t>(scale, sigma);
      taps_kernel<<<blocks(samples), kThreads, 0, stream>>>(s, t.points<scalar_t>(), t.packed<scalar_t>(),
                                                          index.data_ptr<int64_t>(), taps.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      forward_kernel<<<blocks(pixels), kThreads, 0, stream>>>(
          s, taps.data_ptr<scalar_t>(), image.data_ptr<scalar_t>(), with_buffers ? buffers.data_ptr<scalar_t>() : nullptr,
          reinterpret_cast<Rgba<scalar_t>*>(sums.data_ptr<scalar_t>()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return {image, buffers, sums, index};
}

std::vector<torch::Tensor> splat_backward_cuda(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                               std::vector<torch::Tensor> state, torch::Tensor clip,
                                               torch::Tensor faces, torch::Tensor bary, torch::Tensor colors,
                                               torch::Tensor tri_id, torch::Tensor depth, torch::Tensor offset,
                                               torch::Tensor glue_rows, torch::Tensor glue_edge, torch::Tensor glue_t,
                                               double scale, double sigma, bool want_clip, bool want_offset) {
  const SplatTensors t(clip, faces, bary, colors, tri_id, depth, offset);
  on_cuda(t);
  const GlueRows glue = checked_glue(glue_rows, glue_edge, glue_t, t);
  const int64_t B = t.B(), H = t.H(), W = t.W(), samples = tri_id.numel(), pixels = B * H * W;
  const std::vector<int64_t> sums_sizes{B, H, W, kBuffers, 4};
  TORCH_CHECK(state.size() == 2 && state[0].sizes() == at::IntArrayRef(sums_sizes) && state[0].is_contiguous() &&
                  state[1].numel() == samples && state[1].scalar_type() == torch::kLong,
              "splat kernel: the forward pass's sums and packed indices");
  const auto& sums = state[0];
  const auto& index = state[1];
  const c10::cuda::CUDAGuard guard(tri_id.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const SplatGradients grads(t, want_clip, want_offset);
  if (pixels == 0) return grads.list();
  auto grad_sums = torch::empty_like(sums);
  const std::vector<int64_t> image_sizes{B, H, W, 4}, buffer_sizes{kBuffers, B, H, W, 4};
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "splat_backward_cuda", [&] {
    const auto s = t.splat<scalar_t>(scale, sigma);
    const scalar_t* g_out = optional_data<scalar_t>(grad_out, image_sizes, tri_id.device(), "grad_out");
    const scalar_t* g_buf = optional_data<scalar_t>(grad_buffers, buffer_sizes, tri_id.device(), "grad_buffers");
    auto* g_sums = reinterpret_cast<Rgba<scalar_t>*>(grad_sums.data_ptr<scalar_t>());
    sums_gradient_kernel<<<blocks(pixels), kThreads, 0, stream>>>(
        s, reinterpret_cast<const Rgba<scalar_t>*>(sums.data_ptr<scalar_t>()), g_out, g_buf, g_sums);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    backward_kernel<<<blocks(samples), kThreads, 0, stream>>>(s, t.points<scalar_t>(), t.packed<scalar_t>(),
                                                            index.data_ptr<int64_t>(), g_sums,
                                                            grads.packed<scalar_t>(), grads.clip_data<scalar_t>(), glue);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grads.list();
}

}  // namespace glsplat
