// The CPU kernels' entry points, bound to Python in bindings.cpp.
#pragma once
#include <torch/extension.h>

#include <vector>

namespace glsplat {

torch::Tensor interpolate_forward(torch::Tensor attr, torch::Tensor tri_id, torch::Tensor bary, torch::Tensor faces);
torch::Tensor interpolate_backward(torch::Tensor grad_out, torch::Tensor attr, torch::Tensor tri_id,
                                   torch::Tensor bary, torch::Tensor faces);

// The splat from per-sample clip-space points [B, K, H, W, 4] and the straight RGBA colours of
// the N covered samples, packed [N, 4] in raster order (Fragments.index's order). Returns
// the composited image [B, H, W, 4], the normalised S+/S0/S- buffers [3, B, H, W, 4] (empty
// unless with_buffers), then the state the backward pass takes: with one layer the image and
// the weights [B, H, W], with more the unnormalised S+/S0/S- sums [B, H, W, 3, 4].
std::vector<torch::Tensor> splat_points_forward(torch::Tensor point, torch::Tensor colors, torch::Tensor tri_id,
                                                torch::Tensor depth, double scale, double sigma, bool with_buffers);
// Gradients w.r.t. point and colors (packed); grad_out or grad_buffers may be empty (no gradient).
std::vector<torch::Tensor> splat_points_backward(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                                 std::vector<torch::Tensor> state, torch::Tensor point,
                                                 torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                                 double scale, double sigma);
// The same with the points blended from the rasterized clip-space vertices [1 or B, V, 4] inside
// the kernel (interpolate fused in); the backward pass returns the gradient w.r.t. clip.
std::vector<torch::Tensor> splat_clip_forward(torch::Tensor clip, torch::Tensor faces, torch::Tensor bary,
                                              torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                              double scale, double sigma, bool with_buffers);
std::vector<torch::Tensor> splat_clip_backward(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                               std::vector<torch::Tensor> state, torch::Tensor clip,
                                               torch::Tensor faces, torch::Tensor bary, torch::Tensor colors,
                                               torch::Tensor tri_id, torch::Tensor depth, double scale, double sigma);

// Edge-glued silhouettes (edges.cpp): for the contour edges [M, 3] (image, a, b) of clip [Bc, V, 4]
// float64, the glued samples of the raster: their flat indices [G] into [B, K, H, W] (ascending),
// their edges' rows [G] in `edges`, and the closest points' perspective-correct parameters [G]
// (see glsplat/silhouette.py: find_glue_torch is the reference).
std::vector<torch::Tensor> find_glue(torch::Tensor clip, torch::Tensor edges, torch::Tensor tri_id, torch::Tensor depth,
                                     double band, int64_t reach, double outside, double tolerance);

}  // namespace glsplat
