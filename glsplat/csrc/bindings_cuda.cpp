// The CUDA kernels' entry points (splat_cuda.cu), bound to Python with the CPU module's names.
#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("splat_forward", &glsplat::splat_forward_cuda, "Splat, normalize and composite: image, buffers, state");
  m.def("splat_backward", &glsplat::splat_backward_cuda, "Gradients w.r.t. the clip-space vertices, colors and offsets");
}
