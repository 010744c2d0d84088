// Edge-glued silhouette splats: which contour edge each silhouette sample is glued to (see
// glsplat/silhouette.py, whose find_glue_torch is the reference this is tested against, in the
// same order of floating-point operations: edges.h's maths, with R = double; hence no fused
// multiply-adds in this file, edges.h included).
#pragma GCC optimize("fp-contract=off")
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "edges.h"
#include "kernels.h"

namespace glsplat {
namespace {

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
    if (b == 0 || clip.size(0) > 1) {
      for (int64_t i = 0; i < count; ++i) {
        const double* p0 = c + f[3 * i] * 4;
        const double* p1 = c + f[3 * i + 1] * 4;
        const double* p2 = c + f[3 * i + 2] * 4;
        front[i] = front_facing<double>(p0, p1, p2);
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

  // The sample's own test's window (deeper_near), nearest first: a glued sample's deeper pixel is
  // usually a neighbor.
  std::vector<int64_t> window((2 * reach + 1) * (2 * reach + 1));
  window_steps(reach, zi, zj, window.data());

  // The (sample, edge) pairs of the edges [first, end) that pass every test but the sample's own
  // (deeper_near, the same for all of a sample's edges: made once per sample after the merge).
  auto search = [&](int64_t first, int64_t end, std::vector<Found>& found) {
    for (int64_t m = first; m < end; ++m) {
      const int64_t image = e[3 * m];
      const double* ca = c + ((shared ? 0 : image) * verts + e[3 * m + 1]) * 4;
      const double* cb = c + ((shared ? 0 : image) * verts + e[3 * m + 2]) * 4;
      ImageEdge edge;
      EdgeWalk walk;
      if (!image_edge<double>(ca, cb, width, height, &edge) || !walk.init<double>(edge, band, width, height)) continue;
      for (int64_t u = walk.ufirst; u <= walk.ulast; ++u) {
        int64_t vfirst, vlast;
        walk.line<double>(u, &vfirst, &vlast);
        for (int64_t v = vfirst; v <= vlast; ++v) {
          const int64_t row = walk.row(u, v), col = walk.col(u, v);
          const int64_t pixel = (image * layers) * frame + row * width + col;
          if (id[pixel] <= 0) continue;  // not covered: neither is any deeper layer
          NearEdge hit;
          if (!near_edge<double>(edge, row, col, height, width, band2, outside, tolerance, &hit)) continue;
          for (int64_t k = 0; k < layers; ++k) {
            const int64_t sample = pixel + k * frame;
            if (id[sample] <= 0) break;  // deeper layers are empty too
            const float* layer = z + image * zb + k * zk;
            const double d_p = layer[row * zi + col * zj];
            const double d_out = hit.out_in ? static_cast<double>(layer[hit.out_row * zi + hit.out_col * zj]) : 1.0;
            if (glued_in_layer(d_p, d_out, hit))
              found.push_back({(image * layers + k) * height + row, static_cast<int32_t>(col),
                               static_cast<int32_t>(m), hit.dist2, hit.s});
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
    to_pixels<double>(ca, width, height, &ax, &ay);
    to_pixels<double>(cb, width, height, &bx, &by);
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
          if (deeper_near(layer, zi, zj, row, col, height, width, reach, window.data(),
                          static_cast<int64_t>(window.size()), deeper_than<double>(d_p, tolerance)))
            kept[k].push_back(best[col]);
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
      out_t[g] = perspective_t<double>(f->s, wa, wb);
      out_rows[g++] = low;
    }
  return {sample, ends, t, rows};
}

}  // namespace glsplat
