// CPU kernel of glsplat.nvdiffrast.antialias: nvdiffrast's analytic antialias. The method and its
// terms (pairs, front triangle, silhouette edges, the crossing dc, alpha) are described in
// glsplat/nvdiffrast/analytic.py, the torch reference; tests/test_nvdiffrast_antialias.py holds
// nvdiffrast's own kernels as a loop, the oracle both are tested against.
//
// The forward pass goes over each image row once (rows in parallel), finds the pixel pairs whose
// triangle ids differ (a pixel and its right neighbor, a pixel and the one in the next row),
// analyzes each from its front triangle's side, and keeps those that blend as work items: these
// add to a copy of the image and are returned for the backward pass, which recomputes each one's
// crossing from its edge's two vertices and takes the derivatives of that alone.
//
// Every value is the reference's operation for operation, in its order (the blends too: all
// horizontal pairs in pixel order, then all vertical ones), so that the two agree bitwise on the
// forward pass; hence no fused multiply-adds in this file, and IEEE NaN semantics (as nvdr_raster.cpp:
// the build's -ffinite-math-only would let the compiler assume a triangle id is never NaN).
#pragma GCC optimize("fp-contract=off", "no-finite-math-only")

#include <torch/extension.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <tuple>
#include <vector>

#include "kernels.h"
#include "splat.h"

namespace glsplat {
namespace {

// A work item: a pair that blends. Its pixels (flat indices into [B, H, W]: second is first + 1,
// or first + W when vertical), the two vertices of the front triangle's edge that crosses the
// line between the two centers (rows of pos viewed as [-1, 4]), and flags.
constexpr int kItemFields = 5;  // first, second, a, b, flags
constexpr int64_t kVertical = 1;  // the pair is (pixel, the one in the next row)
constexpr int64_t kSecondFront = 2;  // the front triangle is the second pixel's (ds = -1)

template <typename T>
struct Point {
  T x, y;
};

// A [B, H, W, C] image in any memory layout (the torch texture's output is channel-planar: a
// copy to make it contiguous would cost more than this kernel). Pixels are flat indices into [B, H, W].
template <typename T>
struct Image {
  T* data;
  int64_t H, W, stride[4];

  Image(const torch::Tensor& t)
      : data(t.data_ptr<T>()), H(t.size(1)), W(t.size(2)), stride{t.stride(0), t.stride(1), t.stride(2), t.stride(3)} {}
  // Pixel n's channel e is at(n)[e * step()].
  T* at(int64_t n) const { return data + n / (H * W) * stride[0] + n / W % H * stride[1] + n % W * stride[2]; }
  int64_t step() const { return stride[3]; }
};

// nvdiffrast's sign test: equal sign bits (so +0 and -0 differ).
template <typename T>
inline bool same_sign(T a, T b) {
  return std::signbit(a) == std::signbit(b);
}

// n0 / d0 > n1 / d1 without dividing (nvdiffrast's rational_gt).
template <typename T>
inline bool greater(T n0, T n1, T d0, T d1) {
  return (n0 * d1 > n1 * d0) == same_sign(d0, d1);
}

// Where the line through a and b crosses y = 0: x = num / dy.
template <typename T>
struct Crossing {
  T num, dy;
};

template <typename T>
inline Crossing<T> crossing(Point<T> a, Point<T> b) {
  const T dx = b.x - a.x, dy = b.y - a.y;
  return {a.x * dy - a.y * dx, dy};
}

// A blending pair's crossing, recomputed from its edge's two vertices alone.
template <typename T>
struct Blend {
  Point<T> a, b;  // the edge's ends: pixel units relative to the front pixel's center, y up (swapped if vertical)
  Crossing<T> c;
  T ds, dc, alpha;  // dc = ds num / dy, alpha = ds (1/2 - clamp(dc, 0, 1))
  int64_t target;   // the pixel the edge is nearer to, which takes in the other's color
};

// What the forward and backward passes share: pixel-space positions and a work item's blend.
template <typename T>
struct Antialias {
  const T* pos;  // [V or B * V, 4], clip space
  int64_t H, W;
  T half_width, half_height;
  const Point<T>* screen = nullptr;  // each vertex row's screen_of, where kept (the forward pass's)

  // Pixel-space (x, y) of vertex row k, from the image's middle (y up).
  Point<T> screen_of(int64_t k) const {
    if (screen) return screen[k];
    const T* p = pos + 4 * k;
    const T inv_w = T(1) / p[3];
    return {p[0] * inv_w * half_width, p[1] * inv_w * half_height};
  }

  // Pixel-space (x, y) of vertex row k, relative to (cx, cy).
  Point<T> to_pixels(int64_t k, T cx, T cy) const {
    const Point<T> p = screen_of(k);
    return {p.x - cx, p.y - cy};
  }

  // The center of pixel (flat) n, relative to the image's middle: its column's x, its row's y.
  static T center_of(int64_t column_or_row, T half) { return T(column_or_row) + T(0.5) - half; }
  T center_x(int64_t n) const { return center_of(n % W, half_width); }
  T center_y(int64_t n) const { return center_of((n / W) % H, half_height); }

  static Point<T> swapped(Point<T> p, bool swap) { return swap ? Point<T>{p.y, p.x} : p; }

  Blend<T> blend(const int64_t* item) const {
    const int64_t first = item[0], second = item[1], flags = item[4];
    const bool vertical = flags & kVertical;
    const int64_t center = flags & kSecondFront ? second : first;
    Blend<T> r;
    r.ds = flags & kSecondFront ? T(-1) : T(1);
    const T cx = center_x(center), cy = center_y(center);
    r.a = swapped(to_pixels(item[2], cx, cy), vertical);
    r.b = swapped(to_pixels(item[3], cx, cy), vertical);
    r.c = crossing(r.a, r.b);
    r.dc = r.ds * (r.c.num / r.c.dy);
    r.alpha = r.ds * (T(0.5) - std::min(std::max(r.dc, T(0)), T(1)));
    r.target = r.alpha > 0 ? first : second;
    return r;
  }
};

template <typename T>
struct Forward : Antialias<T> {
  using Antialias<T>::to_pixels;
  using Antialias<T>::screen_of;
  using Antialias<T>::center_of;
  using Antialias<T>::swapped;
  const T* rast;               // [B, H, W, 4]: (u, v, z/w, triangle id + 1)
  const int32_t* tri;          // [F, 3]
  const int64_t* opposite;     // [F, 3]: the vertex across each edge, -1 if none
  int64_t F, V;                // V: vertices per image (instanced), 0 in range mode
  T edge_eps;                  // how far outside the pair a crossing still counts (px)
  // Each triangle's silhouette edges in each image (instanced; one image in range mode), found on
  // first use: 0 not yet, else kKnown | bit i for edge i.
  std::atomic<uint8_t>* silhouettes;
  static constexpr uint8_t kKnown = 8;

  // Silhouette edges (edge i: corner i + 1 to i + 2) of face in the image whose vertices start
  // at row offset: the vertex across on the triangle's own side, or none across. As bits.
  uint8_t silhouette_bits(int64_t face, int64_t offset) const {
    Point<T> p[3], o[3];
    for (int k = 0; k < 3; ++k) {
      const int64_t corner = tri[3 * face + k] + offset, across = opposite[3 * face + k];
      p[k] = screen_of(corner);
      o[k] = screen_of(across >= 0 ? across + offset : corner);
    }
    const T own = (p[1].x - p[0].x) * (p[2].y - p[0].y) - (p[2].x - p[0].x) * (p[1].y - p[0].y);
    uint8_t bits = kKnown;
    for (int i = 0; i < 3; ++i) {
      const Point<T> a = p[(i + 1) % 3], b = p[(i + 2) % 3];
      const T wing = (a.x - o[i].x) * (b.y - o[i].y) - (b.x - o[i].x) * (a.y - o[i].y);
      bits |= same_sign(wing, own) << i;
    }
    return bits;
  }

  // The triangle of a rast id (-1: none), as the reference's .long() - 1; ids above F are not read.
  static int64_t face_of(T id) { return id >= T(1) ? int64_t(id) - 1 : -1; }

  // The pair (first, second) in image `image`, first at (column x, row y), if it blends: its work
  // item in `item`. (Most pairs end at the silhouette test: an edge between two triangles of a mesh.)
  bool analyze(int64_t first, int64_t second, bool vertical, int64_t image, int64_t x, int64_t y,
               int64_t* item) const {
    const T* t0 = rast + 4 * first;
    const T* t1 = rast + 4 * second;
    const int64_t tri0 = face_of(t0[3]), tri1 = face_of(t1[3]);
    // The front triangle: the covered side, or the nearer of two (ties: the second pixel's).
    const bool use1 = (tri0 < 0) | ((tri1 >= 0) & !(t0[2] < t1[2]));  // (no branch: unpredictable)
    const int64_t face = use1 ? tri1 : tri0;
    if (face < 0) return false;  // (ids in (0, 1) next to 0: both sides empty)
    const int64_t offset = V * image;
    // (Racing threads compute the same bits.)
    std::atomic<uint8_t>& known = silhouettes[(V ? image : 0) * F + face];
    uint8_t silhouette = known.load(std::memory_order_relaxed);
    if (!silhouette) known.store(silhouette = silhouette_bits(face, offset), std::memory_order_relaxed);
    if (silhouette == kKnown) return false;  // none: only pairs whose front triangle has one can blend
    const int64_t corner[3] = {tri[3 * face] + offset, tri[3 * face + 1] + offset, tri[3 * face + 2] + offset};
    const T ds = use1 ? T(-1) : T(1);
    const T cx = center_of(x + (use1 && !vertical), this->half_width);
    const T cy = center_of(y + (use1 && vertical), this->half_height);
    T num[3], dy[3];
    bool steep[3];
    for (int i = 0; i < 3; ++i) {
      const Point<T> a = swapped(to_pixels(corner[(i + 1) % 3], cx, cy), vertical);
      const Point<T> b = swapped(to_pixels(corner[(i + 2) % 3], cx, cy), vertical);
      const Crossing<T> c = crossing(a, b);
      const bool crosses = !same_sign(a.y, b.y);
      num[i] = crosses ? ds * c.num : T(-std::numeric_limits<float>::max());
      dy[i] = crosses ? c.dy : T(1);
      steep[i] = std::abs(dy[i]) >= std::abs(b.x - a.x);
    }
    // The edge with the farthest crossing toward the other pixel (nvdiffrast's max_idx3).
    const int e = greater(num[2], num[0], dy[2], dy[0]) && greater(num[2], num[1], dy[2], dy[1]) ? 2
                  : greater(num[1], num[0], dy[1], dy[0])                                      ? 1
                                                                                               : 0;
    const T dc = num[e] / dy[e];
    if (!((silhouette >> e & 1) && steep[e] && dc > -edge_eps && dc < T(1) + edge_eps)) return false;
    item[0] = first;
    item[1] = second;
    item[2] = corner[(e + 1) % 3];
    item[3] = corner[(e + 2) % 3];
    item[4] = (vertical ? kVertical : 0) | (use1 ? kSecondFront : 0);
    return true;
  }
};

// The pass over the rows, then the blends: out holds a copy of color. Returns the work items
// and the largest triangle id + 1 in a pair.
template <typename T>
std::tuple<torch::Tensor, double> forward(Forward<T> k, Image<T> color, Image<T> out, int64_t B, int64_t C,
                                          int64_t vertex_rows) {
  const int64_t H = k.H, W = k.W, rows = B * H;
  std::vector<Point<T>> screen(vertex_rows);
#pragma omp parallel for schedule(static)
  for (int64_t v = 0; v < vertex_rows; ++v) screen[v] = k.screen_of(v);
  k.screen = screen.data();
  std::unique_ptr<std::atomic<uint8_t>[]> silhouettes(new std::atomic<uint8_t>[k.F * (k.V ? B : 1)]());
  k.silhouettes = silhouettes.get();
  double largest = 0;
  // Each row's items, horizontal pairs then vertical ones, each in pixel order.
  std::vector<std::vector<int64_t>> across(rows), down(rows);  // (down: with the next row in memory)
  const T* rast = k.rast;
  const double faces = double(k.F);
#pragma omp parallel reduction(max : largest)
  {
    std::vector<uint8_t> flags(W + 8, 0);  // each pixel's pairs: bit 0 with the next pixel, bit 1 with the next row's
    std::vector<int64_t> columns(2 * (W + 8));  // the columns of this row's pairs of each kind
#pragma omp for schedule(dynamic, 8)
    for (int64_t r = 0; r < rows; ++r) {
      // The comparisons first, in loops that vectorize: reading rast is most of this pass's time.
      const int64_t image = r / H, y = r % H;
      const T* id = rast + 4 * r * W + 3;
      uint8_t* f = flags.data();
      for (int64_t j = 0; j < W - 1; ++j) f[j] = id[4 * j] != id[4 * j + 4];
      f[W - 1] = 0;
      if (y != H - 1) {
        const T* next = id + 4 * W;
        for (int64_t j = 0; j < W; ++j) f[j] |= uint8_t(id[4 * j] != next[4 * j]) << 1;
      }
      // Their columns, listed without branching on each (skipping 8 pixels without pairs at once).
      int64_t* listed[2] = {columns.data(), columns.data() + W + 8};
      int64_t count[2] = {0, 0};
      for (int64_t j = 0; j < W; j += 8) {
        uint64_t chunk;
        std::memcpy(&chunk, f + j, sizeof chunk);  // (flags is padded: past W, zeros)
        if (!chunk) continue;
        for (int64_t i = j; i < j + 8; ++i) {
          listed[0][count[0]] = i;
          count[0] += f[i] & 1;
          listed[1][count[1]] = i;
          count[1] += f[i] >> 1;
        }
      }
      int64_t item[kItemFields];
      for (int v = 0; v < 2; ++v) {
        auto& list = v ? down[r] : across[r];
        for (int64_t i = 0; i < count[v]; ++i) {
          const int64_t j = listed[v][i], n = r * W + j, m = n + (v ? W : 1);
          const double high = std::max(double(id[4 * j]), double(rast[4 * m + 3]));
          largest = std::max(largest, high);
          if (high > faces) continue;  // an error, raised by the caller
          if (k.analyze(n, m, v, image, j, y, item)) list.insert(list.end(), item, item + kItemFields);
        }
      }
    }
  }
  int64_t count = 0;
  for (const auto* lists : {&across, &down}) {
    for (const auto& list : *lists) count += list.size();
  }
  auto work = torch::empty({count / kItemFields, kItemFields}, torch::kLong);
  int64_t* w = work.data_ptr<int64_t>();
  for (const auto* lists : {&across, &down}) {
    for (const auto& list : *lists) w = std::copy(list.begin(), list.end(), w);
  }
  // The blends, in the reference's order: each adds alpha (color[second] - color[first]) to its target.
  const int64_t* items = work.data_ptr<int64_t>();
  for (int64_t i = 0; i < work.size(0); ++i) {
    const int64_t* item = items + i * kItemFields;
    const Blend<T> b = k.blend(item);
    T* o = out.at(b.target);
    const T *c0 = color.at(item[0]), *c1 = color.at(item[1]);
    for (int64_t e = 0; e < C; ++e) o[e * out.step()] += b.alpha * (c1[e * color.step()] - c0[e * color.step()]);
  }
  return {work, largest};
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor, double> nvdr_antialias_forward(torch::Tensor color, torch::Tensor rast,
                                                                        torch::Tensor pos, torch::Tensor tri,
                                                                        torch::Tensor opposite, double edge_eps) {
  TORCH_CHECK(color.dim() == 4 && rast.dim() == 4 && rast.size(3) == 4 && (pos.dim() == 2 || pos.dim() == 3) &&
                  pos.size(-1) == 4 && tri.dim() == 2 && tri.size(1) == 3 && opposite.sizes() == tri.sizes(),
              "antialias kernel: color [B, H, W, C], rast [B, H, W, 4], pos [B, V, 4] or [V, 4], tri, opposite [F, 3]");
  TORCH_CHECK(color.device().is_cpu(), "antialias kernel: CPU tensors only");
  for (const auto* t : {&rast, &pos, &tri, &opposite}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(), "antialias kernel: CPU tensors, contiguous but color");
  }
  TORCH_CHECK(rast.scalar_type() == color.scalar_type() && pos.scalar_type() == color.scalar_type() &&
                  tri.scalar_type() == torch::kInt && opposite.scalar_type() == torch::kLong,
              "antialias kernel: dtypes");
  const int64_t H = color.size(1), W = color.size(2);
  auto out = color.clone();  // (in color's memory layout where it is dense)
  std::tuple<torch::Tensor, double> result;
  AT_DISPATCH_FLOATING_TYPES(color.scalar_type(), "nvdr_antialias_forward", [&] {
    Forward<scalar_t> k;
    k.pos = pos.data_ptr<scalar_t>();
    k.H = H;
    k.W = W;
    k.half_width = scalar_t(W) / scalar_t(2);
    k.half_height = scalar_t(H) / scalar_t(2);
    k.rast = rast.data_ptr<scalar_t>();
    k.tri = tri.data_ptr<int32_t>();
    k.opposite = opposite.data_ptr<int64_t>();
    k.F = tri.size(0);
    k.V = pos.dim() == 3 ? pos.size(1) : 0;
    k.edge_eps = scalar_t(edge_eps);
    result = forward(k, Image<scalar_t>(color), Image<scalar_t>(out), color.size(0), color.size(3),
                     pos.numel() / 4);
  });
  return {out, std::get<0>(result), std::get<1>(result)};
}

std::vector<torch::Tensor> nvdr_antialias_backward(torch::Tensor grad_out, torch::Tensor color, torch::Tensor pos,
                                                   torch::Tensor work, bool want_color, bool want_pos, double boost,
                                                   double dy_eps) {
  const int64_t H = color.size(1), W = color.size(2), C = color.size(3);
  torch::Tensor grad_color = want_color ? grad_out.clone() : torch::Tensor();  // (grad_out's layout where dense)
  torch::Tensor grad_pos = want_pos ? torch::zeros_like(pos) : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(color.scalar_type(), "nvdr_antialias_backward", [&] {
    using T = scalar_t;
    Antialias<T> k{pos.data_ptr<T>(), H, W, T(W) / T(2), T(H) / T(2)};
    const Image<T> g(grad_out), c(color);
    const Image<T> gc = want_color ? Image<T>(grad_color) : Image<T>(grad_out);  // (not written unless want_color)
    T* gp = want_pos ? grad_pos.data_ptr<T>() : nullptr;
    const int64_t* items = work.data_ptr<int64_t>();
    for (int64_t i = 0; i < work.size(0); ++i) {  // (few items: the pairs that blend)
      const int64_t* item = items + i * kItemFields;
      const int64_t first = item[0], second = item[1];
      const Blend<T> b = k.blend(item);
      const T* go = g.at(b.target);
      const T *c0 = c.at(first), *c1 = c.at(second);
      T *gc0 = gc.at(first), *gc1 = gc.at(second);
      T grad_alpha = 0;
      for (int64_t e = 0; e < C; ++e) {
        // out[target] += alpha (color[second] - color[first])
        const T ge = go[e * g.step()];
        if (want_color) {
          gc1[e * gc.step()] += b.alpha * ge;
          gc0[e * gc.step()] -= b.alpha * ge;
        }
        grad_alpha += ge * (c1[e * c.step()] - c0[e * c.step()]);
      }
      // dc clamped: no gradient (torch's clamp passes it at 0 and at 1).
      if (!gp || !(b.dc >= T(0) && b.dc <= T(1))) continue;
      // alpha = ds (1/2 - dc): d alpha / d dc = -ds. As nvdiffrast, the derivative of dc = ds num / dy
      // is taken as that of ds num / (dy + 1e-3 px, signed as dy).
      const T grad_dc = -b.ds * grad_alpha;
      const T padded = b.c.dy + std::copysign(T(dy_eps), b.c.dy);
      const T grad_num = b.ds * grad_dc / padded;                          // d/d num
      const T grad_dy = -b.ds * grad_dc * b.c.num / (padded * padded);    // d/d dy (of the padded quotient)
      // num = a.x dy - a.y dx, dx = b.x - a.x, dy = b.y - a.y
      const T dx = b.b.x - b.a.x;
      const T grad_ax = grad_num * b.c.dy + grad_num * b.a.y;  // via a.x and via dx
      const T grad_bx = -grad_num * b.a.y;
      const T grad_ay = -grad_num * dx - grad_num * b.a.x - grad_dy;  // via a.y, via dy in num, via the padded dy
      const T grad_by = grad_num * b.a.x + grad_dy;
      const bool vertical = item[4] & kVertical;
      const Point<T> ga = Antialias<T>::swapped({grad_ax, grad_ay}, vertical);
      const Point<T> gb = Antialias<T>::swapped({grad_bx, grad_by}, vertical);
      // x = p0 / w W/2 - cx, y = p1 / w H/2 - cy: splat.h's divide, whose y is down (hence -gy).
      for (int end = 0; end < 2; ++end) {
        const Point<T> gxy = end ? gb : ga;
        const T* p = k.pos + 4 * item[2 + end];
        T* q = gp + 4 * item[2 + end];
        const ClipXYW<T> d = pulled_through_divide(ClipXYW<T>{p[0], p[1], p[3]},
                                                   Vec2<T>{T(boost) * gxy.x, -T(boost) * gxy.y}, k.half_width,
                                                   k.half_height);
        q[0] += d.x;
        q[1] += d.y;
        q[3] += d.w;
      }
    }
  });
  return {grad_color, grad_pos};
}

}  // namespace glsplat
