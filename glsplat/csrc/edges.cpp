// Edge-glued silhouette splats: which contour edge each silhouette sample is glued to (see
// glsplat/silhouette.py, whose find_glue_torch is the reference this is tested against, in the
// same order of floating-point operations: hence no fused multiply-adds in this file).
#pragma GCC optimize("fp-contract=off")
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"

namespace glsplat {
namespace {

// Image position (x right, y down, pixels) of a clip-space point.
inline void to_pixels(const double* c, double width, double height, double* x, double* y) {
  *x = (c[0] / c[3] + 1) * (width / 2);
  *y = (1 - c[1] / c[3]) * (height / 2);
}

// The part [s0, s1] of the segment a + s (b - a), s in [0, 1], inside [lo_x, hi_x] x [lo_y, hi_y]
// (Liang-Barsky); false when none is.
bool clip_segment(double ax, double ay, double dx, double dy, double lo_x, double hi_x, double lo_y, double hi_y,
                  double* s0, double* s1) {
  *s0 = 0;
  *s1 = 1;
  const double start[2] = {ax, ay}, dir[2] = {dx, dy}, lo[2] = {lo_x, lo_y}, hi[2] = {hi_x, hi_y};
  for (int axis = 0; axis < 2; ++axis) {
    if (dir[axis] == 0) {
      if (start[axis] < lo[axis] || start[axis] > hi[axis]) return false;
      continue;
    }
    double sa = (lo[axis] - start[axis]) / dir[axis], sb = (hi[axis] - start[axis]) / dir[axis];
    *s0 = std::max(*s0, std::min(sa, sb));
    *s1 = std::min(*s1, std::max(sa, sb));
  }
  return *s0 <= *s1;
}

struct Found {
  int64_t sample, edge;
  double dist2, t;
};

}  // namespace

torch::Tensor contour_edges(torch::Tensor clip, torch::Tensor faces, torch::Tensor edge_ids, int64_t batch) {
  TORCH_CHECK(clip.dim() == 3 && clip.size(2) == 4 && clip.scalar_type() == torch::kDouble && clip.is_contiguous() &&
                  clip.device().is_cpu() && (clip.size(0) == 1 || clip.size(0) == batch),
              "contour_edges: clip must be contiguous float64 [1 or B, V, 4] on the CPU");
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3 && faces.scalar_type() == torch::kLong && faces.is_contiguous() &&
                  edge_ids.scalar_type() == torch::kLong && edge_ids.is_contiguous() &&
                  edge_ids.numel() == faces.numel(),
              "contour_edges: faces int64 [F, 3], edge_ids int64 [3 F]");
  const int64_t count = faces.size(0), verts = clip.size(1);
  const int64_t* f = faces.data_ptr<int64_t>();
  const int64_t* ids = edge_ids.data_ptr<int64_t>();
  const int64_t edges = count ? *std::max_element(ids, ids + 3 * count) + 1 : 0;
  std::vector<uint8_t> front(count);
  std::vector<int32_t> fronts(edges);
  std::vector<int64_t> out;
  for (int64_t b = 0; b < batch; ++b) {
    const double* c = clip.data_ptr<double>() + (clip.size(0) == 1 ? 0 : b) * verts * 4;
    if (b == 0 || clip.size(0) > 1) {  // facing: the sign of det[x, y, w] of the corners
      std::fill(fronts.begin(), fronts.end(), 0);
      for (int64_t i = 0; i < count; ++i) {
        const double* p0 = c + f[3 * i] * 4;
        const double* p1 = c + f[3 * i + 1] * 4;
        const double* p2 = c + f[3 * i + 2] * 4;
        const double det = p0[0] * (p1[1] * p2[3] - p2[1] * p1[3]) - p0[1] * (p1[0] * p2[3] - p2[0] * p1[3]) +
                           p0[3] * (p1[0] * p2[1] - p2[0] * p1[1]);
        front[i] = det > 0;
        if (front[i])
          for (int k = 0; k < 3; ++k) ++fronts[ids[3 * i + k]];
      }
    }
    for (int64_t h = 0; h < 3 * count; ++h) {
      const int64_t a = f[h], e = f[h % 3 == 2 ? h - 2 : h + 1];
      if (front[h / 3] && fronts[ids[h]] == 1 && c[a * 4 + 3] > 0 && c[e * 4 + 3] > 0) {
        out.push_back(b);
        out.push_back(a);
        out.push_back(e);
      }
    }
  }
  auto result = torch::empty({static_cast<int64_t>(out.size() / 3), 3}, torch::kLong);
  std::copy(out.begin(), out.end(), result.data_ptr<int64_t>());
  return result;
}

std::vector<torch::Tensor> find_glue(torch::Tensor clip, torch::Tensor edges, torch::Tensor tri_id, torch::Tensor depth,
                                     double band, int64_t reach, double outside, double tolerance) {
  TORCH_CHECK(clip.dim() == 3 && clip.size(2) == 4 && clip.scalar_type() == torch::kDouble && clip.is_contiguous() &&
                  clip.device().is_cpu(),
              "find_glue: clip must be contiguous float64 [Bc, V, 4] on the CPU");
  TORCH_CHECK(edges.dim() == 2 && edges.size(1) == 3 && edges.scalar_type() == torch::kLong && edges.is_contiguous(),
              "find_glue: edges must be contiguous int64 [M, 3]");
  TORCH_CHECK(tri_id.dim() == 4 && tri_id.scalar_type() == torch::kInt && tri_id.is_contiguous(),
              "find_glue: tri_id must be contiguous int32 [B, K, H, W]");
  TORCH_CHECK(depth.sizes() == tri_id.sizes() && depth.scalar_type() == torch::kFloat && depth.device().is_cpu(),
              "find_glue: depth must be float32 [B, K, H, W] (any strides: a view of the G-buffer)");
  const int64_t layers = tri_id.size(1), height = tri_id.size(2), width = tri_id.size(3);
  const int64_t verts = clip.size(1), frame = height * width;
  const bool shared = clip.size(0) == 1;
  const double* c = clip.data_ptr<double>();
  const int64_t* e = edges.data_ptr<int64_t>();
  const int32_t* id = tri_id.data_ptr<int32_t>();
  const float* z = depth.data_ptr<float>();
  const int64_t zb = depth.stride(0), zk = depth.stride(1), zi = depth.stride(2), zj = depth.stride(3);
  const double band2 = band * band;

  // Is something in the (2 reach + 1)^2 window around (row, col) of this layer deeper than `than`?
  auto deeper_near = [&](const float* layer, int64_t row, int64_t col, double than) {
    if (row < reach || col < reach || row + reach >= height || col + reach >= width) return true;  // background: 1
    for (int64_t i = row - reach; i <= row + reach; ++i)
      for (int64_t j = col - reach; j <= col + reach; ++j)
        if (static_cast<double>(layer[i * zi + j * zj]) > than) return true;
    return false;
  };

  // The edges [first, end) in order: each sample's nearest edge (ties to the first), `slot`
  // indexing `found`.
  auto search = [&](int64_t first, int64_t end, std::vector<Found>& found) {
    std::vector<int32_t> slot(tri_id.numel(), -1);
    for (int64_t m = first; m < end; ++m) {
      const int64_t image = e[3 * m];
      const double* ca = c + ((shared ? 0 : image) * verts + e[3 * m + 1]) * 4;
      const double* cb = c + ((shared ? 0 : image) * verts + e[3 * m + 2]) * 4;
      if (!(ca[3] > 0 && cb[3] > 0)) continue;
      double ax, ay, bx, by;
      to_pixels(ca, width, height, &ax, &ay);
      to_pixels(cb, width, height, &bx, &by);
      const double abx = bx - ax, aby = by - ay;
      const double l2 = abx * abx + aby * aby;
      if (!(l2 > 0)) continue;
      const double norm = std::sqrt(l2), ox = -aby / norm, oy = abx / norm;
      double s0, s1;  // the part of the edge within reach of the image's pixels
      if (!clip_segment(ax, ay, abx, aby, -band - 1, width + band + 1, -band - 1, height + band + 1, &s0, &s1))
        continue;
      // Walk the major axis; on each of its pixel lines, the pixels within `band` of the segment.
      const bool x_major = std::abs(abx) >= std::abs(aby);
      const double u0 = x_major ? ax + s0 * abx : ay + s0 * aby, u1 = x_major ? ax + s1 * abx : ay + s1 * aby;
      const double v0 = x_major ? ay + s0 * aby : ax + s0 * abx, v1 = x_major ? ay + s1 * aby : ax + s1 * abx;
      const double umin = std::min(u0, u1), umax = std::max(u0, u1);
      const int64_t ulimit = x_major ? width : height, vlimit = x_major ? height : width;
      const int64_t ufirst = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(umin - band - 0.5)));
      const int64_t ulast = std::min<int64_t>(ulimit - 1, static_cast<int64_t>(std::floor(umax + band - 0.5)));
      for (int64_t u = ufirst; u <= ulast; ++u) {
        const double lo = std::max(umin, u + 0.5 - band), hi = std::min(umax, u + 0.5 + band);
        double va = v0, vb = v1;
        if (umax > umin) {
          va = v0 + (v1 - v0) * ((lo - u0) / (u1 - u0));
          vb = v0 + (v1 - v0) * ((hi - u0) / (u1 - u0));
        }
        const double vmin = std::min(va, vb), vmax = std::max(va, vb);
        const int64_t vfirst = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(vmin - band - 0.5)) - 1);
        const int64_t vlast = std::min<int64_t>(vlimit - 1, static_cast<int64_t>(std::floor(vmax + band - 0.5)) + 1);
        for (int64_t v = vfirst; v <= vlast; ++v) {
          const int64_t row = x_major ? v : u, col = x_major ? u : v;
          const double px = col + 0.5, py = row + 0.5;
          const double apx = px - ax, apy = py - ay;
          const double s = std::min(std::max((apx * abx + apy * aby) / l2, 0.0), 1.0);
          const double qx = s <= 0 ? ax : (s >= 1 ? bx : ax + s * abx);
          const double qy = s <= 0 ? ay : (s >= 1 ? by : ay + s * aby);
          const double dx = px - qx, dy = py - qy;
          const double dist2 = dx * dx + dy * dy;
          const double cross = abx * apy - aby * apx;
          if (!(dist2 <= band2 && cross <= 0)) continue;
          const double out_row = std::floor(qy + oy * outside), out_col = std::floor(qx + ox * outside);
          const bool out_in = out_row >= 0 && out_row < height && out_col >= 0 && out_col < width;
          const double wa = ca[3], wb = cb[3];
          const double t = s * wa / (s * wa + (1 - s) * wb);
          double q[4];
          for (int i = 0; i < 4; ++i) q[i] = (1 - t) * ca[i] + t * cb[i];
          const double q_depth = (q[2] / q[3] + 1) * 0.5;
          const double q_deeper = q_depth + tolerance * (1 - q_depth);
          for (int64_t k = 0; k < layers; ++k) {
            const int64_t sample = (image * layers + k) * frame + row * width + col;
            if (id[sample] <= 0) break;  // deeper layers are empty too
            const float* layer = z + image * zb + k * zk;
            const double d_p = layer[row * zi + col * zj];
            const double d_out = out_in ? static_cast<double>(layer[static_cast<int64_t>(out_row) * zi +
                                                                    static_cast<int64_t>(out_col) * zj])
                                        : 1.0;
            if (!(d_p <= q_deeper && d_out > q_deeper)) continue;
            if (!deeper_near(layer, row, col, d_p + tolerance * (1 - d_p))) continue;
            int32_t& at = slot[sample];
            if (at < 0) {
              at = static_cast<int32_t>(found.size());
              found.push_back({sample, m, dist2, t});
            } else if (dist2 < found[at].dist2) {
              found[at] = {sample, m, dist2, t};
            }
          }
        }
      }
    }
  };
  // Edges in chunks, one per thread; merged into what one pass over all edges in order keeps.
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), edges.size(0) / 128));
  std::vector<std::vector<Found>> parts(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t stop) {
    for (int64_t k = begin; k < stop; ++k)
      search(edges.size(0) * k / chunks, edges.size(0) * (k + 1) / chunks, parts[k]);
  });
  std::vector<Found> all;
  for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
  std::sort(all.begin(), all.end(), [](const Found& x, const Found& y) {
    return x.sample != y.sample ? x.sample < y.sample : (x.dist2 != y.dist2 ? x.dist2 < y.dist2 : x.edge < y.edge);
  });
  std::vector<Found> found;
  for (const Found& f : all)
    if (found.empty() || found.back().sample != f.sample) found.push_back(f);
  const int64_t count = static_cast<int64_t>(found.size());
  auto sample = torch::empty({count}, torch::kLong);
  auto edge = torch::empty({count}, torch::kLong);
  auto t = torch::empty({count}, torch::kDouble);
  for (int64_t g = 0; g < count; ++g) {
    sample.data_ptr<int64_t>()[g] = found[g].sample;
    edge.data_ptr<int64_t>()[g] = found[g].edge;
    t.data_ptr<double>()[g] = found[g].t;
  }
  return {sample, edge, t};
}

namespace {

// Adds the gradient of a pixel position (x, y) = ((X / w + 1) W / 2, (1 - Y / w) H / 2) of the
// clip-space point sum_i weight[i] clip[corner[i]], pulled back from (gx, gy), to the corners.
template <typename T>
void pull_pixel(T* grad, const T* clip, const int64_t* corner, const double* weight, int corners, double gx,
                double gy, double width, double height) {
  double point[4] = {0, 0, 0, 0};
  for (int i = 0; i < corners; ++i)
    for (int j = 0; j < 4; ++j) point[j] += weight[i] * static_cast<double>(clip[corner[i] * 4 + j]);
  const double w = point[3];
  // d x / d(X, w) = W / 2 (1 / w, -X / w^2); d y / d(Y, w) = H / 2 (-1 / w, Y / w^2)
  const double gX = gx * width / 2 / w, gY = -gy * height / 2 / w;
  const double gw = -(gX * point[0] + gY * point[1]) / w;
  for (int i = 0; i < corners; ++i) {
    T* g = grad + corner[i] * 4;
    g[0] += static_cast<T>(weight[i] * gX);
    g[1] += static_cast<T>(weight[i] * gY);
    g[3] += static_cast<T>(weight[i] * gw);
  }
}

}  // namespace

torch::Tensor glue_backward(torch::Tensor grad_offset, torch::Tensor rows, torch::Tensor sample, torch::Tensor edge,
                            torch::Tensor t, torch::Tensor clip, torch::Tensor faces, torch::Tensor tri_id,
                            torch::Tensor bary) {
  TORCH_CHECK(clip.dim() == 3 && clip.size(2) == 4 && clip.is_contiguous() && clip.device().is_cpu(),
              "glue_backward: clip must be contiguous [Bc, V, 4] on the CPU");
  TORCH_CHECK(grad_offset.dim() == 2 && grad_offset.size(1) == 2 && grad_offset.is_contiguous() &&
                  grad_offset.scalar_type() == clip.scalar_type(),
              "glue_backward: grad_offset must be contiguous [N, 2] in clip's dtype");
  TORCH_CHECK(rows.scalar_type() == torch::kLong && sample.scalar_type() == torch::kLong &&
                  edge.scalar_type() == torch::kLong && t.scalar_type() == torch::kDouble && rows.is_contiguous() &&
                  sample.is_contiguous() && edge.is_contiguous() && t.is_contiguous() && edge.dim() == 2 &&
                  edge.size(1) == 2 && rows.numel() == sample.numel() && edge.size(0) == sample.numel() &&
                  t.numel() == sample.numel(),
              "glue_backward: rows, sample [G] int64, edge [G, 2] int64, t [G] float64");
  TORCH_CHECK(faces.scalar_type() == torch::kLong && faces.is_contiguous() && tri_id.scalar_type() == torch::kInt &&
                  tri_id.is_contiguous() && tri_id.dim() == 4 && bary.scalar_type() == torch::kFloat &&
                  bary.dim() == 5 && bary.size(4) == 2,
              "glue_backward: faces int64 [F, 3], tri_id int32 [B, K, H, W], bary float32 [B, K, H, W, 2]");
  auto grad = torch::zeros_like(clip);
  const int64_t layers = tri_id.size(1), height = tri_id.size(2), width = tri_id.size(3);
  const int64_t per_image = layers * height * width, verts = clip.size(1);
  const bool shared = clip.size(0) == 1;
  const int64_t* row = rows.data_ptr<int64_t>();
  const int64_t* at = sample.data_ptr<int64_t>();
  const int64_t* ends = edge.data_ptr<int64_t>();
  const double* param = t.data_ptr<double>();
  const int64_t* face = faces.data_ptr<int64_t>();
  const int32_t* id = tri_id.data_ptr<int32_t>();
  const float* b = bary.data_ptr<float>();
  const int64_t bs[5] = {bary.stride(0), bary.stride(1), bary.stride(2), bary.stride(3), bary.stride(4)};
  AT_DISPATCH_FLOATING_TYPES(clip.scalar_type(), "glue_backward", [&] {
    const scalar_t* g_off = grad_offset.data_ptr<scalar_t>();
    for (int64_t i = 0; i < sample.numel(); ++i) {
      const int64_t s = at[i], image = s / per_image;
      const int64_t k = s / (height * width) % layers, y = s / width % height, x = s % width;
      const int64_t offset = (shared ? 0 : image) * verts;
      const scalar_t* c = clip.data_ptr<scalar_t>() + offset * 4;
      scalar_t* g = grad.data_ptr<scalar_t>() + offset * 4;
      const int64_t ea = ends[2 * i], eb = ends[2 * i + 1];
      // m, the edge's unit image normal (constant), and the gradient's part along it
      double ax, ay, bx, by, ca[4], cb[4];
      for (int j = 0; j < 4; ++j) ca[j] = c[ea * 4 + j], cb[j] = c[eb * 4 + j];
      to_pixels(ca, width, height, &ax, &ay);
      to_pixels(cb, width, height, &bx, &by);
      const double norm = std::sqrt((bx - ax) * (bx - ax) + (by - ay) * (by - ay));
      const double mx = -(by - ay) / norm, my = (bx - ax) / norm;
      const double along = mx * g_off[2 * row[i]] + my * g_off[2 * row[i] + 1];
      const double gx = mx * along, gy = my * along;
      // + the edge point q = (1 - t) clip[a] + t clip[b] ...
      const int64_t q_corner[2] = {ea, eb};
      const double q_weight[2] = {1 - param[i], param[i]};
      pull_pixel(g, c, q_corner, q_weight, 2, gx, gy, width, height);
      // ... - the sample's own point, its face's corners blended with its barycentrics
      const int64_t f = id[s] - 1;
      const float* bb = b + image * bs[0] + k * bs[1] + y * bs[2] + x * bs[3];
      const double b0 = bb[0], b1 = bb[bs[4]];
      const double p_weight[3] = {b0, b1, 1 - b0 - b1};
      pull_pixel(g, c, face + 3 * f, p_weight, 3, -gx, -gy, width, height);
    }
  });
  return grad;
}

}  // namespace glsplat
