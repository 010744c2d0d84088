// The CUDA kernels' entry points (splat_cuda.cu), bound to Python with the CPU module's names.
#include <torch/extension.h>

#include <vector>

namespace glsplat {
std::vector<torch::Tensor> splat_forward_cuda(torch::Tensor point, torch::Tensor colors, torch::Tensor mask,
                                              torch::Tensor depth, double scale, double sigma);
std::vector<torch::Tensor> splat_backward_cuda(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                               torch::Tensor buffers, torch::Tensor weights, torch::Tensor point,
                                               torch::Tensor colors, torch::Tensor mask, torch::Tensor depth,
                                               double scale, double sigma);
}  // namespace glsplat

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("splat_forward", &glsplat::splat_forward_cuda, "Splat, normalise and composite: image, S+/S0/S- buffers, their weights");
  m.def("splat_backward", &glsplat::splat_backward_cuda, "Gradients of the splat w.r.t. the clip-space points and colours");
}
