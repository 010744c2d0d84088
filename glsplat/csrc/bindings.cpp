#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("interpolate_forward", &glsplat::interpolate_forward, "Blend corner attributes: [B, K, H, W, C]");
  m.def("interpolate_backward", &glsplat::interpolate_backward, "Gradient w.r.t. the vertex attributes");
  m.def("splat_forward", &glsplat::splat_forward, "Splat, normalize and composite: image, buffers, state");
  m.def("contour_edges", &glsplat::contour_edges, "Contour half-edges of front faces: [M, 3] (image, a, b)");
  m.def("find_glue", &glsplat::find_glue, "The glued silhouette samples: sample, edge ends, parameter, row in index");
  m.def("glue_backward", &glsplat::glue_backward, "Gradient w.r.t. clip of the glue's offsets");
  m.def("splat_backward", &glsplat::splat_backward, "Gradients w.r.t. the clip-space vertices, colors and offsets");
  m.def("nvdr_antialias_forward", &glsplat::nvdr_antialias_forward, "nvdiffrast antialias: image, work, largest id");
  m.def("nvdr_antialias_backward", &glsplat::nvdr_antialias_backward, "Gradients w.r.t. color and pos");
}
