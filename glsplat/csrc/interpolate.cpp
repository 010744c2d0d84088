// CPU kernel of `interpolate`: blend per-vertex attributes with the raster's barycentrics,
// straight from (tri_id, bary, faces) without materialising per-pixel corner indices.
#include <torch/extension.h>

#include <vector>

#include "kernels.h"

namespace glsplat {
namespace {

template <typename T>
struct Interpolate {
  int64_t B, N, V, C;      // N = K * H * W samples per image
  bool shared;             // attr has batch 1 and serves every image
  const int32_t* tri_id;   // [B, N]
  const float* bary;       // [B, N, 2]
  const int64_t* faces;    // [F, 3]

  // The three (vertex index into the flattened attr, weight) pairs of sample n of image b.
  bool corners(int64_t b, int64_t n, int64_t* vert, T* weight) const {
    const int64_t s = b * N + n;
    const int32_t id = tri_id[s];
    if (id <= 0) return false;
    const int64_t base = shared ? 0 : b * V;
    for (int i = 0; i < 3; ++i) vert[i] = base + faces[3 * int64_t(id - 1) + i];
    weight[0] = bary[2 * s];
    weight[1] = bary[2 * s + 1];
    weight[2] = T(1) - weight[0] - weight[1];
    return true;
  }

  void forward(const T* attr, T* out) const {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t n = 0; n < N; ++n) {
        int64_t vert[3];
        T weight[3];
        T* o = out + (b * N + n) * C;
        if (!corners(b, n, vert, weight)) continue;  // out is zeroed
        for (int64_t c = 0; c < C; ++c) {
          o[c] = weight[0] * attr[vert[0] * C + c] + weight[1] * attr[vert[1] * C + c] +
                 weight[2] * attr[vert[2] * C + c];
        }
      }
    }
  }

  // Scatter-add: each thread sums into a private copy, then the copies are added up.
  void backward(const T* grad_out, T* grad_attr, int64_t attr_numel) const {
#pragma omp parallel
    {
      std::vector<T> local(attr_numel, T(0));
#pragma omp for collapse(2) schedule(static)
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t n = 0; n < N; ++n) {
          int64_t vert[3];
          T weight[3];
          if (!corners(b, n, vert, weight)) continue;
          const T* g = grad_out + (b * N + n) * C;
          for (int i = 0; i < 3; ++i) {
            for (int64_t c = 0; c < C; ++c) local[vert[i] * C + c] += weight[i] * g[c];
          }
        }
      }
#pragma omp critical
      for (int64_t e = 0; e < attr_numel; ++e) grad_attr[e] += local[e];
    }
  }
};

template <typename T>
Interpolate<T> make(const torch::Tensor& attr, const torch::Tensor& tri_id, const torch::Tensor& bary,
                    const torch::Tensor& faces) {
  TORCH_CHECK(attr.dim() == 3 && tri_id.dim() == 4 && bary.size(-1) == 2 && faces.size(-1) == 3,
              "interpolate kernel: attr [B, V, C], tri_id [B, K, H, W], bary [..., 2], faces [F, 3]");
  for (const auto* t : {&attr, &tri_id, &bary, &faces}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(), "interpolate kernel: CPU, contiguous tensors only");
  }
  TORCH_CHECK(tri_id.scalar_type() == torch::kInt && bary.scalar_type() == torch::kFloat &&
                  faces.scalar_type() == torch::kLong, "interpolate kernel: dtypes");
  const int64_t B = tri_id.size(0);
  TORCH_CHECK(attr.size(0) == 1 || attr.size(0) == B, "interpolate kernel: attr batch");
  return Interpolate<T>{B, tri_id.numel() / B, attr.size(1), attr.size(2), attr.size(0) == 1,
                        tri_id.data_ptr<int32_t>(), bary.data_ptr<float>(), faces.data_ptr<int64_t>()};
}

}  // namespace

torch::Tensor interpolate_forward(torch::Tensor attr, torch::Tensor tri_id, torch::Tensor bary, torch::Tensor faces) {
  auto sizes = tri_id.sizes().vec();
  sizes.push_back(attr.size(-1));
  auto out = torch::zeros(sizes, attr.options());
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interpolate_forward", [&] {
    make<scalar_t>(attr, tri_id, bary, faces).forward(attr.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
  });
  return out;
}

torch::Tensor interpolate_backward(torch::Tensor grad_out, torch::Tensor attr, torch::Tensor tri_id,
                                   torch::Tensor bary, torch::Tensor faces) {
  grad_out = grad_out.contiguous();
  auto grad_attr = torch::zeros_like(attr);
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interpolate_backward", [&] {
    make<scalar_t>(attr, tri_id, bary, faces)
        .backward(grad_out.data_ptr<scalar_t>(), grad_attr.data_ptr<scalar_t>(), attr.numel());
  });
  return grad_attr;
}

}  // namespace glsplat
