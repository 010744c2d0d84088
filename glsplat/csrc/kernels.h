// The CPU kernels' entry points, bound to Python in bindings.cpp.
#pragma once
#include <torch/extension.h>

#include <vector>

namespace glsplat {

torch::Tensor interpolate_forward(torch::Tensor attr, torch::Tensor tri_id, torch::Tensor bary, torch::Tensor faces);
torch::Tensor interpolate_backward(torch::Tensor grad_out, torch::Tensor attr, torch::Tensor tri_id,
                                   torch::Tensor bary, torch::Tensor faces);

// point: [B, K, H, W, 4] clip-space points, colors: straight RGBA. Returns the composited image
// [B, H, W, 4], the normalised S+/S0/S- buffers [3, B, H, W, 4] and their weights [3, B, H, W].
std::vector<torch::Tensor> splat_forward(torch::Tensor point, torch::Tensor colors, torch::Tensor mask,
                                         torch::Tensor depth, double scale, double sigma);
// Gradients w.r.t. point and colors; grad_out or grad_buffers may be empty (no gradient).
std::vector<torch::Tensor> splat_backward(torch::Tensor grad_out, torch::Tensor grad_buffers,
                                          torch::Tensor buffers, torch::Tensor weights, torch::Tensor point,
                                          torch::Tensor colors, torch::Tensor mask, torch::Tensor depth,
                                          double scale, double sigma);

}  // namespace glsplat
