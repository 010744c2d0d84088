// CPU kernels of glsplat.nvdiffrast's `rasterize` outputs and `interpolate` (glsplat/nvdiffrast/ops.py:
// `_rast_outputs` and `_torch_interpolate` are the torch references, the same formulas in the same
// order). One pixel per loop iteration: the forward passes are gathers; the backward passes scatter
// into the vertex data through per-thread sums (splat_cpu.h's PrivateSum).
//
// Every formula is written with the reference's operations in the reference's order, and this file
// is compiled without fused multiply-adds, so that the values equal torch's bit for bit (the
// gradients differ from autograd's in the order of their sums only); and with IEEE NaN semantics
// (the build's -ffinite-math-only would let the compiler drop the NaN test of a triangle id, and
// clamps of NaN would differ from torch's).
#pragma GCC optimize("fp-contract=off", "no-finite-math-only")

#include <torch/extension.h>

#include <algorithm>
#include <vector>

#include "kernels.h"
#include "splat_cpu.h"

namespace glsplat {
namespace {

// ---------------------------------------------------------------------------------------------
// rasterize: (u, v, z/w) and rast_db of a covered pixel from its triangle's clip-space corners.

// A triangle's corners p_k = (x, y, z, w)[k] and a pixel center (fx, fy) in NDC, as the 2D
// homogeneous edge functions see them: e_k = (x_k - fx w_k, y_k - fy w_k) is corner k relative to
// the center, a_k = e_i x e_j (i = k + 1, j = k + 2, mod 3) the area opposite corner k, so that
// the perspective-correct barycentrics are a_k / (a_0 + a_1 + a_2).
template <typename T>
struct PixelTriangle {
  T x[3], y[3], z[3], w[3];
  T fx, fy;
  T cx, cy;  // NDC per pixel: 2 / W, 2 / H

  T ex[3], ey[3], a[3], inv_area;
  T u_raw, v_raw;  // a_0 / A, a_1 / A, before the clamp
  T over;          // 1 / max(u + v, 1) of the clamped u, v (no gradient)
  T u, v, zw;

  // Face `face`'s corners, rows base + tri[face] of the flattened [.., 4] vertices (base: 0, or
  // b V in instanced mode), at the center of pixel (px, py) of a W x H image.
  void load(const T* pos, const int32_t* tri, int64_t base, int64_t face, int64_t px, int64_t py, int64_t W,
            int64_t H) {
    for (int k = 0; k < 3; ++k) {
      const T* p = pos + 4 * (base + tri[3 * face + k]);
      x[k] = p[0], y[k] = p[1], z[k] = p[2], w[k] = p[3];
    }
    fx = T(2 * px + 1) / T(W) - T(1);
    fy = T(2 * py + 1) / T(H) - T(1);
    cx = T(2.0 / double(W));
    cy = T(2.0 / double(H));
  }

  // rast's values. nvdiffrast clamps each barycentric to [0, 1], then their sum to 1; the
  // gradient is the unclamped one (straight through), scaled by the detached 1 / max(u + v, 1).
  void values() {
    for (int k = 0; k < 3; ++k) ex[k] = x[k] - fx * w[k], ey[k] = y[k] - fy * w[k];
    for (int k = 0; k < 3; ++k) {
      const int i = (k + 1) % 3, j = (k + 2) % 3;
      a[k] = ex[i] * ey[j] - ey[i] * ex[j];
    }
    inv_area = T(1) / (a[0] + a[1] + a[2]);
    zw = std::clamp((z[0] * a[0] + z[1] * a[1] + z[2] * a[2]) / (w[0] * a[0] + w[1] * a[1] + w[2] * a[2]),
                    T(-1), T(1));
    u_raw = a[0] * inv_area;
    v_raw = a[1] * inv_area;
    // The reference's straight-through clamp, x + (clamp(x) - x), rounds as this does.
    const T uc = u_raw + (std::clamp(u_raw, T(0), T(1)) - u_raw);
    const T vc = v_raw + (std::clamp(v_raw, T(0), T(1)) - v_raw);
    over = T(1) / std::max(uc + vc, T(1));
    u = uc * over;
    v = vc * over;
  }

  // d(a_k)/dX and d(a_k)/dY per unit NDC: ax_k = y_j w_i - y_i w_j, ay_k = x_i w_j - x_j w_i.
  T ax(int k) const { return y[(k + 2) % 3] * w[(k + 1) % 3] - y[(k + 1) % 3] * w[(k + 2) % 3]; }
  T ay(int k) const { return x[(k + 1) % 3] * w[(k + 2) % 3] - x[(k + 2) % 3] * w[(k + 1) % 3]; }

  // rast_db = (du/dX, du/dY, dv/dX, dv/dY) per pixel: with sx = sum_k ax_k * 2 / W and
  // kx = inv_area * 2 / W, du/dX = u sx inv_area - kx ax_0 (likewise Y with ay and H, v with ax_1).
  void derivatives(T* db) const {
    const T ax0 = ax(0), ax1 = ax(1), ax2 = ax(2), ay0 = ay(0), ay1 = ay(1), ay2 = ay(2);
    const T sx = (ax0 + ax1 + ax2) * cx, sy = (ay0 + ay1 + ay2) * cy;
    const T kx = inv_area * cx, ky = inv_area * cy;
    db[0] = u * sx * inv_area - kx * ax0;
    db[1] = u * sy * inv_area - ky * ay0;
    db[2] = v * sx * inv_area - kx * ax1;
    db[3] = v * sy * inv_area - ky * ay1;
  }

  // The gradient of the loss w.r.t. the corners' (x, y, w) (z gets none: z/w is constant), from
  // gu, gv (of rast's u, v) and, when not null, gdb (of rast_db). Call values() first.
  void backward(T gu, T gv, const T* gdb, T gx[3], T gy[3], T gw[3]) const {
    T g_ia = 0;
    for (int k = 0; k < 3; ++k) gx[k] = gy[k] = gw[k] = 0;
    if (gdb) {
      const T ax0 = ax(0), ax1 = ax(1), ay0 = ay(0), ay1 = ay(1);
      const T sx = (ax0 + ax1 + ax(2)) * cx, sy = (ay0 + ay1 + ay(2)) * cy;
      const T kx = inv_area * cx, ky = inv_area * cy;
      // db0 = u sx ia - kx ax0, db1 = u sy ia - ky ay0, db2 = v sx ia - kx ax1, db3 = v sy ia - ky ay1:
      gu += (gdb[0] * sx + gdb[1] * sy) * inv_area;  // d/du
      gv += (gdb[2] * sx + gdb[3] * sy) * inv_area;  // d/dv
      const T g_sx = (gdb[0] * u + gdb[2] * v) * inv_area, g_sy = (gdb[1] * u + gdb[3] * v) * inv_area;
      g_ia += gdb[0] * u * sx + gdb[1] * u * sy + gdb[2] * v * sx + gdb[3] * v * sy  // through ia itself
              - (gdb[0] * ax0 + gdb[2] * ax1) * cx - (gdb[1] * ay0 + gdb[3] * ay1) * cy;  // through kx, ky
      // d/d(ax_k), d/d(ay_k): through sx, sy (all k), and through -kx ax_0, -kx ax_1 (likewise y).
      const T g_ax[3] = {g_sx * cx - gdb[0] * kx, g_sx * cx - gdb[2] * kx, g_sx * cx};
      const T g_ay[3] = {g_sy * cy - gdb[1] * ky, g_sy * cy - gdb[3] * ky, g_sy * cy};
      for (int k = 0; k < 3; ++k) {
        const int i = (k + 1) % 3, j = (k + 2) % 3;
        // ax_k = y_j w_i - y_i w_j; ay_k = x_i w_j - x_j w_i.
        gy[j] += g_ax[k] * w[i], gw[i] += g_ax[k] * y[j], gy[i] -= g_ax[k] * w[j], gw[j] -= g_ax[k] * y[i];
        gx[i] += g_ay[k] * w[j], gw[j] += g_ay[k] * x[i], gx[j] -= g_ay[k] * w[i], gw[i] -= g_ay[k] * x[j];
      }
    }
    // u = clamp(a_0 ia) over, v = clamp(a_1 ia) over (the clamp straight through, over constant).
    const T g_u_raw = gu * over, g_v_raw = gv * over;
    g_ia += g_u_raw * a[0] + g_v_raw * a[1];
    // ia = 1 / (a_0 + a_1 + a_2): d(ia)/d(a_k) = -ia^2.
    const T g_sum = -g_ia * inv_area * inv_area;
    const T g_a[3] = {g_u_raw * inv_area + g_sum, g_v_raw * inv_area + g_sum, g_sum};
    for (int k = 0; k < 3; ++k) {
      const int i = (k + 1) % 3, j = (k + 2) % 3;
      // a_k = ex_i ey_j - ey_i ex_j, and ex_m = x_m - fx w_m, ey_m = y_m - fy w_m.
      const T g_exi = g_a[k] * ey[j], g_eyj = g_a[k] * ex[i], g_eyi = -g_a[k] * ex[j], g_exj = -g_a[k] * ey[i];
      gx[i] += g_exi, gw[i] -= fx * g_exi;
      gy[j] += g_eyj, gw[j] -= fy * g_eyj;
      gy[i] += g_eyi, gw[i] -= fy * g_eyi;
      gx[j] += g_exj, gw[j] -= fx * g_exj;
    }
  }
};

// The raster's geometry: tri_id [B, H, W] over pos [B, V, 4] (instanced) or [V, 4] (range mode).
// The loops run over rows (b, py), one OpenMP chunk of rows per thread, then columns: no
// division per pixel.
struct RastShape {
  int64_t B, H, W, V;
  bool instanced;
  int64_t base(int64_t row) const { return instanced ? (row / H) * V : 0; }  // of row b H + py
};

RastShape rast_shape(const torch::Tensor& pos, const torch::Tensor& tri, const torch::Tensor& tri_id) {
  TORCH_CHECK((pos.dim() == 3 || pos.dim() == 2) && pos.size(-1) == 4 && tri.dim() == 2 && tri.size(1) == 3 &&
                  tri_id.dim() == 3, "nvdr_rast kernel: pos [B, V, 4] or [V, 4], tri [F, 3], tri_id [B, H, W]");
  for (const auto* t : {&pos, &tri, &tri_id}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(), "nvdr_rast kernel: CPU, contiguous tensors only");
  }
  TORCH_CHECK(tri.scalar_type() == torch::kInt && tri_id.scalar_type() == torch::kInt, "nvdr_rast kernel: dtypes");
  const bool instanced = pos.dim() == 3;
  TORCH_CHECK(!instanced || pos.size(0) == tri_id.size(0), "nvdr_rast kernel: pos and tri_id batch");
  return {tri_id.size(0), tri_id.size(1), tri_id.size(2), pos.size(-2), instanced};
}

// ---------------------------------------------------------------------------------------------
// interpolate: out = c_2 + u (c_0 - c_2) + v (c_1 - c_2) of the pixel's face corners c_k, and for
// each listed attribute (dA/dX, dA/dY) = (e_0 du/dX + e_1 dv/dX, e_0 du/dY + e_1 dv/dY), e_k = c_k - c_2.

struct InterpolateShape {
  int64_t rows, W, H, V, A, F;
  bool shared;  // attr [1, V, A]: one set for every image
  int64_t base(int64_t row) const { return shared ? 0 : (row / H) * V; }  // of row b H + py
};

InterpolateShape interpolate_shape(const torch::Tensor& attr, const torch::Tensor& rast, const torch::Tensor& tri,
                                   const torch::Tensor& rast_db) {
  TORCH_CHECK(attr.dim() == 3 && rast.dim() == 4 && rast.size(3) == 4 && tri.dim() == 2 && tri.size(1) == 3,
              "nvdr_interpolate kernel: attr [1 or B, V, A], rast [B, H, W, 4], tri [F, 3]");
  for (const auto* t : {&attr, &rast, &tri}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(), "nvdr_interpolate kernel: CPU, contiguous tensors only");
  }
  TORCH_CHECK(tri.scalar_type() == torch::kInt && rast.scalar_type() == attr.scalar_type(),
              "nvdr_interpolate kernel: dtypes");
  TORCH_CHECK(!rast_db.numel() || (rast_db.is_contiguous() && rast_db.sizes() == rast.sizes() &&
                                   rast_db.scalar_type() == attr.scalar_type()),
              "nvdr_interpolate kernel: rast_db like rast");
  TORCH_CHECK(attr.size(0) == 1 || attr.size(0) == rast.size(0), "nvdr_interpolate kernel: attr batch");
  return {rast.size(0) * rast.size(1), rast.size(2), rast.size(1), attr.size(1), attr.size(2), tri.size(0),
          attr.size(0) == 1};
}

// Pixel n's face, from rast's id channel truncated toward zero as torch's .long() does: -1 where
// the pixel is empty, -2 where the id is not one of 0..F (NaN included), which the caller reports.
template <typename T>
int64_t pixel_face(const T* rast, int64_t n, int64_t F) {
  const T id = rast[4 * n + 3];
  if (!(id > T(-1) && id < T(F + 1))) return -2;
  return static_cast<int64_t>(id) - 1;
}

// Outputs zeroed over runs of empty pixels, each run in one go when it ends (a few stores per
// empty pixel cost more than its test; zeroing whole frames first would write their memory twice):
// `out[k]` has `width[k]` values per pixel, or is null.
template <typename T>
struct EmptyRuns {
  T* out[2];
  int64_t width[2];
  int64_t start;  // the current run's first pixel

  // Pixel n is covered: the run [start, n) ends, the next may begin after n.
  void covered(int64_t n) {
    end(n);
    start = n + 1;
  }
  void end(int64_t n) const {
    for (int k = 0; k < 2; ++k) {
      if (out[k] && n > start) std::fill(out[k] + start * width[k], out[k] + n * width[k], T(0));
    }
  }
};

template <typename T>
void rast_forward(const T* pos, const int32_t* tri, const int32_t* ids, const RastShape& s, T* rast, T* db) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < s.B * s.H; ++row) {
    const int64_t base = s.base(row), py = row % s.H;
    EmptyRuns<T> empty{{rast, db}, {4, 4}, row * s.W};
    for (int64_t px = 0, n = row * s.W; px < s.W; ++px, ++n) {
      const int32_t id = ids[n];
      if (id == 0) continue;
      empty.covered(n);
      PixelTriangle<T> tr;
      tr.load(pos, tri, base, id - 1, px, py, s.W, s.H);
      tr.values();
      rast[4 * n] = tr.u, rast[4 * n + 1] = tr.v, rast[4 * n + 2] = tr.zw, rast[4 * n + 3] = T(id);
      if (db) tr.derivatives(db + 4 * n);
    }
    empty.end((row + 1) * s.W);
  }
}

// grad_rast, grad_db: null where there is no gradient.
template <typename T>
void rast_backward(const T* pos, const int32_t* tri, const int32_t* ids, const RastShape& s, const T* grad_rast,
                   const T* grad_db, T* grad_pos, int64_t pos_numel) {
#pragma omp parallel
  {
    cpu::PrivateSum<T> sum(grad_pos, pos_numel);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < s.B * s.H; ++row) {
      const int64_t base = s.base(row), py = row % s.H;
      for (int64_t px = 0, n = row * s.W; px < s.W; ++px, ++n) {
        const int32_t id = ids[n];
        if (id == 0) continue;
        const T gu = grad_rast ? grad_rast[4 * n] : T(0), gv = grad_rast ? grad_rast[4 * n + 1] : T(0);
        const T* gdb = grad_db ? grad_db + 4 * n : nullptr;
        if (gu == 0 && gv == 0 && !(gdb && (gdb[0] != 0 || gdb[1] != 0 || gdb[2] != 0 || gdb[3] != 0))) continue;
        PixelTriangle<T> tr;
        tr.load(pos, tri, base, id - 1, px, py, s.W, s.H);
        tr.values();
        T gx[3], gy[3], gw[3];
        tr.backward(gu, gv, gdb, gx, gy, gw);
        for (int k = 0; k < 3; ++k) {
          const int64_t e = 4 * (base + tri[3 * (id - 1) + k]);
          sum.add(e, gx[k]);
          sum.add(e + 1, gy[k]);
          sum.add(e + 3, gw[k]);
        }
      }
    }
    sum.reduce();
  }
}

// db and out_da: null without listed attributes. Returns the number of pixels whose id is not
// one of 0..F (left empty).
template <typename T>
int64_t interpolate_fwd(const T* attr, const T* rast, const int32_t* tri, const T* db, const std::vector<int64_t>& diff,
                        const InterpolateShape& s, T* out, T* out_da) {
  const int64_t D = static_cast<int64_t>(diff.size()), A = s.A;
  int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad)
  for (int64_t row = 0; row < s.rows; ++row) {
    const T* rows_attr = attr + s.base(row) * A;
    EmptyRuns<T> empty{{out, out_da}, {A, 2 * D}, row * s.W};
    for (int64_t n = row * s.W; n < (row + 1) * s.W; ++n) {
      const int64_t face = pixel_face(rast, n, s.F);
      if (face < 0) {
        bad += face == -2;
        continue;
      }
      empty.covered(n);
      const T* c0 = rows_attr + tri[3 * face] * A;
      const T* c1 = rows_attr + tri[3 * face + 1] * A;
      const T* c2 = rows_attr + tri[3 * face + 2] * A;
      const T u = rast[4 * n], v = rast[4 * n + 1];
      for (int64_t e = 0; e < A; ++e) out[n * A + e] = c2[e] + u * (c0[e] - c2[e]) + v * (c1[e] - c2[e]);
      for (int64_t d = 0; d < D; ++d) {
        const int64_t e = diff[d];
        const T* dn = db + 4 * n;
        const T e0 = c0[e] - c2[e], e1 = c1[e] - c2[e];
        out_da[(n * D + d) * 2] = e0 * dn[0] + e1 * dn[2];
        out_da[(n * D + d) * 2 + 1] = e0 * dn[1] + e1 * dn[3];
      }
    }
    empty.end((row + 1) * s.W);
  }
  return bad;
}

// grad_out, grad_da (then db too): null where there is no gradient; grad_attr (zeroed), grad_rast,
// grad_db: null where not wanted.
template <typename T>
void interpolate_bwd(const T* attr, const T* rast, const int32_t* tri, const T* db, const std::vector<int64_t>& diff,
                     const InterpolateShape& s, const T* grad_out, const T* grad_da, T* grad_attr, int64_t attr_numel,
                     T* grad_rast, T* grad_db) {
  const int64_t D = grad_da ? static_cast<int64_t>(diff.size()) : 0, A = s.A;
#pragma omp parallel
  {
    cpu::PrivateSum<T> sum(grad_attr, attr_numel);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < s.rows; ++row) {
      const int64_t base = s.base(row) * A;
      EmptyRuns<T> empty{{grad_rast, grad_db}, {4, 4}, row * s.W};
      for (int64_t n = row * s.W; n < (row + 1) * s.W; ++n) {
        const int64_t face = pixel_face(rast, n, s.F);
        if (face < 0) continue;
        empty.covered(n);
        // The corners' offsets in attr.
        const int64_t c0 = base + tri[3 * face] * A, c1 = base + tri[3 * face + 1] * A,
                      c2 = base + tri[3 * face + 2] * A;
        const T u = rast[4 * n], v = rast[4 * n + 1];
        T gu = 0, gv = 0;
        if (grad_out) {
          // out = c2 + u e0 + v e1: d/du = g . e0, d/dv = g . e1; the corners get (u, v, 1 - u - v) g.
          const T* g = grad_out + n * A;
          for (int64_t e = 0; e < A; ++e) {
            gu += g[e] * (attr[c0 + e] - attr[c2 + e]);
            gv += g[e] * (attr[c1 + e] - attr[c2 + e]);
            if (grad_attr) {
              const T g0 = u * g[e], g1 = v * g[e];  // d/d(e0), d/d(e1)
              sum.add(c0 + e, g0);
              sum.add(c1 + e, g1);
              sum.add(c2 + e, g[e] - g0 - g1);
            }
          }
        }
        T gdb[4] = {0, 0, 0, 0};
        for (int64_t d = 0; d < D; ++d) {
          // (dA/dX, dA/dY) = (e0 db0 + e1 db2, e0 db1 + e1 db3).
          const int64_t e = diff[d];
          const T* dn = db + 4 * n;
          const T gx = grad_da[(n * D + d) * 2], gy = grad_da[(n * D + d) * 2 + 1];
          const T e0 = attr[c0 + e] - attr[c2 + e], e1 = attr[c1 + e] - attr[c2 + e];
          gdb[0] += gx * e0, gdb[1] += gy * e0, gdb[2] += gx * e1, gdb[3] += gy * e1;
          if (grad_attr) {
            const T g0 = gx * dn[0] + gy * dn[1], g1 = gx * dn[2] + gy * dn[3];  // d/d(e0), d/d(e1)
            sum.add(c0 + e, g0);
            sum.add(c1 + e, g1);
            sum.add(c2 + e, -g0 - g1);
          }
        }
        if (grad_rast) {
          grad_rast[4 * n] = gu, grad_rast[4 * n + 1] = gv, grad_rast[4 * n + 2] = grad_rast[4 * n + 3] = 0;
        }
        if (grad_db) {
          for (int c = 0; c < 4; ++c) grad_db[4 * n + c] = gdb[c];
        }
      }
      empty.end((row + 1) * s.W);
    }
    sum.reduce();
  }
}

template <typename T>
T* data_or_null(torch::Tensor& t) {
  return t.defined() && t.numel() ? t.data_ptr<T>() : nullptr;
}

}  // namespace

std::vector<torch::Tensor> nvdr_rast_forward(torch::Tensor pos, torch::Tensor tri, torch::Tensor tri_id, bool with_db) {
  const RastShape s = rast_shape(pos, tri, tri_id);
  auto rast = torch::empty({s.B, s.H, s.W, 4}, pos.options());
  auto rast_db = torch::empty({s.B, s.H, s.W, with_db ? 4 : 0}, pos.options());
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "nvdr_rast_forward", [&] {
    rast_forward(pos.data_ptr<scalar_t>(), tri.data_ptr<int32_t>(), tri_id.data_ptr<int32_t>(), s,
                 rast.data_ptr<scalar_t>(), data_or_null<scalar_t>(rast_db));
  });
  return {rast, rast_db};
}

torch::Tensor nvdr_rast_backward(torch::Tensor grad_rast, torch::Tensor grad_rast_db, torch::Tensor pos,
                                 torch::Tensor tri, torch::Tensor tri_id) {
  const RastShape s = rast_shape(pos, tri, tri_id);
  auto grad_pos = torch::zeros_like(pos);
  grad_rast = grad_rast.contiguous();
  grad_rast_db = grad_rast_db.contiguous();
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "nvdr_rast_backward", [&] {
    rast_backward(pos.data_ptr<scalar_t>(), tri.data_ptr<int32_t>(), tri_id.data_ptr<int32_t>(), s,
                  static_cast<const scalar_t*>(data_or_null<scalar_t>(grad_rast)),
                  static_cast<const scalar_t*>(data_or_null<scalar_t>(grad_rast_db)), grad_pos.data_ptr<scalar_t>(),
                  grad_pos.numel());
  });
  return grad_pos;
}

std::vector<torch::Tensor> nvdr_interpolate_forward(torch::Tensor attr, torch::Tensor rast, torch::Tensor tri,
                                                    torch::Tensor rast_db, std::vector<int64_t> diff) {
  const InterpolateShape s = interpolate_shape(attr, rast, tri, rast_db);
  const int64_t D = static_cast<int64_t>(diff.size());
  TORCH_CHECK(!D || rast_db.numel(), "nvdr_interpolate kernel: diff_attrs need rast_db");
  auto out = torch::empty({rast.size(0), rast.size(1), rast.size(2), s.A}, attr.options());
  auto out_da = torch::empty({rast.size(0), rast.size(1), rast.size(2), 2 * D}, attr.options());
  int64_t bad = 0;
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "nvdr_interpolate_forward", [&] {
    bad = interpolate_fwd(attr.data_ptr<scalar_t>(), rast.data_ptr<scalar_t>(), tri.data_ptr<int32_t>(),
                          D ? rast_db.data_ptr<scalar_t>() : nullptr, diff, s, out.data_ptr<scalar_t>(),
                          data_or_null<scalar_t>(out_da));
  });
  return {out, out_da, torch::scalar_tensor(bad, torch::kLong)};
}

std::vector<torch::Tensor> nvdr_interpolate_backward(torch::Tensor grad_out, torch::Tensor grad_da,
                                                     torch::Tensor attr, torch::Tensor rast, torch::Tensor tri,
                                                     torch::Tensor rast_db, std::vector<int64_t> diff,
                                                     bool want_attr, bool want_rast, bool want_db) {
  const InterpolateShape s = interpolate_shape(attr, rast, tri, rast_db);
  grad_out = grad_out.contiguous();
  grad_da = diff.empty() ? torch::Tensor() : grad_da.contiguous();  // no listed attributes: no out_da gradient
  want_db = want_db && grad_da.defined() && grad_da.numel();
  auto grad_attr = want_attr ? torch::zeros_like(attr) : torch::Tensor();
  auto grad_rast = want_rast ? torch::empty_like(rast) : torch::Tensor();
  auto grad_db = want_db ? torch::empty_like(rast_db) : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "nvdr_interpolate_backward", [&] {
    const scalar_t* g_da = data_or_null<scalar_t>(grad_da);
    interpolate_bwd(attr.data_ptr<scalar_t>(), rast.data_ptr<scalar_t>(), tri.data_ptr<int32_t>(),
                    g_da ? rast_db.data_ptr<scalar_t>() : nullptr, diff, s,
                    static_cast<const scalar_t*>(data_or_null<scalar_t>(grad_out)), g_da,
                    data_or_null<scalar_t>(grad_attr), attr.numel(), data_or_null<scalar_t>(grad_rast),
                    data_or_null<scalar_t>(grad_db));
  });
  return {grad_attr, grad_rast, grad_db};
}

}  // namespace glsplat
