// The kernels' entry points, bound to Python in bindings.cpp (CPU) and bindings_cuda.cpp (CUDA,
// the splat only, same names and arguments).
#pragma once
#include <torch/extension.h>

#include <tuple>
#include <vector>

namespace glsplat {

torch::Tensor interpolate_forward(torch::Tensor attr, torch::Tensor tri_id, torch::Tensor bary, torch::Tensor faces);
torch::Tensor interpolate_backward(torch::Tensor grad_out, torch::Tensor attr, torch::Tensor tri_id,
                                   torch::Tensor bary, torch::Tensor faces);

// The splat of the raster (tri_id int32 [B, K, H, W], bary float32 [B, K, H, W, 2], depth
// float32 [B, K, H, W]) of clip-space vertices clip [1 or B, V, 4] and faces int64 [F, 3]
// (indices in range: checked before the call); each covered sample is splatted from its point
// on its face (interpolate fused in) moved by offset (x, y in pixels; [N, 2], or empty: none),
// with its straight RGBA color. colors and offset are packed over the N covered samples in
// raster order (Raster.index's order), in clip's dtype. Returns the composited image
// [B, H, W, 4], the normalized S+/S0/S- buffers [3, B, H, W, 4] (empty unless with_buffers),
// then the state the backward pass takes: with one layer the image and the weights [B, H, W],
// with more the unnormalized S+/S0/S- sums [B, H, W, 3, 4].
std::vector<torch::Tensor> splat_forward(torch::Tensor clip, torch::Tensor faces, torch::Tensor bary,
                                         torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                         torch::Tensor offset, double scale, double sigma, bool with_buffers);
// Gradients {clip (empty unless want_clip), colors, offset (empty unless want_offset and an
// offset was given)}; grad_out or grad_buffers may be empty (no gradient).
std::vector<torch::Tensor> splat_backward(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                          std::vector<torch::Tensor> state, torch::Tensor clip, torch::Tensor faces,
                                          torch::Tensor bary, torch::Tensor colors, torch::Tensor tri_id,
                                          torch::Tensor depth, torch::Tensor offset, double scale, double sigma,
                                          bool want_clip, bool want_offset);

// CUDA (splat_cuda.cu): the same arguments and outputs; the state is always the sums, then each
// sample's packed index (int64 [B * K * H * W], -1 on background).
std::vector<torch::Tensor> splat_forward_cuda(torch::Tensor clip, torch::Tensor faces, torch::Tensor bary,
                                              torch::Tensor colors, torch::Tensor tri_id, torch::Tensor depth,
                                              torch::Tensor offset, double scale, double sigma, bool with_buffers);
std::vector<torch::Tensor> splat_backward_cuda(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                               std::vector<torch::Tensor> state, torch::Tensor clip,
                                               torch::Tensor faces, torch::Tensor bary, torch::Tensor colors,
                                               torch::Tensor tri_id, torch::Tensor depth, torch::Tensor offset,
                                               double scale, double sigma, bool want_clip, bool want_offset);

// Edge-glued silhouettes (edges.cpp; glsplat/silhouette.py holds the torch references).
// The contour edges [M, 3] (image, a, b) of clip [1 or B, V, 4] float64: half-edges of front faces
// that no other front face shares; edge_ids [3 F] numbers each half-edge's undirected edge.
torch::Tensor contour_edges(torch::Tensor clip, torch::Tensor faces, torch::Tensor edge_ids, int64_t batch);
// The glued samples of the raster (tri_id, depth; index int64 [N] its covered samples' flat indices,
// ascending: Raster.index) of clip [1 or B, V, 4] float64 and faces (edge_ids as for contour_edges):
// their flat indices [G] into [B, K, H, W] (ascending), their contour edges' ends (a, b) [G, 2],
// the closest points' perspective-correct parameters [G] and their rows [G] in index.
std::vector<torch::Tensor> find_glue(torch::Tensor clip, torch::Tensor faces, torch::Tensor edge_ids,
                                     torch::Tensor tri_id, torch::Tensor depth, torch::Tensor index, double band,
                                     int64_t reach, double outside, double tolerance);
// The backward pass of the glue's offsets (zero in value): the gradient w.r.t. clip [Bc, V, 4] of
// sum over the glued samples of grad_offset[rows] . m m^T (q - p) (glue_offsets in silhouette.py).
torch::Tensor glue_backward(torch::Tensor grad_offset, torch::Tensor rows, torch::Tensor sample, torch::Tensor edge,
                            torch::Tensor t, torch::Tensor clip, torch::Tensor faces, torch::Tensor tri_id,
                            torch::Tensor bary);

// nvdiffrast's analytic antialias (nvdr_antialias.cpp; glsplat/nvdiffrast/analytic.py is the torch
// reference). color [B, H, W, C], rast [B, H, W, 4] (u, v, z/w, triangle id + 1; row 0 at the
// bottom) and pos (clip space, [B, V, 4] instanced or [V, 4] range mode) in one float dtype; tri
// int32 [F, 3] and opposite int64 [F, 3] (TopologyHash.opposite); all contiguous but color (any
// strides, the image keeps its layout where dense; grad_out likewise). Returns the
// antialiased image [B, H, W, C], the work items int64 [M, 5] (first pixel, second pixel, the
// crossing edge's two vertex rows in pos viewed as [-1, 4], flags: 1 vertical pair, 2 front
// triangle the second pixel's) for the backward pass, and the largest triangle id + 1 found in a
// pixel pair (pairs with one above F are not analyzed: the caller raises). edge_eps: how far
// outside a pair (px) its crossing still counts (analytic._EDGE_EPS).
std::tuple<torch::Tensor, torch::Tensor, double> nvdr_antialias_forward(torch::Tensor color, torch::Tensor rast,
                                                                        torch::Tensor pos, torch::Tensor tri,
                                                                        torch::Tensor opposite, double edge_eps);
// Gradients {color (empty unless want_color), pos times boost (empty unless want_pos)} of the
// image nvdr_antialias_forward returned, from its inputs color and pos and its work items; dy_eps is
// the px added to dy in the derivative of 1 / dy (analytic._DY_EPS).
std::vector<torch::Tensor> nvdr_antialias_backward(torch::Tensor grad_out, torch::Tensor color, torch::Tensor pos,
                                                   torch::Tensor work, bool want_color, bool want_pos, double boost,
                                                   double dy_eps);

}  // namespace glsplat
