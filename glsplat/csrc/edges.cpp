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
  int64_t line;  // the sample's pixel line (image * layers + layer) * height + row
  int32_t col, edge;
  double dist2, s;  // s: the closest point's parameter on the edge in the image
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
      for (int64_t i = 0; i < count; ++i) {
        const double* p0 = c + f[3 * i] * 4;
        const double* p1 = c + f[3 * i + 1] * 4;
        const double* p2 = c + f[3 * i + 2] * 4;
        const double det = p0[0] * (p1[1] * p2[3] - p2[1] * p1[3]) - p0[1] * (p1[0] * p2[3] - p2[0] * p1[3]) +
                           p0[3] * (p1[0] * p2[1] - p2[0] * p1[1]);
        front[i] = det > 0;
      }
      std::fill(fronts.begin(), fronts.end(), 0);
      for (int64_t i = 0; i < count; ++i)
        if (front[i])
          for (int k = 0; k < 3; ++k) ++fronts[ids[3 * i + k]];
    }
    for (int64_t i = 0; i < count; ++i) {
      if (!front[i]) continue;
      for (int k = 0; k < 3; ++k) {
        const int64_t a = f[3 * i + k], e = f[3 * i + (k + 1) % 3];
        if (fronts[ids[3 * i + k]] == 1 && c[a * 4 + 3] > 0 && c[e * 4 + 3] > 0) {
          out.push_back(b);
          out.push_back(a);
          out.push_back(e);
        }
      }
    }
  }
  auto result = torch::empty({static_cast<int64_t>(out.size() / 3), 3}, torch::kLong);
  std::copy(out.begin(), out.end(), result.data_ptr<int64_t>());
  return result;
}

std::vector<torch::Tensor> find_glue(torch::Tensor clip, torch::Tensor faces, torch::Tensor edge_ids,
                                     torch::Tensor tri_id, torch::Tensor depth, torch::Tensor index, double band,
                                     int64_t reach, double outside, double tolerance) {
  TORCH_CHECK(tri_id.dim() == 4 && tri_id.scalar_type() == torch::kInt && tri_id.is_contiguous(),
              "find_glue: tri_id must be contiguous int32 [B, K, H, W]");
  TORCH_CHECK(depth.sizes() == tri_id.sizes() && depth.scalar_type() == torch::kFloat && depth.device().is_cpu(),
              "find_glue: depth must be float32 [B, K, H, W] (any strides: a view of the G-buffer)");
  TORCH_CHECK(index.dim() == 1 && index.scalar_type() == torch::kLong && index.is_contiguous(),
              "find_glue: index must be contiguous int64 [N]");
  const torch::Tensor edges = contour_edges(clip, faces, edge_ids, tri_id.size(0));
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
  // The window's offsets in the layer, nearest first (a glued sample's deeper pixel is usually a
  // neighbor).
  std::vector<std::pair<int64_t, int64_t>> window;  // (squared distance, offset)
  for (int64_t i = -reach; i <= reach; ++i)
    for (int64_t j = -reach; j <= reach; ++j) window.push_back({i * i + j * j, i * zi + j * zj});
  std::stable_sort(window.begin(), window.end(), [](auto x, auto y) { return x.first < y.first; });
  auto deeper_near = [&](const float* layer, int64_t row, int64_t col, double than) {
    if (row < reach || col < reach || row + reach >= height || col + reach >= width) return true;  // background: 1
    const float* at = layer + row * zi + col * zj;
    for (const auto& [_, step] : window)
      if (static_cast<double>(at[step]) > than) return true;
    return false;
  };

  // The (sample, edge) pairs of the edges [first, end) that pass every test but the sample's own
  // (deeper_near, the same for all of a sample's edges: made once per sample after the merge).
  auto search = [&](int64_t first, int64_t end, std::vector<Found>& found) {
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
      const double ndc_a = ca[2] / ca[3], ndc_b = cb[2] / cb[3];  // NDC depth: affine in the image along the edge
      double s0, s1;  // the part of the edge within reach of the image's pixels
      if (!clip_segment(ax, ay, abx, aby, -band - 1, width + band + 1, -band - 1, height + band + 1, &s0, &s1))
        continue;
      // Walk the major axis; on each of its pixel lines, the pixels within `band` of the segment.
      const bool x_major = std::abs(abx) >= std::abs(aby);
      const double u0 = x_major ? ax + s0 * abx : ay + s0 * aby, u1 = x_major ? ax + s1 * abx : ay + s1 * aby;
      const double umin = std::min(u0, u1), umax = std::max(u0, u1);
      const int64_t ulimit = x_major ? width : height, vlimit = x_major ? height : width;
      const int64_t ufirst = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(umin - band - 0.5)));
      const int64_t ulast = std::min<int64_t>(ulimit - 1, static_cast<int64_t>(std::floor(umax + band - 0.5)));
      // On the line through u's pixel centers, the pixels on the edge's inner side (cross <= 0)
      // within `band` of its line (a bound on the distance to the segment): a pixel past
      // either bound (one more, for rounding) fails the exact tests below.
      const double major = x_major ? abx : aby, minor = x_major ? aby : abx;
      const double spread = band * norm / std::abs(major);
      const double start = x_major ? ax : ay, offset = x_major ? ay : ax;
      const bool below = x_major ? abx > 0 : aby < 0;  // the inner side is toward smaller v
      for (int64_t u = ufirst; u <= ulast; ++u) {
        const double line = offset + minor * ((u + 0.5 - start) / major);
        const double vmin = below ? line - spread : line, vmax = below ? line : line + spread;
        const int64_t vfirst = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(vmin - 0.5)) - 1);
        const int64_t vlast = std::min<int64_t>(vlimit - 1, static_cast<int64_t>(std::floor(vmax - 0.5)) + 1);
        for (int64_t v = vfirst; v <= vlast; ++v) {
          const int64_t row = x_major ? v : u, col = x_major ? u : v;
          const int64_t pixel = (image * layers) * frame + row * width + col;
          if (id[pixel] <= 0) continue;  // not covered: neither is any deeper layer
          const double px = col + 0.5, py = row + 0.5;
          const double apx = px - ax, apy = py - ay;
          const double cross = abx * apy - aby * apx;
          if (!(cross <= 0)) continue;  // the edge's outer side
          const double s = std::min(std::max((apx * abx + apy * aby) / l2, 0.0), 1.0);
          const double qx = s <= 0 ? ax : (s >= 1 ? bx : ax + s * abx);
          const double qy = s <= 0 ? ay : (s >= 1 ? by : ay + s * aby);
          const double dx = px - qx, dy = py - qy;
          const double dist2 = dx * dx + dy * dy;
          if (!(dist2 <= band2)) continue;
          const double out_row = std::floor(qy + oy * outside), out_col = std::floor(qx + ox * outside);
          const bool out_in = out_row >= 0 && out_row < height && out_col >= 0 && out_col < width;
          const double q_depth = ((1 - s) * ndc_a + s * ndc_b + 1) * 0.5;  // window depth of the closest point
          const double q_deeper = q_depth + tolerance * (1 - q_depth);
          for (int64_t k = 0; k < layers; ++k) {
            const int64_t sample = pixel + k * frame;
            if (id[sample] <= 0) break;  // deeper layers are empty too
            const float* layer = z + image * zb + k * zk;
            const double d_p = layer[row * zi + col * zj];
            const double d_out = out_in ? static_cast<double>(layer[static_cast<int64_t>(out_row) * zi +
                                                                    static_cast<int64_t>(out_col) * zj])
                                        : 1.0;
            if (d_p <= q_deeper && d_out > q_deeper)
              found.push_back({(image * layers + k) * height + row, static_cast<int32_t>(col),
                               static_cast<int32_t>(m), dist2, s});
          }
        }
      }
    }
  };
  // Edges in chunks of about equal work (pixel length + 2 band), one per thread. The buffers are
  // kept between calls (per calling thread): fresh ones cost a page fault per 4 KiB.
  struct Scratch {
    std::vector<double> work;
    std::vector<std::vector<Found>> parts;
    std::vector<Found> sorted;
    std::vector<int64_t> start;
    std::vector<std::vector<const Found*>> kept;
    std::vector<std::vector<const Found*>> nearest;
  };
  static thread_local Scratch scratch;
  const int64_t count_edges = edges.size(0);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), count_edges / 64));
  auto& work = scratch.work;
  work.assign(count_edges + 1, 0.0);
  for (int64_t m = 0; m < count_edges; ++m) {
    const int64_t image = e[3 * m];
    const double* ca = c + ((shared ? 0 : image) * verts + e[3 * m + 1]) * 4;
    const double* cb = c + ((shared ? 0 : image) * verts + e[3 * m + 2]) * 4;
    double ax, ay, bx, by;
    to_pixels(ca, width, height, &ax, &ay);
    to_pixels(cb, width, height, &bx, &by);
    const double length = std::abs(bx - ax) + std::abs(by - ay);
    work[m + 1] = work[m] + 2 * band + (std::isfinite(length) ? std::min(length, 2.0 * (width + height)) : 0.0);
  }
  std::vector<int64_t> edge_cut(chunks + 1, count_edges);
  for (int64_t k = 0; k < chunks; ++k)
    edge_cut[k] = std::lower_bound(work.begin(), work.end(), work.back() * k / chunks) - work.begin();
  auto& parts = scratch.parts;
  parts.resize(std::max<size_t>(parts.size(), chunks));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t stop) {
    for (int64_t k = begin; k < stop; ++k) {
      parts[k].clear();
      search(edge_cut[k], edge_cut[k + 1], parts[k]);
    }
  });
  // Sorted by pixel line (one row of one layer of one image).
  auto& start = scratch.start;
  const int64_t lines = tri_id.numel() / width;
  start.assign(lines + 1, 0);
  size_t total = 0;
  for (int64_t k = 0; k < chunks; ++k) {
    for (const Found& f : parts[k]) ++start[f.line + 1];
    total += parts[k].size();
  }
  for (int64_t line = 0; line < lines; ++line) start[line + 1] += start[line];
  auto& sorted = scratch.sorted;
  sorted.resize(total);
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t k = 0; k < chunks; ++k)
      for (const Found& f : parts[k]) sorted[next[f.line]++] = f;
  }
  // Each sample's nearest edge (ties to the first in `edges`), kept if the sample passes its own
  // test, line by line (each line's samples by column): in runs of lines with about equal numbers
  // of pairs, one per thread.
  std::vector<int64_t> line_cut(chunks + 1, lines);
  for (int64_t k = 0; k < chunks; ++k)
    line_cut[k] = std::lower_bound(start.begin(), start.end() - 1, static_cast<int64_t>(total * k / chunks)) -
                  start.begin();
  auto& kept = scratch.kept;
  kept.resize(std::max<size_t>(kept.size(), chunks));
  auto& nearest = scratch.nearest;
  nearest.resize(std::max<size_t>(nearest.size(), chunks));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t stop) {
    for (int64_t k = begin; k < stop; ++k) {
      kept[k].clear();
      auto& best = nearest[k];  // per column: the nearest pair so far, or none
      best.assign(width, nullptr);
      std::vector<int32_t> cols;
      for (int64_t line = line_cut[k]; line < line_cut[k + 1]; ++line) {
        cols.clear();
        for (const Found* f = sorted.data() + start[line]; f < sorted.data() + start[line + 1]; ++f) {
          const Found*& at = best[f->col];
          if (at == nullptr) {
            at = f;
            cols.push_back(f->col);
          } else if (f->dist2 < at->dist2 || (f->dist2 == at->dist2 && f->edge < at->edge)) {
            at = f;
          }
        }
        std::sort(cols.begin(), cols.end());
        const int64_t row = line % height;
        const float* layer = z + line / (height * layers) * zb + line / height % layers * zk;
        for (const int32_t col : cols) {
          const double d_p = layer[row * zi + col * zj];
          if (deeper_near(layer, row, col, d_p + tolerance * (1 - d_p))) kept[k].push_back(best[col]);
          best[col] = nullptr;
        }
      }
    }
  });
  // The outputs; each sample's row in `index` (both ascending: a galloping search from the last).
  int64_t count = 0;
  for (int64_t k = 0; k < chunks; ++k) count += static_cast<int64_t>(kept[k].size());
  const int64_t covered = index.numel();
  auto sample = torch::empty({count}, torch::kLong), ends = torch::empty({count, 2}, torch::kLong);
  auto t = torch::empty({count}, torch::kDouble), rows = torch::empty({count}, torch::kLong);
  const int64_t* packed = index.data_ptr<int64_t>();
  int64_t* out_sample = sample.data_ptr<int64_t>();
  int64_t* out_ends = ends.data_ptr<int64_t>();
  int64_t* out_rows = rows.data_ptr<int64_t>();
  double* out_t = t.data_ptr<double>();
  int64_t g = 0, low = 0;
  for (int64_t k = 0; k < chunks; ++k)
    for (const Found* f : kept[k]) {
      const int64_t s = f->line * width + f->col;
      int64_t step = 1;
      while (low + step < covered && packed[low + step] < s) low += step, step *= 2;
      low = std::lower_bound(packed + low, packed + std::min(covered, low + step + 1), s) - packed;
      TORCH_CHECK(low < covered && packed[low] == s, "find_glue: index must list every covered sample, ascending");
      out_sample[g] = s;
      out_ends[2 * g] = e[3 * f->edge + 1];
      out_ends[2 * g + 1] = e[3 * f->edge + 2];
      const int64_t image = e[3 * f->edge];
      const double wa = c[((shared ? 0 : image) * verts + out_ends[2 * g]) * 4 + 3];
      const double wb = c[((shared ? 0 : image) * verts + out_ends[2 * g + 1]) * 4 + 3];
      out_t[g] = f->s * wa / (f->s * wa + (1 - f->s) * wb);  // perspective-correct
      out_rows[g++] = low;
    }
  return {sample, ends, t, rows};
}

}  // namespace glsplat
