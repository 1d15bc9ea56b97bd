// Per-channel kernels behind batch norm, AVX2/FMA. x is [rows][C] (NHWC flattened): a vector
// holds 8 consecutive channels of one row, so per-channel coefficients are plain vector loads
// and per-channel sums are vector accumulators; only C % 8 needs care (masked loads for the
// reductions, a scalar remainder for the kernels that store).
//
// Reductions accumulate in float over blocks of at most BS_SUM_BLOCK rows and then add the
// block's partial sums into the caller's doubles. Error bound, per channel: a block's float
// sum of m <= 64 terms t_i (one chain of <= 64, or two interleaved chains of <= 32 and one
// add) is within gamma_63 * sum|t_i| of the exact sum (gamma_k = k*u/(1-k*u), u = 2^-24), the
// products being rounded once inside the FMA; bn_backward_sums also rounds x - mean once (+u
// relative per term). Adding the blocks in double costs ~2^-53 more each. So against the exact
// result:
//   |error| <= 66 * 2^-24 * sum_r |t_r|   (~3.9e-6 relative to the sum of magnitudes),
// where t_r = x (sum), x^2 (sumsq), dy (sum_dy), dy*(x-mean) (sum_dy_xc). The reference is
// exact to double rounding; the tests allow 70 * 2^-24 * sum|t|.
// Everything else is bit-identical to the reference except the FMA's single rounding.
#include "ckernels.h"
#include "simd_avx2.h"

#define BS_SUM_BLOCK 64

// Loads lane group v of NV; the last one is masked when the chunk has a channel tail.
#define BS_LOAD_V(p, v) ((TAIL && (v) == NV - 1) ? _mm256_maskload_ps((p), mask) : _mm256_loadu_ps(p))

// One chunk of up to 32 channels (NV = 1, 2 or 4 vectors; the last one has `nlast` valid
// lanes and is masked when TAIL) over the nr rows of one block. NV = 4 gives eight independent
// add/FMA chains; with NV <= 2 rows are taken in pairs with two sets of accumulators, as four
// or fewer chains cannot hide the FMA latency. Chunks of 32 rather than 16 matter for C >= 64:
// a row block is then swept in C/32 passes of two cache lines per row instead of C/16 passes
// of one, which streams from memory about twice as fast.
BS_AVX2_INLINE void sums_chunk(const float *x, size_t nr, size_t C, const int NV, const int TAIL,
                               __m256i mask, int nlast, double *sum, double *sumsq) {
  const int PAIRS = NV <= 2;
  __m256 s0[4], q0[4], s1[4], q1[4];
  for (int v = 0; v < NV; v++) s0[v] = q0[v] = s1[v] = q1[v] = _mm256_setzero_ps();
  size_t r = 0;
  for (; PAIRS && r + 2 <= nr; r += 2) {
    const float *p = x + r * C;
    for (int v = 0; v < NV; v++) {
      const __m256 a = BS_LOAD_V(p + 8 * v, v), b = BS_LOAD_V(p + C + 8 * v, v);
      s0[v] = _mm256_add_ps(s0[v], a);
      q0[v] = _mm256_fmadd_ps(a, a, q0[v]);
      s1[v] = _mm256_add_ps(s1[v], b);
      q1[v] = _mm256_fmadd_ps(b, b, q1[v]);
    }
  }
  for (; r < nr; r++)
    for (int v = 0; v < NV; v++) {
      const __m256 a = BS_LOAD_V(x + r * C + 8 * v, v);
      s0[v] = _mm256_add_ps(s0[v], a);
      q0[v] = _mm256_fmadd_ps(a, a, q0[v]);
    }
  for (int v = 0; v < NV; v++) {
    const __m256 s = PAIRS ? _mm256_add_ps(s0[v], s1[v]) : s0[v];
    const __m256 q = PAIRS ? _mm256_add_ps(q0[v], q1[v]) : q0[v];
    if (TAIL && v == NV - 1) {
      bs_avx2_add_to_doubles_n(sum + 8 * v, s, nlast);
      bs_avx2_add_to_doubles_n(sumsq + 8 * v, q, nlast);
    } else {
      bs_avx2_add_to_doubles(sum + 8 * v, s);
      bs_avx2_add_to_doubles(sumsq + 8 * v, q);
    }
  }
}

// x: [rows][C] -> sum[c] += sum_r x, sumsq[c] += sum_r x^2 (double accumulation of float
// partial sums over blocks of <= 64 rows; error bound at the top of the file)
BS_AVX2 void bs_channel_sums_avx2(const float *x, size_t rows, int C, double *sum,
                                  double *sumsq) {
  const size_t Cs = (size_t)C;
  const __m256i all = _mm256_set1_epi32(-1);
  // Row blocks outside, channel chunks inside: a block (64 rows, 16 KiB at C = 64) stays in L1
  // while every chunk of it is summed, so odd C never re-reads memory.
  for (size_t r0 = 0; r0 < rows; r0 += BS_SUM_BLOCK) {
    const size_t nr = rows - r0 < BS_SUM_BLOCK ? rows - r0 : BS_SUM_BLOCK;
    const float *xb = x + r0 * Cs;
    int c = 0;
    for (; c + 32 <= C; c += 32) sums_chunk(xb + c, nr, Cs, 4, 0, all, 8, sum + c, sumsq + c);
    if (c + 16 <= C) {
      sums_chunk(xb + c, nr, Cs, 2, 0, all, 8, sum + c, sumsq + c);
      c += 16;
    }
    const int rem = C - c;
    if (rem > 8)
      sums_chunk(xb + c, nr, Cs, 2, 1, bs_avx2_tail_mask(rem - 8), rem - 8, sum + c, sumsq + c);
    else if (rem == 8)
      sums_chunk(xb + c, nr, Cs, 1, 0, all, 8, sum + c, sumsq + c);
    else if (rem > 0)
      sums_chunk(xb + c, nr, Cs, 1, 1, bs_avx2_tail_mask(rem), rem, sum + c, sumsq + c);
  }
}

// As sums_chunk, for dy and dy*(x - mean): the centred product is formed in float (x - mean is
// exact when x is within a factor of 2 of mean, else rounded once).
BS_AVX2_INLINE void bwd_sums_chunk(const float *dy, const float *x, size_t nr, size_t C,
                                   const int NV, const int TAIL, __m256i mask, int nlast,
                                   const float *mean, double *sum_dy, double *sum_dy_xc) {
  const int PAIRS = NV <= 2;
  __m256 m[4], s0[4], q0[4], s1[4], q1[4];
  for (int v = 0; v < NV; v++) {
    m[v] = BS_LOAD_V(mean + 8 * v, v);
    s0[v] = q0[v] = s1[v] = q1[v] = _mm256_setzero_ps();
  }
  size_t r = 0;
  for (; PAIRS && r + 2 <= nr; r += 2) {
    const float *g = dy + r * C, *p = x + r * C;
    for (int v = 0; v < NV; v++) {
      const __m256 ga = BS_LOAD_V(g + 8 * v, v), gb = BS_LOAD_V(g + C + 8 * v, v);
      const __m256 xa = _mm256_sub_ps(BS_LOAD_V(p + 8 * v, v), m[v]);
      const __m256 xb = _mm256_sub_ps(BS_LOAD_V(p + C + 8 * v, v), m[v]);
      s0[v] = _mm256_add_ps(s0[v], ga);
      q0[v] = _mm256_fmadd_ps(ga, xa, q0[v]);
      s1[v] = _mm256_add_ps(s1[v], gb);
      q1[v] = _mm256_fmadd_ps(gb, xb, q1[v]);
    }
  }
  for (; r < nr; r++)
    for (int v = 0; v < NV; v++) {
      const __m256 ga = BS_LOAD_V(dy + r * C + 8 * v, v);
      const __m256 xa = _mm256_sub_ps(BS_LOAD_V(x + r * C + 8 * v, v), m[v]);
      s0[v] = _mm256_add_ps(s0[v], ga);
      q0[v] = _mm256_fmadd_ps(ga, xa, q0[v]);
    }
  for (int v = 0; v < NV; v++) {
    const __m256 s = PAIRS ? _mm256_add_ps(s0[v], s1[v]) : s0[v];
    const __m256 q = PAIRS ? _mm256_add_ps(q0[v], q1[v]) : q0[v];
    if (TAIL && v == NV - 1) {
      bs_avx2_add_to_doubles_n(sum_dy + 8 * v, s, nlast);
      bs_avx2_add_to_doubles_n(sum_dy_xc + 8 * v, q, nlast);
    } else {
      bs_avx2_add_to_doubles(sum_dy + 8 * v, s);
      bs_avx2_add_to_doubles(sum_dy_xc + 8 * v, q);
    }
  }
}

// dy, x: [rows][C] -> sum_dy[c] += sum dy, sum_dy_xc[c] += sum dy*(x-mean[c])
// (float partial sums over blocks of <= 64 rows; error bound at the top of the file)
BS_AVX2 void bs_bn_backward_sums_avx2(const float *dy, const float *x, size_t rows, int C,
                                      const float *mean, double *sum_dy, double *sum_dy_xc) {
  const size_t Cs = (size_t)C;
  const __m256i all = _mm256_set1_epi32(-1);
  for (size_t r0 = 0; r0 < rows; r0 += BS_SUM_BLOCK) {
    const size_t nr = rows - r0 < BS_SUM_BLOCK ? rows - r0 : BS_SUM_BLOCK;
    const float *gb = dy + r0 * Cs, *xb = x + r0 * Cs;
    int c = 0;
    for (; c + 32 <= C; c += 32)
      bwd_sums_chunk(gb + c, xb + c, nr, Cs, 4, 0, all, 8, mean + c, sum_dy + c, sum_dy_xc + c);
    if (c + 16 <= C) {
      bwd_sums_chunk(gb + c, xb + c, nr, Cs, 2, 0, all, 8, mean + c, sum_dy + c, sum_dy_xc + c);
      c += 16;
    }
    const int rem = C - c;
    if (rem > 8)
      bwd_sums_chunk(gb + c, xb + c, nr, Cs, 2, 1, bs_avx2_tail_mask(rem - 8), rem - 8, mean + c,
                     sum_dy + c, sum_dy_xc + c);
    else if (rem == 8)
      bwd_sums_chunk(gb + c, xb + c, nr, Cs, 1, 0, all, 8, mean + c, sum_dy + c, sum_dy_xc + c);
    else if (rem > 0)
      bwd_sums_chunk(gb + c, xb + c, nr, Cs, 1, 1, bs_avx2_tail_mask(rem), rem, mean + c,
                     sum_dy + c, sum_dy_xc + c);
  }
}
#undef BS_LOAD_V

// C == 8*NV (8..32): the coefficients live in registers for the whole pass, leaving one load,
// one FMA and one store per vector.
BS_AVX2_INLINE void scale_shift_regs(const float *x, size_t rows, const int NV,
                                     const float *scale, const float *shift, const int RELU,
                                     float *y) {
  __m256 sc[4], sh[4];
  for (int v = 0; v < NV; v++) {
    sc[v] = _mm256_loadu_ps(scale + 8 * v);
    sh[v] = _mm256_loadu_ps(shift + 8 * v);
  }
  const __m256 z = _mm256_setzero_ps();
  for (size_t r = 0; r < rows; r++, x += 8 * NV, y += 8 * NV)
    for (int v = 0; v < NV; v++) {
      __m256 t = _mm256_fmadd_ps(sc[v], _mm256_loadu_ps(x + 8 * v), sh[v]);
      if (RELU) t = _mm256_max_ps(t, z);   // NaN -> 0, like the reference's !(v > 0)
      _mm256_storeu_ps(y + 8 * v, t);
    }
}

// Any C: vectors over the whole groups of 8 channels (coefficients reloaded from L1), then a
// scalar remainder per row.
BS_AVX2_INLINE void scale_shift_any(const float *x, size_t rows, int C, const float *scale,
                                    const float *shift, const int RELU, float *y) {
  const __m256 z = _mm256_setzero_ps();
  for (size_t r = 0; r < rows; r++) {
    const float *xr = x + r * (size_t)C;
    float *yr = y + r * (size_t)C;
    int c = 0;
    for (; c + 8 <= C; c += 8) {
      __m256 t = _mm256_fmadd_ps(_mm256_loadu_ps(scale + c), _mm256_loadu_ps(xr + c),
                                 _mm256_loadu_ps(shift + c));
      if (RELU) t = _mm256_max_ps(t, z);
      _mm256_storeu_ps(yr + c, t);
    }
    for (; c < C; c++) {
      float v = scale[c] * xr[c] + shift[c];
      if (RELU && !(v > 0.0f)) v = 0.0f;
      yr[c] = v;
    }
  }
}

// x: [rows][C] -> y = scale[c]*x + shift[c], optional ReLU; y may alias x
BS_AVX2 void bs_scale_shift_avx2(const float *x, size_t rows, int C, const float *scale,
                                 const float *shift, int relu, float *y) {
  switch (relu ? C : -C) {   // dispatch on (C, relu) to the specialised loops
  case 8: scale_shift_regs(x, rows, 1, scale, shift, 1, y); break;
  case 16: scale_shift_regs(x, rows, 2, scale, shift, 1, y); break;
  case 24: scale_shift_regs(x, rows, 3, scale, shift, 1, y); break;
  case 32: scale_shift_regs(x, rows, 4, scale, shift, 1, y); break;
  case -8: scale_shift_regs(x, rows, 1, scale, shift, 0, y); break;
  case -16: scale_shift_regs(x, rows, 2, scale, shift, 0, y); break;
  case -24: scale_shift_regs(x, rows, 3, scale, shift, 0, y); break;
  case -32: scale_shift_regs(x, rows, 4, scale, shift, 0, y); break;
  default:
    if (relu)
      scale_shift_any(x, rows, C, scale, shift, 1, y);
    else
      scale_shift_any(x, rows, C, scale, shift, 0, y);
  }
}

// C == 8*NV (8..32): k1, k2, k3 in registers (12 of the 16 ymm at NV = 4).
BS_AVX2_INLINE void axpby_regs(const float *dy, const float *x, size_t rows, const int NV,
                               const float *k1, const float *k2, const float *k3, float *dx) {
  __m256 a[4], b[4], k[4];
  for (int v = 0; v < NV; v++) {
    a[v] = _mm256_loadu_ps(k1 + 8 * v);
    b[v] = _mm256_loadu_ps(k2 + 8 * v);
    k[v] = _mm256_loadu_ps(k3 + 8 * v);
  }
  for (size_t r = 0; r < rows; r++, dy += 8 * NV, x += 8 * NV, dx += 8 * NV)
    for (int v = 0; v < NV; v++) {
      const __m256 t = _mm256_fmadd_ps(b[v], _mm256_loadu_ps(x + 8 * v), k[v]);
      _mm256_storeu_ps(dx + 8 * v, _mm256_fmadd_ps(a[v], _mm256_loadu_ps(dy + 8 * v), t));
    }
}

// dy, x: [rows][C] -> dx = k1[c]*dy + k2[c]*x + k3[c]; dx may alias dy.
// Computed as fma(k1, dy, fma(k2, x, k3)): two roundings instead of the reference's four.
BS_AVX2 void bs_channel_axpby_avx2(const float *dy, const float *x, size_t rows, int C,
                                   const float *k1, const float *k2, const float *k3,
                                   float *dx) {
  switch (C) {
  case 8: axpby_regs(dy, x, rows, 1, k1, k2, k3, dx); return;
  case 16: axpby_regs(dy, x, rows, 2, k1, k2, k3, dx); return;
  case 24: axpby_regs(dy, x, rows, 3, k1, k2, k3, dx); return;
  case 32: axpby_regs(dy, x, rows, 4, k1, k2, k3, dx); return;
  }
  for (size_t r = 0; r < rows; r++) {
    const float *gr = dy + r * (size_t)C, *xr = x + r * (size_t)C;
    float *dr = dx + r * (size_t)C;
    int c = 0;
    for (; c + 8 <= C; c += 8) {
      const __m256 t = _mm256_fmadd_ps(_mm256_loadu_ps(k2 + c), _mm256_loadu_ps(xr + c),
                                       _mm256_loadu_ps(k3 + c));
      _mm256_storeu_ps(dr + c, _mm256_fmadd_ps(_mm256_loadu_ps(k1 + c), _mm256_loadu_ps(gr + c), t));
    }
    for (; c < C; c++) dr[c] = k1[c] * gr[c] + k2[c] * xr[c] + k3[c];
  }
}
