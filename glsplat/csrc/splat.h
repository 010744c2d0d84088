// The splat (DESIGN.md steps 6-8) one item at a time, shared by the CPU (OpenMP loops in
// splat.cpp) and CUDA (one thread per item in splat_cuda.cu) kernels: every sample's 3x3
// Gaussian taps into the S+ / S0 / S- buffers, their normalisation and the back-to-front
// composite, and the matching backward pass.
//
// All passes are gathers, so no two items write to the same place: the forward pass works per
// target pixel and pulls from its 3x3 source neighbours; the backward pass first turns the image
// gradient into per-buffer gradients at every target pixel, then works per source sample and
// pulls the gradients of its 3x3 targets.
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

GLSPLAT_HD inline float exp_of(float x) { return expf(x); }
GLSPLAT_HD inline double exp_of(double x) { return exp(x); }

template <typename T>
struct Splat {
  int64_t B, K, H, W;
  const T* point;       // [B, K, H, W, 4] clip-space point of each sample (corners blended)
  const T* colors;      // [B, K, H, W, 4] straight RGBA
  const bool* mask;     // [B, K, H, W] covered
  const float* depth;   // [B, K, H, W] window depth, 1 on background
  T scale, inv_two_sigma2, inv_sigma2;
  T half_w, half_h;     // W / 2, H / 2

  GLSPLAT_HD int64_t sample(int64_t b, int64_t k, int64_t i, int64_t j) const { return ((b * K + k) * H + i) * W + j; }
  GLSPLAT_HD int64_t pixel(int64_t b, int64_t i, int64_t j) const { return (b * H + i) * W + j; }
  GLSPLAT_HD int64_t plane() const { return B * H * W * 4; }

  GLSPLAT_HD float z(int64_t b, int64_t k, int64_t i, int64_t j) const {
    if (i < 0 || i >= H || j < 0 || j >= W) return 1.0f;  // outside the image: background
    return depth[sample(b, k, i, j)];
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

  // Offset of sample n from its own pixel's centre (0 in value; the gradient path), in pixels,
  // with x = (ndc_x + 1) W / 2 and y = (1 - ndc_y) H / 2.
  GLSPLAT_HD void offset(int64_t n, int64_t i, int64_t j, T* ox, T* oy) const {
    const T* p = point + 4 * n;
    *ox = (p[0] / p[3] + T(1)) * half_w - (T(j) + T(0.5));
    *oy = (T(1) - p[1] / p[3]) * half_h - (T(i) + T(0.5));
  }

  // The Gaussian separates: tap (dy, dx) weighs gy[dy + 1] * gx[dx + 1] (scale folded into gy).
  GLSPLAT_HD void gaussians(T ox, T oy, T* gx, T* gy) const {
    for (int d = -1; d <= 1; ++d) {
      gx[d + 1] = exp_of(-(d - ox) * (d - ox) * inv_two_sigma2);
      gy[d + 1] = scale * exp_of(-(d - oy) * (d - oy) * inv_two_sigma2);
    }
  }

  // Forward, pass 1, sample n: its six separable tap weights, alpha folded in, into taps[6n..].
  GLSPLAT_HD void taps_of(int64_t n, T* taps) const {
    if (!mask[n]) return;  // never read
    const int64_t j = n % W, i = (n / W) % H;
    T ox, oy;
    offset(n, i, j, &ox, &oy);
    T* t = taps + 6 * n;
    gaussians(ox, oy, t, t + 3);
    const T alpha = colors[4 * n + 3];
    t[3] *= alpha; t[4] *= alpha; t[5] *= alpha;
  }

  // Forward, pass 2, target pixel q = (b, qi, qj): out = the composite of the normalised buffers
  // [B, H, W, 4]; buffers = normalised S+/S0/S- [3, B, H, W, 4]; weights = their unnormalised
  // weights [3, B, H, W] (for the backward pass).
  GLSPLAT_HD void forward_pixel(int64_t b, int64_t qi, int64_t qj, const T* taps, T* out, T* buffers,
                                T* weights) const {
    T acc[kBuffers][4] = {};
    for (int64_t pi = qi - 1; pi <= qi + 1; ++pi) {
      if (pi < 0 || pi >= H) continue;
      for (int64_t pj = qj - 1; pj <= qj + 1; ++pj) {
        if (pj < 0 || pj >= W || !mask[sample(b, 0, pi, pj)]) continue;
        const int64_t s = surface_layer(b, pi, pj, qi, qj);
        for (int64_t l = 0; l < K; ++l) {
          const int64_t n = sample(b, l, pi, pj);
          if (!mask[n]) break;  // layers are packed: nothing behind a background layer
          const T* t = taps + 6 * n;
          const T w = t[qj - pj + 1] * t[3 + qi - pi + 1];
          const T* c = colors + 4 * n;
          T* a = acc[buffer_of(s, l)];
          a[0] += w * c[0];
          a[1] += w * c[1];
          a[2] += w * c[2];
          a[3] += w;
        }
      }
    }
    const int64_t q = pixel(b, qi, qj);
    T composite[4] = {0, 0, 0, 0};
    for (int k = kBuffers - 1; k >= 0; --k) {  // back to front: S- under S0 under S+
      const T norm = acc[k][3] > T(1) ? acc[k][3] : T(1);
      T* buf = buffers + k * plane() + 4 * q;
      for (int c = 0; c < 4; ++c) buf[c] = acc[k][c] / norm;
      for (int c = 0; c < 4; ++c) composite[c] = buf[c] + (T(1) - buf[3]) * composite[c];
      weights[k * B * H * W + q] = acc[k][3];
    }
    for (int c = 0; c < 4; ++c) out[4 * q + c] = composite[c];
  }

  // Backward, pass 1, target pixel q: the gradient w.r.t. the unnormalised buffers, from the
  // gradients of the image and (optionally, null when absent) of the normalised buffers.
  GLSPLAT_HD void buffer_gradient(int64_t q, const T* grad_out, const T* grad_buffers, const T* buffers,
                                  const T* weights, T* grad_acc) const {
    const T* front = buffers + 4 * q;
    const T* surface = buffers + plane() + 4 * q;
    const T* back = buffers + 2 * plane() + 4 * q;
    // out = F + (1 - F.a) M,  M = S + (1 - S.a) Bk.
    T g[kBuffers][4], below_front[4];
    for (int c = 0; c < 4; ++c) below_front[c] = surface[c] + (T(1) - surface[3]) * back[c];
    T g_front_a = 0, g_surface_a = 0;
    for (int c = 0; c < 4; ++c) {
      const T gc = grad_out ? grad_out[4 * q + c] : T(0);
      const T g_below = (T(1) - front[3]) * gc;
      g[0][c] = gc;
      g[1][c] = g_below;
      g[2][c] = (T(1) - surface[3]) * g_below;
      g_front_a -= gc * below_front[c];
      g_surface_a -= g_below * back[c];
    }
    g[0][3] += g_front_a;
    g[1][3] += g_surface_a;
    for (int k = 0; k < kBuffers; ++k) {
      const T* buf = buffers + k * plane() + 4 * q;
      if (grad_buffers) {
        for (int c = 0; c < 4; ++c) g[k][c] += grad_buffers[k * plane() + 4 * q + c];
      }
      // buf = acc / max(acc.a, 1); torch's clamp passes the gradient at acc.a == 1 too.
      const T weight = weights[k * B * H * W + q];
      T* ga = grad_acc + k * plane() + 4 * q;
      if (weight >= T(1)) {
        T dot = 0;
        for (int c = 0; c < 4; ++c) dot += g[k][c] * buf[c];
        for (int c = 0; c < 4; ++c) ga[c] = g[k][c] / weight;
        ga[3] -= dot / weight;
      } else {
        for (int c = 0; c < 4; ++c) ga[c] = g[k][c];
      }
    }
  }

  // Backward, pass 2, source sample n: gradients w.r.t. its clip-space point and its colour.
  GLSPLAT_HD void backward_sample(int64_t n, const T* grad_acc, T* grad_point, T* grad_colors) const {
    if (!mask[n]) return;  // the outputs are zeroed
    const int64_t pj = n % W, pi = (n / W) % H, l = (n / (W * H)) % K, b = n / (W * H * K);
    const T* c = colors + 4 * n;
    T ox, oy, gx[3], gy[3];
    offset(n, pi, pj, &ox, &oy);
    gaussians(ox, oy, gx, gy);
    T g_pos_x = 0, g_pos_y = 0, g_rgb[3] = {0, 0, 0}, g_alpha = 0;
    for (int64_t qi = pi - 1; qi <= pi + 1; ++qi) {
      if (qi < 0 || qi >= H) continue;
      for (int64_t qj = pj - 1; qj <= pj + 1; ++qj) {
        if (qj < 0 || qj >= W) continue;
        const int64_t s = surface_layer(b, pi, pj, qi, qj);
        const T* g = grad_acc + buffer_of(s, l) * plane() + 4 * pixel(b, qi, qj);
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
    // Through the perspective divide to the blended clip-space point.
    const T* p = point + 4 * n;
    const T inv_w = T(1) / p[3];
    T* gp = grad_point + 4 * n;
    gp[0] = g_pos_x * half_w * inv_w;
    gp[1] = -g_pos_y * half_h * inv_w;
    gp[3] = (-g_pos_x * half_w * p[0] + g_pos_y * half_h * p[1]) * inv_w * inv_w;
    T* gc = grad_colors + 4 * n;
    gc[0] = g_rgb[0];
    gc[1] = g_rgb[1];
    gc[2] = g_rgb[2];
    gc[3] = g_alpha;
  }
};

}  // namespace glsplat
