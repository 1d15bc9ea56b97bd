// Convolution forward and backward: im2col + single-threaded cblas_sgemm per image chunk,
// images split over the thread pool. NHWC makes the im2col matrix times W^T the output rows
// directly; a 1x1 stride-1 convolution skips im2col altogether.
#include "ckernels.h"
#include "profile.h"
#include "scratch.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

int bs_conv_shape_init(bs_conv_shape *s) {
  if (s->N < 0 || s->H < 1 || s->W < 1 || s->Ci < 1 || s->Co < 1 || s->KH < 1 || s->KW < 1 ||
      s->stride < 1 || s->pad < 0)
    return -1;
  if (s->H + 2 * s->pad < s->KH || s->W + 2 * s->pad < s->KW) return -1;
  s->OH = (s->H + 2 * s->pad - s->KH) / s->stride + 1;
  s->OW = (s->W + 2 * s->pad - s->KW) / s->stride + 1;
  return 0;
}

static int is_pointwise(const bs_conv_shape *s) {
  return s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad == 0;
}

// Images per chunk: enough rows for an efficient sgemm, an im2col buffer that stays in L2.
static int chunk_images(const bs_conv_shape *s) {
  const size_t col_floats = (size_t)s->OH * s->OW * s->KH * s->KW * s->Ci;
  int g = (int)((128 * 1024) / (col_floats ? col_floats : 1));
  if (g < 1) g = 1;
  const int rows = s->OH * s->OW;
  while (g > 1 && (size_t)g * rows > 4096) g--;
  return g;
}

typedef struct {
  const bs_conv_shape *s;
  const float *x, *w, *bias, *dy;
  const float *w_flipped;   // [Ci][KH][KW][Co], for backward-data as a forward convolution
  float *y, *dw_partial, *db_partial, *dx;
} conv_ctx;

// A stride-1 "same" convolution's backward-data is itself a stride-1 "same" convolution of dy
// with the spatially flipped, channel-transposed kernel. Computing it that way reuses the
// forward path (im2col of dy, one sgemm with K = KH*KW*Co) instead of a K = Co sgemm into a
// big column buffer followed by a col2im scatter: fewer bytes moved, a better sgemm shape.
static int backward_data_as_forward(const bs_conv_shape *s) {
  return s->stride == 1 && s->KH == s->KW && s->pad == (s->KH - 1) / 2 && (s->KH % 2) == 1 &&
         !is_pointwise(s);
}

// w: [Co][KH][KW][Ci] -> wf: [Ci][KH][KW][Co] with wf[ci][ky][kx][co] = w[co][KH-1-ky][KW-1-kx][ci]
static void flip_kernel(const bs_conv_shape *s, const float *w, float *wf) {
  for (int co = 0; co < s->Co; co++)
    for (int ky = 0; ky < s->KH; ky++)
      for (int kx = 0; kx < s->KW; kx++)
        for (int ci = 0; ci < s->Ci; ci++)
          wf[(((size_t)ci * s->KH + (s->KH - 1 - ky)) * s->KW + (s->KW - 1 - kx)) * s->Co + co] =
              w[(((size_t)co * s->KH + ky) * s->KW + kx) * s->Ci + ci];
}

// y[n0:n1] = im2col(x[n0:n1]) * W^T (+ bias)
static void conv_forward_task(void *p, int t, int ntasks) {
  const conv_ctx *c = p;
  const bs_conv_shape *s = c->s;
  size_t n0, n1;
  bs_split((size_t)s->N, t, ntasks, &n0, &n1);
  const int K = s->KH * s->KW * s->Ci, rows = s->OH * s->OW, g = chunk_images(s);
  const size_t in_img = (size_t)s->H * s->W * s->Ci, out_img = (size_t)rows * s->Co;
  for (size_t n = n0; n < n1; n += g) {
    const int m = (int)((n + g <= n1) ? g : n1 - n);
    const float *a;
    if (is_pointwise(s)) {
      a = c->x + n * in_img;
    } else {
      float *col = bs_scratch(0, (size_t)m * rows * K);
      for (int i = 0; i < m; i++)
        bs_im2col(c->x + (n + i) * in_img, s->H, s->W, s->Ci, s->KH, s->KW, s->stride, s->pad,
                  col + (size_t)i * rows * K);
      a = col;
    }
    float *y = c->y + n * out_img;
    float beta = 0.0f;
    if (c->bias) {
      for (size_t r = 0; r < (size_t)m * rows; r++) memcpy(y + r * s->Co, c->bias, s->Co * 4);
      beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m * rows, s->Co, K, 1.0f, a, K, c->w,
                K, beta, y, s->Co);
  }
}

void bs_conv_forward(const bs_conv_shape *s, const float *x, const float *w, const float *bias,
                     float *y) {
  BS_PROF_BEGIN;
  conv_ctx c = {.s = s, .x = x, .w = w, .bias = bias, .y = y};
  int ntasks = bs_threads();
  if (ntasks > s->N) ntasks = s->N;
  bs_parallel_for(ntasks, conv_forward_task, &c);
  BS_PROF_END(BS_PROF_CONV_FWD);
}

// dW_t = sum over chunks dy^T * im2col(x);  dx = col2im(dy * W)
static void conv_backward_task(void *p, int t, int ntasks) {
  const conv_ctx *c = p;
  const bs_conv_shape *s = c->s;
  size_t n0, n1;
  bs_split((size_t)s->N, t, ntasks, &n0, &n1);
  const int K = s->KH * s->KW * s->Ci, rows = s->OH * s->OW, g = chunk_images(s);
  const size_t in_img = (size_t)s->H * s->W * s->Ci, out_img = (size_t)rows * s->Co;
  float *dw = c->dw_partial + (size_t)t * s->Co * K;
  memset(dw, 0, (size_t)s->Co * K * sizeof(float));
  if (c->db_partial) {
    float *db = c->db_partial + (size_t)t * s->Co;
    memset(db, 0, (size_t)s->Co * sizeof(float));
    for (size_t r = n0 * rows; r < n1 * rows; r++)
      for (int o = 0; o < s->Co; o++) db[o] += c->dy[r * s->Co + o];
  }
  for (size_t n = n0; n < n1; n += g) {
    const int m = (int)((n + g <= n1) ? g : n1 - n);
    const float *dy = c->dy + n * out_img;
    const float *a;
    if (is_pointwise(s)) {
      a = c->x + n * in_img;
    } else {
      float *col = bs_scratch(0, (size_t)m * rows * K);
      for (int i = 0; i < m; i++)
        bs_im2col(c->x + (n + i) * in_img, s->H, s->W, s->Ci, s->KH, s->KW, s->stride, s->pad,
                  col + (size_t)i * rows * K);
      a = col;
    }
    // dw [Co x K] += dy^T [Co x M] * col [M x K]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->Co, K, m * rows, 1.0f, dy, s->Co, a,
                K, 1.0f, dw, K);
    if (!c->dx) continue;
    float *dx = c->dx + n * in_img;
    if (is_pointwise(s)) {
      // dx [M x Ci] = dy [M x Co] * W [Co x Ci]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m * rows, K, s->Co, 1.0f, dy,
                  s->Co, c->w, K, 0.0f, dx, K);
    } else if (c->w_flipped) {
      // dx [M x Ci] = im2col(dy) [M x KH*KW*Co] * Wf^T [KH*KW*Co x Ci]
      const int Kt = s->KH * s->KW * s->Co;
      float *dcol = bs_scratch(1, (size_t)m * rows * Kt);
      for (int i = 0; i < m; i++)
        bs_im2col(dy + (size_t)i * out_img, s->OH, s->OW, s->Co, s->KH, s->KW, 1, s->pad,
                  dcol + (size_t)i * rows * Kt);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m * rows, s->Ci, Kt, 1.0f, dcol, Kt,
                  c->w_flipped, Kt, 0.0f, dx, s->Ci);
    } else {
      float *dcol = bs_scratch(1, (size_t)m * rows * K);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m * rows, K, s->Co, 1.0f, dy,
                  s->Co, c->w, K, 0.0f, dcol, K);
      memset(dx, 0, (size_t)m * in_img * sizeof(float));
      for (int i = 0; i < m; i++)
        bs_col2im(dcol + (size_t)i * rows * K, s->H, s->W, s->Ci, s->KH, s->KW, s->stride,
                  s->pad, dx + (size_t)i * in_img);
    }
  }
}

void bs_conv_backward(const bs_conv_shape *s, const float *x, const float *w, const float *dy,
                      float *dw, float *dbias, float *dx) {
  BS_PROF_BEGIN;
  const size_t K = (size_t)s->KH * s->KW * s->Ci;
  if (s->N == 0) {
    memset(dw, 0, (size_t)s->Co * K * sizeof(float));
    if (dbias) memset(dbias, 0, (size_t)s->Co * sizeof(float));
    BS_PROF_END(BS_PROF_CONV_BWD);
    return;
  }
  int ntasks = bs_threads();
  if (ntasks > s->N) ntasks = s->N;
  float *dw_partial = ntasks == 1 ? dw : malloc((size_t)ntasks * s->Co * K * sizeof(float));
  float *db_partial = !dbias ? NULL
                      : ntasks == 1 ? dbias
                                    : malloc((size_t)ntasks * s->Co * sizeof(float));
  float *w_flipped = NULL;
  if (dx && backward_data_as_forward(s)) {
    w_flipped = malloc((size_t)s->Co * K * sizeof(float));
    flip_kernel(s, w, w_flipped);
  }
  conv_ctx c = {.s = s, .x = x, .w = w, .dy = dy, .w_flipped = w_flipped,
                .dw_partial = dw_partial, .db_partial = db_partial, .dx = dx};
  bs_parallel_for(ntasks, conv_backward_task, &c);
  free(w_flipped);
  if (ntasks > 1) {   // reduce in task order: deterministic for a fixed thread count
    memcpy(dw, dw_partial, (size_t)s->Co * K * sizeof(float));
    for (int t = 1; t < ntasks; t++) bs_add(dw, dw_partial + (size_t)t * s->Co * K, s->Co * K, dw);
    free(dw_partial);
    if (dbias) {
      memcpy(dbias, db_partial, (size_t)s->Co * sizeof(float));
      for (int t = 1; t < ntasks; t++) bs_add(dbias, db_partial + (size_t)t * s->Co, s->Co, dbias);
      free(db_partial);
    }
  }
  BS_PROF_END(BS_PROF_CONV_BWD);
}
