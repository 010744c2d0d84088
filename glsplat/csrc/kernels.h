// The CPU kernels' entry points, bound to Python in bindings.cpp.
#pragma once
#include <torch/extension.h>

#include <vector>

namespace glsplat {

torch::Tensor interpolate_forward(torch::Tensor attr, torch::Tensor tri_id, torch::Tensor bary, torch::Tensor faces);
torch::Tensor interpolate_backward(torch::Tensor grad_out, torch::Tensor attr, torch::Tensor tri_id,
                                   torch::Tensor bary, torch::Tensor faces);

// point: [B, K, H, W, 4] clip-space points; returns the unnormalised S+/S0/S- buffers.
torch::Tensor splat_forward(torch::Tensor point, torch::Tensor colors, torch::Tensor mask, torch::Tensor depth,
                            double scale, double sigma);
std::vector<torch::Tensor> splat_backward(torch::Tensor grad_acc, torch::Tensor point, torch::Tensor colors,
                                          torch::Tensor mask, torch::Tensor depth, double scale, double sigma);

}  // namespace glsplat
