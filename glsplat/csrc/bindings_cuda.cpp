// The CUDA kernels' entry points (splat_cuda.cu, edges_cuda.cu), bound to Python with the CPU module's names.
#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("splat_forward", &glsplat::splat_forward_cuda, "Splat, normalize and composite: image, buffers, state");
  m.def("splat_backward", &glsplat::splat_backward_cuda, "Gradients w.r.t. the clip-space vertices, colors and offsets");
  m.def("contour_edges", &glsplat::contour_edges_cuda, "Contour half-edges of front faces: [M, 3] (image, a, b)");
  m.def("find_glue", &glsplat::find_glue_cuda, "The glued silhouette samples: sample, edge ends, parameter, row in index");
}
