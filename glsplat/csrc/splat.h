// The splat (DESIGN.md steps 6-8) one item at a time, shared by the CPU (row bands in
// splat.cpp) and CUDA (one thread per item in splat_cuda.cu) kernels: a sample's 3x3 Gaussian
// taps, their accumulation at a target pixel into the S+ / S0 / S- buffers, the normalisation
// and back-to-front composite, and the matching backward steps.
//
// All passes are gathers, so no two items write to the same place: the forward pass works per
// target pixel and pulls the taps of its 3x3 source neighbours; the backward pass turns the
// image gradient into per-buffer gradients at every target pixel, then works per source sample
// and pulls the gradients of its 3x3 targets. Where the taps and those gradients are kept
// (a table, a ring of rows) is the caller's choice, reached through small accessor objects.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define GLSPLAT_HD __host__ __device__
#else
#define GLSPLAT_HD
#endif

namespace glsplat {

constexpr int kBuffers = 3;  // S+, S0, S-
constexpr int kTaps = 6;     // a sample's separable tap weights: gx[3], then gy[3] with alpha and scale
constexpr int kTapValues = kTaps + 3;  // what the forward gather reads of a sample: its taps, then its r, g, b

GLSPLAT_HD inline float exp_of(float x) { return expf(x); }
GLSPLAT_HD inline double exp_of(double x) { return exp(x); }

template <typename T>
struct Splat {
  int64_t B, K, H, W;
  const int32_t* tri_id;  // [B, K, H, W] face + 1, 0 on background
  const float* depth;     // window depth of sample n at depth[n * depth_stride], 1 on background
  int64_t depth_stride;   // 1 for a contiguous tensor, 4 for a view into the G-buffer
  T scale, inv_two_sigma2, inv_sigma2;
  T tail;                 // exp(-1 / (2 sigma^2)): a tap one pixel away, relative to the centre
  T half_w, half_h;       // W / 2, H / 2

  GLSPLAT_HD int64_t sample(int64_t b, int64_t k, int64_t i, int64_t j) const { return ((b * K + k) * H + i) * W + j; }
  GLSPLAT_HD int64_t pixel(int64_t b, int64_t i, int64_t j) const { return (b * H + i) * W + j; }
  GLSPLAT_HD int64_t plane() const { return B * H * W * 4; }
  GLSPLAT_HD bool covered(int64_t n) const { return tri_id[n] > 0; }

  GLSPLAT_HD float z(int64_t b, int64_t k, int64_t i, int64_t j) const {
    if (i < 0 || i >= H || j < 0 || j >= W) return 1.0f;  // outside the image: background
    return depth[sample(b, k, i, j) * depth_stride];
  }

  // The layer of source pixel p = (pi, pj) that lies on the surface seen at target q = (qi, qj);
  // sample layer l goes to S+ (0) if s > l, S0 (1) if s == l, S- (2) if s < l.
  GLSPLAT_HD int64_t surface_layer(int64_t b, int64_t pi, int64_t pj, int64_t qi, int64_t qj) const {
    if (K == 1) return 0;  // one layer: every tap lands on the surface (S0)
    const float zp0 = z(b, 0, pi, pj), zq0 = z(b, 0, qi, qj);
    int64_t a = 0, bl = 0;
    float da = INFINITY, db = INFINITY;
    for (int64_t l = 0; l < K; ++l) {
      const float dpa = fabsf(z(b, l, pi, pj) - zq0);
      if (dpa < da) { da = dpa; a = l; }
      const float dqb = fabsf(z(b, l, qi, qj) - zp0);
      if (dqb < db) { db = dqb; bl = l; }
    }
    return db < da ? -bl : a;
  }

  GLSPLAT_HD static int buffer_of(int64_t s, int64_t l) { return s > l ? 0 : (s == l ? 1 : 2); }

  // Offset of a sample at pixel (i, j) with clip-space point p from that pixel's centre (0 in
  // value; the gradient path), in pixels, with x = (ndc_x + 1) W / 2 and y = (1 - ndc_y) H / 2.
  GLSPLAT_HD void offset(const T* p, int64_t i, int64_t j, T* ox, T* oy) const {
    *ox = (p[0] / p[3] + T(1)) * half_w - (T(j) + T(0.5));
    *oy = (T(1) - p[1] / p[3]) * half_h - (T(i) + T(0.5));
  }

  // The Gaussian separates: tap (dy, dx) weighs gy[dy + 1] * gx[dx + 1] (scale folded into gy).
  // With k = 1 / (2 sigma^2), exp(-(d - o)^2 k) = exp(-o^2 k) exp(-k) exp(2 d o k) for d = -1, 0, 1:
  // two exponentials per axis instead of three.
  GLSPLAT_HD void gaussians(T ox, T oy, T* gx, T* gy) const {
    axis(ox, T(1), gx);
    axis(oy, scale, gy);
  }
  GLSPLAT_HD void axis(T o, T factor, T* g) const {
    const T centre = factor * exp_of(-o * o * inv_two_sigma2), side = centre * tail,
            shift = exp_of(T(2) * o * inv_two_sigma2);
    g[0] = side / shift;
    g[1] = centre;
    g[2] = side * shift;
  }

  // The kTaps weights of a covered sample at (i, j) with point p, its alpha folded into gy.
  GLSPLAT_HD void taps(const T* p, int64_t i, int64_t j, T alpha, T* t) const {
    T ox, oy;
    offset(p, i, j, &ox, &oy);
    gaussians(ox, oy, t, t + 3);
    t[3] *= alpha; t[4] *= alpha; t[5] *= alpha;
  }

  // Forward at target pixel q = (b, qi, qj): the unnormalised S+/S0/S- sums acc. `taps_at(n, l,
  // pi, pj)` gives the kTapValues of covered sample n (layer l of source pixel (pi, pj)).
  template <typename Taps>
  GLSPLAT_HD void accumulate(int64_t b, int64_t qi, int64_t qj, const Taps& taps_at, T acc[kBuffers][4]) const {
    for (int k = 0; k < kBuffers; ++k) acc[k][0] = acc[k][1] = acc[k][2] = acc[k][3] = T(0);
    for (int64_t pi = qi - 1; pi <= qi + 1; ++pi) {
      if (pi < 0 || pi >= H) continue;
      for (int64_t pj = qj - 1; pj <= qj + 1; ++pj) {
        if (pj < 0 || pj >= W || !covered(sample(b, 0, pi, pj))) continue;
        const int64_t s = surface_layer(b, pi, pj, qi, qj);
        for (int64_t l = 0; l < K; ++l) {
          const int64_t n = sample(b, l, pi, pj);
          if (!covered(n)) break;  // layers are packed: nothing behind a background layer
          const T* t = taps_at(n, l, pi, pj);
          const T w = t[qj - pj + 1] * t[3 + qi - pi + 1];
          const T* c = t + kTaps;
          T* a = acc[buffer_of(s, l)];
          a[0] += w * c[0];
          a[1] += w * c[1];
          a[2] += w * c[2];
          a[3] += w;
        }
      }
    }
  }

  // Normalise each buffer by max(weight, 1) into buf and composite back to front (S- under S0
  // under S+) into out.
  GLSPLAT_HD static void resolve(const T acc[kBuffers][4], T buf[kBuffers][4], T out[4]) {
    for (int c = 0; c < 4; ++c) out[c] = T(0);
    for (int k = kBuffers - 1; k >= 0; --k) {
      const T norm = acc[k][3] > T(1) ? acc[k][3] : T(1);
      for (int c = 0; c < 4; ++c) buf[k][c] = acc[k][c] / norm;
      for (int c = 0; c < 4; ++c) out[c] = buf[k][c] + (T(1) - buf[k][3]) * out[c];
    }
  }

  // Backward at a target pixel: the gradient ga w.r.t. the unnormalised sums, given the
  // normalised buffers buf, their weights, the image gradient g_out[4] and the buffers'
  // gradients g_buf[k * buf_stride + c]; either gradient may be null (absent).
  GLSPLAT_HD static void acc_gradient(const T buf[kBuffers][4], const T weight[kBuffers], const T* g_out,
                                      const T* g_buf, int64_t buf_stride, T ga[kBuffers][4]) {
    const T* front = buf[0];
    const T* surface = buf[1];
    const T* back = buf[2];
    // out = F + (1 - F.a) M,  M = S + (1 - S.a) Bk.
    T g[kBuffers][4];
    T g_front_a = 0, g_surface_a = 0;
    for (int c = 0; c < 4; ++c) {
      const T gc = g_out ? g_out[c] : T(0);
      const T g_below = (T(1) - front[3]) * gc;
      g[0][c] = gc;
      g[1][c] = g_below;
      g[2][c] = (T(1) - surface[3]) * g_below;
      g_front_a -= gc * (surface[c] + (T(1) - surface[3]) * back[c]);
      g_surface_a -= g_below * back[c];
    }
    g[0][3] += g_front_a;
    g[1][3] += g_surface_a;
    for (int k = 0; k < kBuffers; ++k) {
      if (g_buf) {
        for (int c = 0; c < 4; ++c) g[k][c] += g_buf[k * buf_stride + c];
      }
      // buf = acc / max(acc.a, 1); torch's clamp passes the gradient at acc.a == 1 too.
      if (weight[k] >= T(1)) {
        T dot = 0;
        for (int c = 0; c < 4; ++c) dot += g[k][c] * buf[k][c];
        for (int c = 0; c < 4; ++c) ga[k][c] = g[k][c] / weight[k];
        ga[k][3] -= dot / weight[k];
      } else {
        for (int c = 0; c < 4; ++c) ga[k][c] = g[k][c];
      }
    }
  }

  // Backward for a covered source sample (layer l of pixel (b, pi, pj)) with clip-space point p
  // and straight RGBA c: the gradients gp w.r.t. p and gc w.r.t. c. `grad_at(k, qi, qj)` gives
  // the gradient w.r.t. buffer k's unnormalised sums at target (qi, qj) of the same image.
  template <typename GradAt>
  GLSPLAT_HD void backward_sample(int64_t b, int64_t l, int64_t pi, int64_t pj, const T* p, const T* c,
                                  const GradAt& grad_at, T gp[4], T gc[4]) const {
    T ox, oy, gx[3], gy[3];
    offset(p, pi, pj, &ox, &oy);
    gaussians(ox, oy, gx, gy);
    T g_pos_x = 0, g_pos_y = 0, g_rgb[3] = {0, 0, 0}, g_alpha = 0;
    for (int64_t qi = pi - 1; qi <= pi + 1; ++qi) {
      if (qi < 0 || qi >= H) continue;
      for (int64_t qj = pj - 1; qj <= pj + 1; ++qj) {
        if (qj < 0 || qj >= W) continue;
        const T* g = grad_at(buffer_of(surface_layer(b, pi, pj, qi, qj), l), qi, qj);
        const T gauss = gx[qj - pj + 1] * gy[qi - pi + 1];
        // d(loss)/d(tap weight w), where the tap adds w * (r, g, b, 1) and w = gauss * alpha
        const T g_w = g[0] * c[0] + g[1] * c[1] + g[2] * c[2] + g[3];
        g_alpha += gauss * g_w;
        const T w = gauss * c[3];
        g_rgb[0] += w * g[0];
        g_rgb[1] += w * g[1];
        g_rgb[2] += w * g[2];
        // d(gauss)/d(pos) = gauss * (centre - pos) / sigma^2, centre - pos = (d - offset)
        const T g_offset = w * g_w * inv_sigma2;
        g_pos_x += g_offset * (T(qj - pj) - ox);
        g_pos_y += g_offset * (T(qi - pi) - oy);
      }
    }
    // Through the perspective divide to the clip-space point.
    const T inv_w = T(1) / p[3];
    gp[0] = g_pos_x * half_w * inv_w;
    gp[1] = -g_pos_y * half_h * inv_w;
    gp[2] = T(0);
    gp[3] = (-g_pos_x * half_w * p[0] + g_pos_y * half_h * p[1]) * inv_w * inv_w;
    gc[0] = g_rgb[0];
    gc[1] = g_rgb[1];
    gc[2] = g_rgb[2];
    gc[3] = g_alpha;
  }
};

}  // namespace glsplat
