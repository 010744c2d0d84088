// The CUDA kernels' entry points (splat_cuda.cu), bound to Python with the CPU module's names.
#include <torch/extension.h>

#include <vector>

namespace glsplat {
std::vector<torch::Tensor> splat_points_forward_cuda(torch::Tensor point, torch::Tensor colors, torch::Tensor tri_id,
                                                     torch::Tensor depth, double scale, double sigma,
                                                     bool with_buffers);
std::vector<torch::Tensor> splat_points_backward_cuda(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                                      std::vector<torch::Tensor> state, torch::Tensor point,
                                                      torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                                      double scale, double sigma);
}  // namespace glsplat

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("splat_points_forward", &glsplat::splat_points_forward_cuda, "Splat, normalise and composite: image, buffers, state");
  m.def("splat_points_backward", &glsplat::splat_points_backward_cuda, "Gradients w.r.t. the points and colours");
}
