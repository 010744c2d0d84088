// The kernels' entry points, bound to Python in bindings.cpp (CPU) and bindings_cuda.cpp (CUDA:
// the splat and the edge glue, same names and arguments).
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
// offset was given)}; grad_out or grad_buffers may be empty (no gradient). The edge glue
// (glsplat/silhouette.py's Glue; all empty: none) adds its part to the clip gradient: glue_rows
// [G] int64 ascending rows of the glued samples among the N, glue_edge [G, 2] int64 their contour
// edges' ends, glue_t [G] float64 the closest points' parameters.
std::vector<torch::Tensor> splat_backward(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                          std::vector<torch::Tensor> state, torch::Tensor clip, torch::Tensor faces,
                                          torch::Tensor bary, torch::Tensor colors, torch::Tensor tri_id,
                                          torch::Tensor depth, torch::Tensor offset, torch::Tensor glue_rows,
                                          torch::Tensor glue_edge, torch::Tensor glue_t, double scale, double sigma,
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
                                               torch::Tensor glue_rows, torch::Tensor glue_edge, torch::Tensor glue_t,
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

// CUDA (edges_cuda.cu): the same arguments (all on one CUDA device; find_glue's reach at most 3)
// and outputs. find_glue_cuda does not check that index lists every glued sample.
torch::Tensor contour_edges_cuda(torch::Tensor clip, torch::Tensor faces, torch::Tensor edge_ids, int64_t batch);
std::vector<torch::Tensor> find_glue_cuda(torch::Tensor clip, torch::Tensor faces, torch::Tensor edge_ids,
                                          torch::Tensor tri_id, torch::Tensor depth, torch::Tensor index,
                                          double band, int64_t reach, double outside, double tolerance);

// glsplat.nvdiffrast (nvdr_raster.cpp; glsplat/nvdiffrast/ops.py's _rast_outputs and
// _torch_interpolate are the torch references, equal in value bit for bit).
// rasterize's outputs at the pixel centers: pos float [B, V, 4] (instanced) or [V, 4] (range mode),
// tri int32 [F, 3], tri_id int32 [B, H, W] face + 1 (0: empty), in range (checked before the call),
// nvdiffrast's row order. Returns {rast [B, H, W, 4] = (u, v, z/w, face + 1), rast_db [B, H, W, 4] =
// (du/dX, du/dY, dv/dX, dv/dY) per pixel ([B, H, W, 0] unless with_db)}, in pos' dtype, 0 where empty.
std::vector<torch::Tensor> nvdr_rast_forward(torch::Tensor pos, torch::Tensor tri, torch::Tensor tri_id, bool with_db);
// Its backward: the gradient w.r.t. pos (z gets none) from grad_rast [B, H, W, 4] (its u, v) and
// grad_rast_db [B, H, W, 4]; either may be empty (no gradient). u, v's clamps pass the gradient
// straight through, scaled by the constant 1 / max(u + v, 1).
torch::Tensor nvdr_rast_backward(torch::Tensor grad_rast, torch::Tensor grad_rast_db, torch::Tensor pos,
                                 torch::Tensor tri, torch::Tensor tri_id);
// interpolate: attr float [1 or B, V, A], rast [B, H, W, 4] in attr's dtype, tri int32 [F, 3], rast_db
// like rast (or empty without diff), diff the attribute indices to differentiate. Returns {out
// [B, H, W, A], out_da [B, H, W, 2 len(diff)] = (dA/dX, dA/dY) per listed A}, 0 where empty, then
// the number of pixels (int64 scalar) whose id (rast[..., 3], truncated) is not one of 0..F: left
// empty, for the caller to report (the kernel reads every id anyway, so the door need not).
std::vector<torch::Tensor> nvdr_interpolate_forward(torch::Tensor attr, torch::Tensor rast, torch::Tensor tri,
                                                    torch::Tensor rast_db, std::vector<int64_t> diff);
// Its backward (ids in range): {grad attr, grad rast (u, v; 0 in z/w and id), grad rast_db}, each an
// undefined tensor unless wanted; grad_out or grad_da may be empty (no gradient).
std::vector<torch::Tensor> nvdr_interpolate_backward(torch::Tensor grad_out, torch::Tensor grad_da,
                                                     torch::Tensor attr, torch::Tensor rast, torch::Tensor tri,
                                                     torch::Tensor rast_db, std::vector<int64_t> diff,
                                                     bool want_attr, bool want_rast, bool want_db);

// nvdiffrast's texture for 2D textures (nvdr_texture.cpp; glsplat/nvdiffrast/texture.py holds the
// torch reference). texels [T, C]: a mip stack's levels one after the other, level k [I, heights[k],
// widths[k], C] with I = images = 1 (shared) or B; uv [P, 2] (u, v) of P = B * Hp * Wp pixels
// (image-major); level [P] each pixel's mip level, clamped to [0, L - 1] (mip filters only; empty
// otherwise). filter: 0 nearest, 1 linear, 2 linear-mipmap-nearest, 3 linear-mipmap-linear (levels
// floor(level) and the next, blended by the fraction); boundary: 0 wrap, 1 clamp, 2 zero. All float32
// or all float64, contiguous. A pixel whose u or v is NaN (or infinite under 'wrap') gives NaN and
// no gradient; an infinite one under 'clamp' or 'zero' is any far-away coordinate. Returns [P, C].
torch::Tensor nvdr_texture_forward(torch::Tensor texels, torch::Tensor uv, torch::Tensor level,
                                std::vector<int64_t> heights, std::vector<int64_t> widths, int64_t images,
                                int64_t filter, int64_t boundary);
// Gradients {texels [T, C], uv [P, 2] (none in 'nearest'), level [P] (filter 3 only)}, each empty
// unless asked for.
std::vector<torch::Tensor> nvdr_texture_backward(torch::Tensor grad_out, torch::Tensor texels, torch::Tensor uv,
                                              torch::Tensor level, std::vector<int64_t> heights,
                                              std::vector<int64_t> widths, int64_t images, int64_t filter,
                                              int64_t boundary, bool want_texels, bool want_uv, bool want_level);

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
