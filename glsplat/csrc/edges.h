// Edge-glued silhouettes (glsplat/silhouette.py) one item at a time, shared by the CPU (edges.cpp)
// and CUDA (edges_cuda.cu) kernels: which faces face the camera, an edge's place in the image and
// the pixels it may glue, the tests of one (edge, pixel) candidate and of one layer's sample, the
// 5 x 5 "something deeper" window, the closest point's perspective-correct parameter, and the
// backward pass of one glued sample's offset.
//
// The glue is tested against find_glue_torch bit for bit, so the maths here is the reference's in
// the same order of floating-point operations, each one rounded on its own (the torch reference
// runs one operation per kernel). The functions whose results must be exact take the arithmetic
// type R: double on the host, where edges.cpp is compiled with fp-contract=off; Unfused on the
// device, where nvcc would otherwise fuse a * b + c into one fma (it ignores FP_CONTRACT pragmas).
#pragma once
#include <cmath>
#include <cstdint>

#include "splat.h"  // GLSPLAT_HD

namespace glsplat {

// A double whose operations each round to nearest, never fused into an fma: on the device the
// __d*_rn intrinsics, which the compiler does not contract (CUDA's programming guide).
struct Unfused {
  double v;
  GLSPLAT_HD Unfused(double x = 0) : v(x) {}
};
#ifdef __CUDA_ARCH__
GLSPLAT_HD inline Unfused operator+(Unfused a, Unfused b) { return __dadd_rn(a.v, b.v); }
GLSPLAT_HD inline Unfused operator-(Unfused a, Unfused b) { return __dsub_rn(a.v, b.v); }
GLSPLAT_HD inline Unfused operator*(Unfused a, Unfused b) { return __dmul_rn(a.v, b.v); }
GLSPLAT_HD inline Unfused operator/(Unfused a, Unfused b) { return __ddiv_rn(a.v, b.v); }
#else
GLSPLAT_HD inline Unfused operator+(Unfused a, Unfused b) { return a.v + b.v; }
GLSPLAT_HD inline Unfused operator-(Unfused a, Unfused b) { return a.v - b.v; }
GLSPLAT_HD inline Unfused operator*(Unfused a, Unfused b) { return a.v * b.v; }
GLSPLAT_HD inline Unfused operator/(Unfused a, Unfused b) { return a.v / b.v; }
#endif
GLSPLAT_HD inline Unfused operator-(Unfused a) { return -a.v; }
GLSPLAT_HD inline double value(Unfused x) { return x.v; }
GLSPLAT_HD inline double value(double x) { return x; }

// std::min and std::max, for both compilers (the same answers, NaN included).
template <typename T>
GLSPLAT_HD inline T min_of(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
GLSPLAT_HD inline T max_of(T a, T b) {
  return a < b ? b : a;
}

// ---------------------------------------------------------------------------------------------
// Contour edges

// Does the face with clip-space corners p0, p1, p2 (x, y, z, w) face the camera (GL does not cull
// it)? The sign of det[x, y, w] of the corners: the NDC area's sign where all w > 0.
template <typename R>
GLSPLAT_HD inline bool front_facing(const double* p0, const double* p1, const double* p2) {
  const R det = R(p0[0]) * (R(p1[1]) * p2[3] - R(p2[1]) * p1[3]) - R(p0[1]) * (R(p1[0]) * p2[3] - R(p2[0]) * p1[3]) +
                R(p0[3]) * (R(p1[0]) * p2[1] - R(p2[0]) * p1[1]);
  return value(det) > 0;
}

// ---------------------------------------------------------------------------------------------
// An edge in the image

// Image position (x right, y down, pixels) of a clip-space point (raster.py's clip_to_pixels).
template <typename R>
GLSPLAT_HD inline void to_pixels(const double* c, double width, double height, double* x, double* y) {
  *x = value((R(c[0]) / c[3] + 1) * (width / 2));
  *y = value((1 - R(c[1]) / c[3]) * (height / 2));
}

// A contour edge a -> b in the image (pixels): what the tests of its candidate pixels take.
struct ImageEdge {
  double ax, ay, bx, by;  // its ends
  double abx, aby, l2;    // b - a and its squared length
  double ox, oy;          // its unit outer normal (the inner side is where cross(b - a, p - a) <= 0)
  double ndc_a, ndc_b;    // its ends' NDC depths (z / w: affine in the image along the edge)
};

// The edge between clip-space points ca and cb (x, y, z, w) in an image of width x height pixels;
// false where it has none: an end at w <= 0, or no length in the image.
template <typename R>
GLSPLAT_HD inline bool image_edge(const double* ca, const double* cb, double width, double height, ImageEdge* e) {
  if (!(ca[3] > 0 && cb[3] > 0)) return false;
  to_pixels<R>(ca, width, height, &e->ax, &e->ay);
  to_pixels<R>(cb, width, height, &e->bx, &e->by);
  e->abx = e->bx - e->ax;
  e->aby = e->by - e->ay;
  e->l2 = value(R(e->abx) * e->abx + R(e->aby) * e->aby);
  if (!(e->l2 > 0)) return false;
  const double norm = sqrt(e->l2);
  e->ox = -e->aby / norm;
  e->oy = e->abx / norm;
  e->ndc_a = ca[2] / ca[3];
  e->ndc_b = cb[2] / cb[3];
  return true;
}

// The part [s0, s1] of the segment a + s (b - a), s in [0, 1], inside [lo_x, hi_x] x [lo_y, hi_y]
// (Liang-Barsky); false when none is.
GLSPLAT_HD inline bool clip_segment(double ax, double ay, double dx, double dy, double lo_x, double hi_x, double lo_y,
                                    double hi_y, double* s0, double* s1) {
  *s0 = 0;
  *s1 = 1;
  const double start[2] = {ax, ay}, dir[2] = {dx, dy}, lo[2] = {lo_x, lo_y}, hi[2] = {hi_x, hi_y};
  for (int axis = 0; axis < 2; ++axis) {
    if (dir[axis] == 0) {
      if (start[axis] < lo[axis] || start[axis] > hi[axis]) return false;
      continue;
    }
    const double sa = (lo[axis] - start[axis]) / dir[axis], sb = (hi[axis] - start[axis]) / dir[axis];
    *s0 = max_of(*s0, min_of(sa, sb));
    *s1 = min_of(*s1, max_of(sa, sb));
  }
  return *s0 <= *s1;
}

// The pixels an edge may glue, a superset of those within `band` of it on its inner side: the
// part of the edge within reach of the frame, walked along its major axis; on each pixel line u
// across that axis (ufirst to ulast, a column when x is the major axis), the pixels between the
// edge's line and the line `band` away from it on the inner side (one more each way, for rounding).
struct EdgeWalk {
  bool x_major;
  bool below;       // the inner side is toward smaller v
  int64_t ufirst, ulast, vlimit;
  double major, minor, spread, start, offset;

  // The walk of edge e in a frame of width x height; false where no part of it is near the frame.
  template <typename R>
  GLSPLAT_HD bool init(const ImageEdge& e, double band, int64_t width, int64_t height) {
    double s0, s1;
    if (!clip_segment(e.ax, e.ay, e.abx, e.aby, -band - 1, width + band + 1, -band - 1, height + band + 1, &s0, &s1))
      return false;
    x_major = fabs(e.abx) >= fabs(e.aby);
    const double u0 = x_major ? value(R(e.ax) + R(s0) * e.abx) : value(R(e.ay) + R(s0) * e.aby);
    const double u1 = x_major ? value(R(e.ax) + R(s1) * e.abx) : value(R(e.ay) + R(s1) * e.aby);
    const double umin = min_of(u0, u1), umax = max_of(u0, u1);
    const int64_t ulimit = x_major ? width : height;
    vlimit = x_major ? height : width;
    ufirst = max_of<int64_t>(0, static_cast<int64_t>(ceil(umin - band - 0.5)));
    ulast = min_of<int64_t>(ulimit - 1, static_cast<int64_t>(floor(umax + band - 0.5)));
    major = x_major ? e.abx : e.aby;
    minor = x_major ? e.aby : e.abx;
    spread = band * sqrt(e.l2) / fabs(major);
    start = x_major ? e.ax : e.ay;
    offset = x_major ? e.ay : e.ax;
    below = x_major ? e.abx > 0 : e.aby < 0;
    return true;
  }
  // The pixels [vfirst, vlast] of line u (none where vfirst > vlast).
  template <typename R>
  GLSPLAT_HD void line(int64_t u, int64_t* vfirst, int64_t* vlast) const {
    const double at = value(R(offset) + R(minor) * ((u + 0.5 - start) / major));
    const double vmin = below ? at - spread : at, vmax = below ? at : at + spread;
    *vfirst = max_of<int64_t>(0, static_cast<int64_t>(ceil(vmin - 0.5)) - 1);
    *vlast = min_of<int64_t>(vlimit - 1, static_cast<int64_t>(floor(vmax - 0.5)) + 1);
  }
  GLSPLAT_HD int64_t row(int64_t u, int64_t v) const { return x_major ? v : u; }
  GLSPLAT_HD int64_t col(int64_t u, int64_t v) const { return x_major ? u : v; }
};

// ---------------------------------------------------------------------------------------------
// The tests of one candidate

// Window depth z made "deeper than z": by more than `tolerance` of the distance to the camera.
template <typename R>
GLSPLAT_HD inline double deeper_than(double z, double tolerance) {
  return value(z + tolerance * (1 - R(z)));
}

// What the layers' tests of a candidate pixel take.
struct NearEdge {
  double dist2;              // the squared distance from the pixel's center to q, the edge's closest point
  double s;                  // q's parameter on the edge in the image (not perspective-correct)
  double q_deeper;           // deeper than q: deeper_than(q's window depth)
  int64_t out_row, out_col;  // the pixel `outside` px from q along the outer normal,
  bool out_in;               // if in the frame (else background: depth 1)
};

// The tests of candidate pixel (row, col) of edge e that do not depend on the layer: its center on
// the edge's inner side (cross <= 0) and within sqrt(band2) of it.
template <typename R>
GLSPLAT_HD inline bool near_edge(const ImageEdge& e, int64_t row, int64_t col, int64_t height, int64_t width,
                                 double band2, double outside, double tolerance, NearEdge* hit) {
  const double px = col + 0.5, py = row + 0.5;
  const double apx = px - e.ax, apy = py - e.ay;
  const double cross = value(R(e.abx) * apy - R(e.aby) * apx);
  if (!(cross <= 0)) return false;  // the edge's outer side
  const double s = min_of(max_of(value((R(apx) * e.abx + R(apy) * e.aby) / e.l2), 0.0), 1.0);
  const double qx = s <= 0 ? e.ax : (s >= 1 ? e.bx : value(R(e.ax) + R(s) * e.abx));
  const double qy = s <= 0 ? e.ay : (s >= 1 ? e.by : value(R(e.ay) + R(s) * e.aby));
  const double dx = px - qx, dy = py - qy;
  const double dist2 = value(R(dx) * dx + R(dy) * dy);
  if (!(dist2 <= band2)) return false;
  const double out_row = floor(value(R(qy) + R(e.oy) * outside)), out_col = floor(value(R(qx) + R(e.ox) * outside));
  hit->out_in = out_row >= 0 && out_row < height && out_col >= 0 && out_col < width;
  hit->out_row = hit->out_in ? static_cast<int64_t>(out_row) : 0;
  hit->out_col = hit->out_in ? static_cast<int64_t>(out_col) : 0;
  const double q_depth = value(((1 - R(s)) * e.ndc_a + R(s) * e.ndc_b + 1) * 0.5);  // q's window depth
  hit->q_deeper = deeper_than<R>(q_depth, tolerance);
  hit->dist2 = dist2;
  hit->s = s;
  return true;
}

// The layer's test of a covered sample at depth d_p of a candidate (hit): not deeper than q, with
// something deeper than q (at depth d_out) outside the edge.
GLSPLAT_HD inline bool glued_in_layer(double d_p, double d_out, const NearEdge& hit) {
  return d_p <= hit.q_deeper && d_out > hit.q_deeper;
}

// The sample's own test: is something in the (2 reach + 1)^2 window around (row, col) of its layer
// (depth at layer[i * zi + j * zj]) deeper than `than`? The frame's outside is background (depth 1),
// as the reference's padding. steps: the window's `count` offsets in the layer, any order (nearest
// first finds a deeper neighbor soonest: window_steps).
GLSPLAT_HD inline bool deeper_near(const float* layer, int64_t zi, int64_t zj, int64_t row, int64_t col,
                                   int64_t height, int64_t width, int64_t reach, const int64_t* steps, int64_t count,
                                   double than) {
  if (row < reach || col < reach || row + reach >= height || col + reach >= width) return 1.0 > than;
  const float* at = layer + row * zi + col * zj;
  for (int64_t k = 0; k < count; ++k)
    if (static_cast<double>(at[steps[k]]) > than) return true;
  return false;
}

// The offsets in a layer (strides zi, zj) of the (2 reach + 1)^2 window, nearest first (row by row
// among equals): (2 reach + 1)^2 of them into steps.
inline void window_steps(int64_t reach, int64_t zi, int64_t zj, int64_t* steps) {
  int64_t n = 0;
  for (int64_t d2 = 0; d2 <= 2 * reach * reach; ++d2)
    for (int64_t i = -reach; i <= reach; ++i)
      for (int64_t j = -reach; j <= reach; ++j)
        if (i * i + j * j == d2) steps[n++] = i * zi + j * zj;
}

// The perspective-correct parameter t of the point at image parameter s on the edge whose ends
// have clip w wa and wb: q = (1 - t) clip[a] + t clip[b].
template <typename R>
GLSPLAT_HD inline double perspective_t(double s, double wa, double wb) {
  return value(R(s) * wa / (R(s) * wa + (1 - R(s)) * wb));
}

}  // namespace glsplat
