#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("interpolate_forward", &glsplat::interpolate_forward, "Blend corner attributes: [B, K, H, W, C]");
  m.def("interpolate_backward", &glsplat::interpolate_backward, "Gradient w.r.t. the vertex attributes");
  m.def("splat_forward", &glsplat::splat_forward, "Splat, normalize and composite: image, buffers, state");
  m.def("contour_edges", &glsplat::contour_edges, "Contour half-edges of front faces: [M, 3] (image, a, b)");
  m.def("find_glue", &glsplat::find_glue, "The glued silhouette samples: sample, edge ends, parameter, row in index");
  m.def("splat_backward", &glsplat::splat_backward, "Gradients w.r.t. the clip-space vertices, colors and offsets");
  m.def("nvdr_rast_forward", &glsplat::nvdr_rast_forward, "nvdiffrast rasterize outputs: rast, rast_db");
  m.def("nvdr_rast_backward", &glsplat::nvdr_rast_backward, "Gradient of rast, rast_db w.r.t. pos");
  m.def("nvdr_interpolate_forward", &glsplat::nvdr_interpolate_forward, "nvdiffrast interpolate: out, out_da");
  m.def("nvdr_interpolate_backward", &glsplat::nvdr_interpolate_backward, "Gradients w.r.t. attr, rast, rast_db");
  m.def("nvdr_texture_forward", &glsplat::nvdr_texture_forward, "nvdiffrast texture, 2D: samples [P, C]");
  m.def("nvdr_texture_backward", &glsplat::nvdr_texture_backward, "nvdiffrast texture, 2D: gradients texels, uv, level");
  m.def("nvdr_antialias_forward", &glsplat::nvdr_antialias_forward, "nvdiffrast antialias: image, work, largest id");
  m.def("nvdr_antialias_backward", &glsplat::nvdr_antialias_backward, "Gradients w.r.t. color and pos");
}
