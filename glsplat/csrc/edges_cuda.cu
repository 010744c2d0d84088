// CUDA entry points of the edge glue: edges.h one item per thread, with the same arguments and
// answers as edges.cpp's contour_edges and find_glue (kernels.h).
//
// find_glue: each contour edge's walk (one thread per edge), then one thread per (edge, pixel
// line of its walk) that tests the line's candidate pixels and their layers. A sample keeps its
// nearest edge, the first listed among equals, as the reference does: three passes over the
// candidates, each recomputing the same tests bit for bit (edges.h's arithmetic is unfused): the
// nearest distance per sample (atomicMin of its bits: a non-negative double's bits order as
// unsigned integers), the smallest edge index at that distance (atomicMin), then that pair's
// parameter (one writer per sample). The samples that also pass their own window test, in
// ascending order, are a nonzero of a per-sample flag; their rows in `index` a searchsorted.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <climits>

#include "edges.h"
#include "kernels.h"

namespace glsplat {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxReach = 3;  // the window test's reach: up to 7 x 7
constexpr int32_t kNoEdge = INT32_MAX;

inline int blocks(int64_t items) { return static_cast<int>((items + kThreads - 1) / kThreads); }

__device__ inline int64_t thread_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }

// ---------------------------------------------------------------------------------------------
// Contour edges

// Facing, and how many front faces each undirected edge has: one thread per (clip image, face).
__global__ void facing_kernel(const double* clip, const int64_t* faces, const int64_t* edge_ids, int64_t images,
                              int64_t count, int64_t verts, bool* front, int32_t* fronts) {
  const int64_t n = thread_index();
  if (n >= images * count) return;
  const int64_t image = n / count, i = n % count;
  const double* c = clip + image * verts * 4;
  const int64_t* f = faces + 3 * i;
  const bool facing = front_facing<Unfused>(c + f[0] * 4, c + f[1] * 4, c + f[2] * 4);
  front[n] = facing;
  if (facing)
    for (int k = 0; k < 3; ++k) atomicAdd(fronts + image * 3 * count + edge_ids[3 * i + k], 1);
}

// Is half-edge h of image b a contour edge? One thread per (image, half-edge), [batch, 3 F].
__global__ void contour_kernel(const double* clip, const int64_t* faces, const int64_t* edge_ids, int64_t batch,
                               int64_t count, int64_t verts, bool shared, const bool* front, const int32_t* fronts,
                               bool* contour) {
  const int64_t n = thread_index();
  if (n >= batch * 3 * count) return;
  const int64_t image = shared ? 0 : n / (3 * count), h = n % (3 * count), i = h / 3, k = h % 3;
  const double* c = clip + image * verts * 4;
  const int64_t a = faces[3 * i + k], e = faces[3 * i + (k + 1) % 3];
  contour[n] = front[image * count + i] && fronts[image * 3 * count + edge_ids[h]] == 1 && c[a * 4 + 3] > 0 &&
               c[e * 4 + 3] > 0;
}

// ---------------------------------------------------------------------------------------------
// The search

// What the search's kernels share: the contour edges, the vertices and the raster.
struct Frame {
  const double* clip;    // [1 or B, V, 4]
  const int64_t* edges;  // [M, 3] (image, a, b)
  int64_t verts;
  bool shared;               // one set of vertices for every image
  const int32_t* tri_id;     // [B, K, H, W], contiguous
  const float* depth;        // [B, K, H, W], strides zb, zk, zi, zj
  int64_t zb, zk, zi, zj;
  int64_t layers, height, width;
  double band, band2, outside, tolerance;

  __device__ const double* end(int64_t m, int side) const {  // edge m's end a (side 1) or b (side 2)
    return clip + ((shared ? 0 : edges[3 * m]) * verts + edges[3 * m + side]) * 4;
  }
};

// An edge in the image and its walk.
struct Walked {
  ImageEdge edge;
  EdgeWalk walk;
};

// Each edge's walk and its number of pixel lines (0: none): one thread per edge.
__global__ void walk_kernel(Frame g, int64_t count, Walked* walks, int64_t* lines) {
  const int64_t m = thread_index();
  if (m >= count) return;
  Walked w;
  const bool near = image_edge<Unfused>(g.end(m, 1), g.end(m, 2), g.width, g.height, &w.edge) &&
                    w.walk.init<Unfused>(w.edge, g.band, g.width, g.height);
  walks[m] = w;
  lines[m] = near ? max_of<int64_t>(0, w.walk.ulast - w.walk.ufirst + 1) : 0;
}

enum Pass { kNearest, kFirst, kParameter };

// One pass over the (edge, pixel, layer) candidates that pass every test but the sample's own:
// one thread per (edge, pixel line); `ends` [M] the running total of the edges' lines.
template <Pass pass>
__global__ void pairs_kernel(Frame g, const Walked* walks, const int64_t* ends, int64_t count, int64_t items,
                             unsigned long long* nearest, int32_t* first, double* t) {
  const int64_t item = thread_index();
  if (item >= items) return;
  int64_t lo = 0, hi = count - 1;  // the edge: the first with ends[m] > item
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (ends[mid] > item) hi = mid;
    else lo = mid + 1;
  }
  const int64_t m = lo;
  const ImageEdge edge = walks[m].edge;
  const EdgeWalk walk = walks[m].walk;
  const int64_t u = walk.ufirst + item - (m > 0 ? ends[m - 1] : 0);
  const int64_t image = g.edges[3 * m], frame = g.height * g.width;
  int64_t vfirst, vlast;
  walk.line<Unfused>(u, &vfirst, &vlast);
  for (int64_t v = vfirst; v <= vlast; ++v) {
    const int64_t row = walk.row(u, v), col = walk.col(u, v);
    const int64_t pixel = (image * g.layers) * frame + row * g.width + col;
    if (g.tri_id[pixel] <= 0) continue;  // not covered: neither is any deeper layer
    NearEdge hit;
    if (!near_edge<Unfused>(edge, row, col, g.height, g.width, g.band2, g.outside, g.tolerance, &hit)) continue;
    const unsigned long long bits = static_cast<unsigned long long>(__double_as_longlong(hit.dist2));
    for (int64_t k = 0; k < g.layers; ++k) {
      const int64_t sample = pixel + k * frame;
      if (g.tri_id[sample] <= 0) break;  // deeper layers are empty too
      const float* layer = g.depth + image * g.zb + k * g.zk;
      const double d_p = layer[row * g.zi + col * g.zj];
      const double d_out = hit.out_in ? static_cast<double>(layer[hit.out_row * g.zi + hit.out_col * g.zj]) : 1.0;
      if (!glued_in_layer(d_p, d_out, hit)) continue;
      if constexpr (pass == kNearest) {
        atomicMin(nearest + sample, bits);
      } else if (nearest[sample] == bits) {
        if constexpr (pass == kFirst) {
          atomicMin(first + sample, static_cast<int32_t>(m));
        } else if (first[sample] == m) {  // kParameter: the one pair each sample keeps
          t[sample] = perspective_t<Unfused>(hit.s, g.end(m, 1)[3], g.end(m, 2)[3]);
        }
      }
    }
  }
}

// The window test's offsets (window_steps), by value.
struct Window {
  int64_t step[(2 * kMaxReach + 1) * (2 * kMaxReach + 1)];
  int64_t count, reach;
};

// Is sample n glued: has it an edge, and something deeper near it? One thread per sample.
__global__ void keep_kernel(Frame g, Window window, const int32_t* first, int64_t samples, bool* keep) {
  const int64_t n = thread_index();
  if (n >= samples) return;
  if (first[n] == kNoEdge) {
    keep[n] = false;
    return;
  }
  const int64_t col = n % g.width, row = n / g.width % g.height;
  const int64_t k = n / (g.width * g.height) % g.layers, image = n / (g.width * g.height * g.layers);
  const float* layer = g.depth + image * g.zb + k * g.zk;
  const double d_p = layer[row * g.zi + col * g.zj];
  keep[n] = deeper_near(layer, g.zi, g.zj, row, col, g.height, g.width, window.reach, window.step, window.count,
                        deeper_than<Unfused>(d_p, g.tolerance));
}

void same_device(const torch::Tensor& t, const torch::Tensor& like, const char* what) {
  TORCH_CHECK(t.is_cuda() && t.device() == like.device(), what, ": CUDA tensors on one device only");
}

}  // namespace

torch::Tensor contour_edges_cuda(torch::Tensor clip, torch::Tensor faces, torch::Tensor edge_ids, int64_t batch) {
  TORCH_CHECK(clip.dim() == 3 && clip.size(2) == 4 && clip.scalar_type() == torch::kDouble && clip.is_contiguous() &&
                  (clip.size(0) == 1 || clip.size(0) == batch),
              "contour_edges: clip must be contiguous float64 [1 or B, V, 4]");
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3 && faces.scalar_type() == torch::kLong && faces.is_contiguous() &&
                  edge_ids.scalar_type() == torch::kLong && edge_ids.is_contiguous() &&
                  edge_ids.numel() == faces.numel(),
              "contour_edges: faces int64 [F, 3], edge_ids int64 [3 F]");
  same_device(clip, clip, "contour_edges");
  same_device(faces, clip, "contour_edges");
  same_device(edge_ids, clip, "contour_edges");
  const c10::cuda::CUDAGuard guard(clip.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t count = faces.size(0), verts = clip.size(1), images = clip.size(0);
  const auto on = clip.options();
  if (count == 0 || batch == 0) return torch::empty({0, 3}, on.dtype(torch::kLong));
  auto front = torch::empty({images, count}, on.dtype(torch::kBool));
  auto fronts = torch::zeros({images, 3 * count}, on.dtype(torch::kInt));  // per undirected edge (ids < 3 F)
  auto contour = torch::empty({batch, 3 * count}, on.dtype(torch::kBool));
  facing_kernel<<<blocks(images * count), kThreads, 0, stream>>>(
      clip.data_ptr<double>(), faces.data_ptr<int64_t>(), edge_ids.data_ptr<int64_t>(), images, count, verts,
      front.data_ptr<bool>(), fronts.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  contour_kernel<<<blocks(batch * 3 * count), kThreads, 0, stream>>>(
      clip.data_ptr<double>(), faces.data_ptr<int64_t>(), edge_ids.data_ptr<int64_t>(), batch, count, verts,
      images == 1, front.data_ptr<bool>(), fronts.data_ptr<int32_t>(), contour.data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto found = contour.nonzero();  // [M, 2] (image, half-edge), in order
  const auto half = found.select(1, 1);
  return torch::stack({found.select(1, 0), faces.view(-1).index_select(0, half),
                       faces.roll(-1, 1).reshape(-1).index_select(0, half)},
                      1);
}

std::vector<torch::Tensor> find_glue_cuda(torch::Tensor clip, torch::Tensor faces, torch::Tensor edge_ids,
                                          torch::Tensor tri_id, torch::Tensor depth, torch::Tensor index,
                                          double band, int64_t reach, double outside, double tolerance) {
  TORCH_CHECK(tri_id.dim() == 4 && tri_id.scalar_type() == torch::kInt && tri_id.is_contiguous(),
              "find_glue: tri_id must be contiguous int32 [B, K, H, W]");
  TORCH_CHECK(depth.sizes() == tri_id.sizes() && depth.scalar_type() == torch::kFloat,
              "find_glue: depth must be float32 [B, K, H, W] (any strides: a view of the G-buffer)");
  TORCH_CHECK(index.dim() == 1 && index.scalar_type() == torch::kLong && index.is_contiguous(),
              "find_glue: index must be contiguous int64 [N]");
  TORCH_CHECK(reach >= 0 && reach <= kMaxReach, "find_glue: reach must be 0 to ", kMaxReach, " on CUDA");
  for (const torch::Tensor* t : {&clip, &faces, &edge_ids, &depth, &index}) same_device(*t, tri_id, "find_glue");
  const c10::cuda::CUDAGuard guard(tri_id.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const auto edges = contour_edges_cuda(clip, faces, edge_ids, tri_id.size(0));
  const auto on = tri_id.options();
  const auto none = torch::empty({0}, on.dtype(torch::kLong));
  const std::vector<torch::Tensor> empty{none, none.view({0, 2}), none.to(torch::kDouble), none};
  const int64_t count = edges.size(0), samples = tri_id.numel();
  TORCH_CHECK(count < INT32_MAX, "find_glue: too many contour edges");
  if (count == 0 || samples == 0) return empty;
  Frame g{clip.data_ptr<double>(),
          edges.data_ptr<int64_t>(),
          clip.size(1),
          clip.size(0) == 1,
          tri_id.data_ptr<int32_t>(),
          depth.data_ptr<float>(),
          depth.stride(0),
          depth.stride(1),
          depth.stride(2),
          depth.stride(3),
          tri_id.size(1),
          tri_id.size(2),
          tri_id.size(3),
          band,
          band * band,
          outside,
          tolerance};
  auto walks = torch::empty({count * static_cast<int64_t>(sizeof(Walked))}, on.dtype(torch::kByte));
  auto lines = torch::empty({count}, on.dtype(torch::kLong));
  auto* walked = reinterpret_cast<Walked*>(walks.data_ptr<uint8_t>());
  walk_kernel<<<blocks(count), kThreads, 0, stream>>>(g, count, walked, lines.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto ends = lines.cumsum(0);
  const int64_t items = ends[count - 1].item<int64_t>();
  if (items == 0) return empty;
  auto nearest = torch::full({samples}, -1, on.dtype(torch::kLong));  // all bits set: above any distance's
  auto first = torch::full({samples}, kNoEdge, on.dtype(torch::kInt));
  auto t = torch::empty({samples}, on.dtype(torch::kDouble));
  auto* near = reinterpret_cast<unsigned long long*>(nearest.data_ptr<int64_t>());
  static_assert(sizeof(unsigned long long) == sizeof(int64_t), "64-bit keys");
  pairs_kernel<kNearest><<<blocks(items), kThreads, 0, stream>>>(g, walked, ends.data_ptr<int64_t>(), count, items,
                                                                 near, first.data_ptr<int32_t>(), t.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  pairs_kernel<kFirst><<<blocks(items), kThreads, 0, stream>>>(g, walked, ends.data_ptr<int64_t>(), count, items,
                                                               near, first.data_ptr<int32_t>(), t.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  pairs_kernel<kParameter><<<blocks(items), kThreads, 0, stream>>>(
      g, walked, ends.data_ptr<int64_t>(), count, items, near, first.data_ptr<int32_t>(), t.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  Window window;
  window.reach = reach;
  window.count = (2 * reach + 1) * (2 * reach + 1);
  window_steps(reach, g.zi, g.zj, window.step);
  auto keep = torch::empty({samples}, on.dtype(torch::kBool));
  keep_kernel<<<blocks(samples), kThreads, 0, stream>>>(g, window, first.data_ptr<int32_t>(), samples,
                                                        keep.data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto sample = keep.nonzero().view(-1);  // ascending
  const auto edge = first.index_select(0, sample).to(torch::kLong);
  return {sample, edges.index_select(0, edge).slice(1, 1, 3).contiguous(), t.index_select(0, sample),
          torch::searchsorted(index, sample)};
}

}  // namespace glsplat
