// CPU kernel of `interpolate`: blend per-vertex attributes with the raster's barycentrics,
// straight from (tri_id, bary, faces) without materializing per-pixel corner indices; the
// corner gather is the splat's (splat.h), the gradient's per-thread sums too (splat_cpu.h).
#include <torch/extension.h>

#include "kernels.h"
#include "splat_cpu.h"

namespace glsplat {
namespace {

template <typename T>
struct Interpolate {
  int64_t samples, C;        // samples = B * K * H * W
  FaceCorners<T> corners;    // splat.h's gather, the splat's too

  void forward(const T* attr, T* out) const {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < samples; ++n) {
      if (corners.tri_id[n] <= 0) continue;  // out is zeroed
      const Corners<T> c = corners(n);
      T* o = out + n * C;
      for (int64_t e = 0; e < C; ++e) {
        o[e] = c.weight[0] * attr[c.row[0] * C + e] + c.weight[1] * attr[c.row[1] * C + e] +
               c.weight[2] * attr[c.row[2] * C + e];
      }
    }
  }

  void backward(const T* grad_out, T* grad_attr, int64_t attr_numel) const {
#pragma omp parallel
    {
      cpu::PrivateSum<T> sum(grad_attr, attr_numel);
#pragma omp for schedule(static)
      for (int64_t n = 0; n < samples; ++n) {
        if (corners.tri_id[n] <= 0) continue;
        const Corners<T> c = corners(n);
        const T* g = grad_out + n * C;
        for (int k = 0; k < 3; ++k) {
          for (int64_t e = 0; e < C; ++e) sum.add(c.row[k] * C + e, c.weight[k] * g[e]);
        }
      }
      sum.reduce();
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
  return Interpolate<T>{tri_id.numel(), attr.size(2),
                        {tri_id.data_ptr<int32_t>(), bary.data_ptr<float>(), 2, faces.data_ptr<int64_t>(),
                         attr.size(1), tri_id.numel() / std::max<int64_t>(B, 1), attr.size(0) == 1}};
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
