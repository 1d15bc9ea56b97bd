// Convolution forward and backward: im2col + single-threaded cblas_sgemm per image chunk,
// images split over the thread pool. NHWC makes the im2col matrix times W^T the output rows
// directly; a 1x1 stride-1 convolution skips im2col altogether. With the DIRECT algorithm
// (or AUTO where it wins), 3x3 pad-1 convolutions instead run their forward pass, their
// weight gradient and, for stride 1, their backward-data pass through the bs_conv3x3_direct
// and bs_conv3x3_direct_dw micro-kernels one image at a time (no im2col buffer, no sgemm
// packing).
//
// With the WINOGRAD algorithm (or AUTO where it wins), 3x3 pad-1 stride-1 convolutions run all
// three passes through conv_winograd.c instead.
//
// AUTO's choices are explained at auto_direct and auto_winograd below; the measurements behind
// them are in docs/PERFORMANCE.md, "Direct convolution thresholds" and "Winograd thresholds".
#include "context_internal.h"
#include "conv_winograd.h"
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bs_status bs_conv_shape_init(bs_conv_shape *s) {
  if (s->N < 0 || s->H < 1 || s->W < 1 || s->Ci < 1 || s->Co < 1 || s->KH < 1 || s->KW < 1 ||
      s->stride < 1 || s->pad < 0)
    return BS_ERR_INVALID;
  if (s->H + 2 * s->pad < s->KH || s->W + 2 * s->pad < s->KW) return BS_ERR_INVALID;
  s->OH = (s->H + 2 * s->pad - s->KH) / s->stride + 1;
  s->OW = (s->W + 2 * s->pad - s->KW) / s->stride + 1;
  return BS_OK;
}

static int is_pointwise(const bs_conv_shape *s) {
  return s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad == 0;
}

// ---------------------------------------------------------------------------------------------
// Algorithm selection
// ---------------------------------------------------------------------------------------------
static int default_algorithm = BS_CONV_AUTO;
static pthread_once_t algorithm_once = PTHREAD_ONCE_INIT;

const char *bs_conv_algorithm_name(int algorithm) {
  switch (algorithm) {
  case BS_CONV_AUTO: return "auto";
  case BS_CONV_GEMM: return "gemm";
  case BS_CONV_DIRECT: return "direct";
  case BS_CONV_WINOGRAD: return "winograd";
  default: return "?";
  }
}

static void read_algorithm_env(void) {
  const char *env = getenv("BLOCKSCOPE_CONV");
  if (!env || !*env) return;
  for (int a = 0; a < BS_CONV_ALGORITHM_COUNT; a++)
    if (strcmp(env, bs_conv_algorithm_name(a)) == 0) {
      default_algorithm = a;
      return;
    }
  fprintf(stderr, "blockscope: BLOCKSCOPE_CONV=%s is not one of auto, gemm, direct, winograd; using auto\n",
          env);
}

int bs_default_conv_algorithm(void) {
  pthread_once(&algorithm_once, read_algorithm_env);
  return default_algorithm;
}

// The shapes bs_conv3x3_direct implements.
static int is_direct_shape(const bs_conv_shape *s) {
  return s->KH == 3 && s->KW == 3 && s->pad == 1 && (s->stride == 1 || s->stride == 2);
}


// AUTO's choice: direct where bs_conv3x3_direct(_dw) measured faster than im2col + sgemm
// (docs/PERFORMANCE.md, "Direct convolution thresholds"). The scalar REF kernels keep sgemm.
//
// AVX2 (per-layer timings): forward and backward-data won on every shape measured. The weight
// gradient won or broke even everywhere except where Co >= 128 and consecutive output pixels'
// input windows are 512 bytes or more apart (stride * Ci >= 128 floats), so that a chunk of
// pixels maps to a few L1 sets; those keep sgemm.
//
// AVX-512 (timed inside whole networks, direct for the 3x3 convolutions whose Ci lies in a
// range): Ci = 3, 16 and 32 win clearly, 64 breaks even, 128 loses, so direct for Ci <= 64.
// One layer timed alone in a loop favours sgemm from Ci = 32 up, likely because such a loop
// finds its operands in cache, which a network's sequence of layers does not. The network is
// what runs.
static int auto_direct(const bs_context *ctx, const bs_conv_shape *s, int pass) {
  switch (ctx->isa) {
  case BS_ISA_AVX2: return pass != BS_CONV_PASS_WEIGHTS || s->stride * s->Ci < 128 || s->Co < 128;
  case BS_ISA_AVX512: return s->Ci <= 64;
  default: return 0;
  }
}

// Whether `pass` of convolution s runs through bs_conv3x3_direct(_dw).
static int use_direct(const bs_context *ctx, const bs_conv_shape *s, int pass) {
  if (!is_direct_shape(s)) return 0;
  if (pass == BS_CONV_PASS_DATA && s->stride != 1) return 0;   // col2im path stays
  switch (ctx->conv_algorithm) {
  case BS_CONV_DIRECT: return 1;
  case BS_CONV_GEMM: return 0;
  default: return auto_direct(ctx, s, pass);   // AUTO, and WINOGRAD's other shapes
  }
}

// The shapes the Winograd convolutions implement: 3x3, pad 1, stride 1 ("same").
static int is_winograd_shape(const bs_conv_shape *s) {
  return s->KH == 3 && s->KW == 3 && s->pad == 1 && s->stride == 1;
}

// AUTO's choice of Winograd (docs/PERFORMANCE.md, "Winograd thresholds"; per-layer timings of
// each pass on 2 threads, blockscope-engine bench-conv). AVX2: the F(4x4) forward (and
// backward-data, the same computation on the flipped kernel) beat the direct kernel by 1.5-2x
// from 32 channels on and tied at 16; with Ci = 3 (the stem) the products have 3 terms and
// the transforms dominate (2.7x slower): direct. The F(3x3, 2x2) weight gradient won from 64
// channels on (1.1-1.6x) and tied or lost below, where its two transforms per tile weigh as
// much as its products. AVX-512: not measured (the machine with AVX-512 was gone when these
// kernels came, and its direct kernels are twice as wide), so AUTO keeps direct/sgemm there.
static int auto_winograd(const bs_context *ctx, const bs_conv_shape *s, int pass) {
  if (ctx->isa != BS_ISA_AVX2) return 0;
  const int channels = s->Ci < s->Co ? s->Ci : s->Co;
  return pass == BS_CONV_PASS_WEIGHTS ? channels >= 64 : channels >= 16;
}

// Whether `pass` of convolution s runs through the Winograd convolutions (conv_winograd.c).
static int use_winograd(const bs_context *ctx, const bs_conv_shape *s, int pass) {
  if (!is_winograd_shape(s)) return 0;
  switch (ctx->conv_algorithm) {
  case BS_CONV_WINOGRAD: return 1;
  case BS_CONV_AUTO: return auto_winograd(ctx, s, pass);
  default: return 0;
  }
}

// The forward (and backward-data) tile size: F(4x4, 3x3), which measured faster than F(2x2)
// on every layer shape of the family (docs/PERFORMANCE.md, "Winograd thresholds"), unless the
// context forces one. F(2x2) stays for the weight gradient's F(3x3, 2x2) and for tests.
static int winograd_tile(const bs_context *ctx, const bs_conv_shape *s) {
  (void)s;
  return ctx->winograd_tile ? ctx->winograd_tile : 4;
}

int bs_conv_pass_algorithm(const bs_context *ctx, const bs_conv_shape *s, int pass, int *tile) {
  if (tile) *tile = 0;
  if (use_winograd(ctx, s, pass)) {
    if (tile) *tile = pass == BS_CONV_PASS_WEIGHTS ? 2 : winograd_tile(ctx, s);
    return BS_CONV_WINOGRAD;
  }
  return use_direct(ctx, s, pass) ? BS_CONV_DIRECT : BS_CONV_GEMM;
}

// Packed weights for bs_conv3x3_direct (malloc'd; the caller frees). Aborts when out of
// memory, as every allocation of the layer ops does (their callers cannot recover mid-step).
static float *pack_direct(const float *w, int Ci, int Co) {
  float *wp = malloc(bs_conv3x3_direct_packed_floats(Ci, Co) * sizeof(float));
  BS_CHECK(wp, "out of memory packing convolution weights");
  bs_conv3x3_direct_pack(w, Ci, Co, wp);
  return wp;
}

static void *checked_malloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  BS_CHECK(p, "out of memory in a convolution");
  return p;
}

// A worker's scratch; aborts when out of memory (see pack_direct).
static float *scratch(bs_worker *w, bs_scratch_owner owner, size_t floats) {
  return bs_worker_scratch_or_abort(w, owner, floats, "out of memory for convolution scratch");
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
  const float *wp;          // forward: w packed for bs_conv3x3_direct
  const float *wfp;         // backward: w_flipped packed for bs_conv3x3_direct (Ci <-> Co)
  float *dwt_partial;       // backward with bs_conv3x3_direct_dw: per task [3][3][Ci][Co]
  float *y, *dw_partial, *db_partial, *dx;
  int weights_done;         // backward: dw came from the Winograd weight gradient
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

// y[n] = conv3x3(x[n]) (+ bias), image by image
static void conv_forward_direct_task(void *p, int t, int ntasks, bs_worker *w) {
  const conv_ctx *c = p;
  const bs_conv_shape *s = c->s;
  size_t n0, n1;
  bs_split((size_t)s->N, t, ntasks, &n0, &n1);
  const size_t in_img = (size_t)s->H * s->W * s->Ci, out_img = (size_t)s->OH * s->OW * s->Co;
  float *work = scratch(w, BS_SCRATCH_CONV_DIRECT,
                        bs_conv3x3_direct_scratch_floats(s->H, s->W, s->Ci));
  for (size_t n = n0; n < n1; n++)
    bs_worker_kernels(w)->bs_conv3x3_direct(c->x + n * in_img, s->H, s->W, s->Ci, s->Co,
                                            s->stride, c->wp, c->bias, c->y + n * out_img, work);
}

// The sgemm A operand for m images starting at x: im2col into the worker's columns
// ([m*OH*OW][KH*KW*Ci]), or x itself for a 1x1 stride-1 convolution.
static const float *im2col_chunk(bs_worker *w, const bs_conv_shape *s, const float *x, int m) {
  if (is_pointwise(s)) return x;
  const size_t in_img = (size_t)s->H * s->W * s->Ci;
  const size_t col_img = (size_t)s->OH * s->OW * s->KH * s->KW * s->Ci;
  float *col = scratch(w, BS_SCRATCH_CONV_COLUMNS, (size_t)m * col_img);
  for (int i = 0; i < m; i++)
    bs_worker_kernels(w)->bs_im2col(x + i * in_img, s->H, s->W, s->Ci, s->KH, s->KW, s->stride,
                                    s->pad, col + i * col_img);
  return col;
}

// y[n0:n1] = im2col(x[n0:n1]) * W^T (+ bias)
static void conv_forward_task(void *p, int t, int ntasks, bs_worker *w) {
  const conv_ctx *c = p;
  const bs_conv_shape *s = c->s;
  size_t n0, n1;
  bs_split((size_t)s->N, t, ntasks, &n0, &n1);
  const int K = s->KH * s->KW * s->Ci, rows = s->OH * s->OW, g = chunk_images(s);
  const size_t in_img = (size_t)s->H * s->W * s->Ci, out_img = (size_t)rows * s->Co;
  for (size_t n = n0; n < n1; n += g) {
    const int m = (int)((n + g <= n1) ? g : n1 - n);
    const float *a = im2col_chunk(w, s, c->x + n * in_img, m);
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

// Images in BS_PARTITION_TASKS parts whatever the thread count (the sgemm chunks follow them).
// The shape went through bs_conv_shape_init (OH/OW agree with the rest). For BS_ASSERT only.
__attribute__((unused)) static int shape_initialised(const bs_conv_shape *s) {
  bs_conv_shape t = *s;
  return bs_conv_shape_init(&t) == BS_OK && t.OH == s->OH && t.OW == s->OW;
}

void bs_conv_forward(bs_context *ctx, const bs_conv_shape *s, const float *x, const float *w,
                     const float *bias, float *y) {
  BS_ASSERT(shape_initialised(s), "bs_conv_forward: shape not filled by bs_conv_shape_init");
  BS_ASSERT(!bs_overlaps(x, sizeof(float) * s->N * s->H * s->W * s->Ci, y,
                         sizeof(float) * s->N * s->OH * s->OW * s->Co),
            "bs_conv_forward: y overlaps x");
  BS_PROF_BEGIN(ctx);
  conv_ctx c = {.s = s, .x = x, .w = w, .bias = bias, .y = y};
  int ntasks = BS_PARTITION_TASKS;
  if (ntasks > s->N) ntasks = s->N;
  if (use_winograd(ctx, s, BS_CONV_PASS_FORWARD)) {
    bs_conv_winograd_forward(ctx, s->N, s->H, s->W, s->Ci, s->Co, x, w, bias, NULL, 0, y,
                             winograd_tile(ctx, s));
  } else if (use_direct(ctx, s, BS_CONV_PASS_FORWARD)) {
    float *wp = pack_direct(w, s->Ci, s->Co);
    c.wp = wp;
    bs_parallel_for(ctx, ntasks, conv_forward_direct_task, &c);
    free(wp);
  } else {
    bs_parallel_for(ctx, ntasks, conv_forward_task, &c);
  }
  BS_PROF_END(ctx, BS_PROF_CONV_FWD);
}

// dW_t = sum over chunks dy^T * im2col(x);  dx = col2im(dy * W)
static void conv_backward_task(void *p, int t, int ntasks, bs_worker *w) {
  const conv_ctx *c = p;
  const bs_kernels *k = bs_worker_kernels(w);
  const bs_conv_shape *s = c->s;
  size_t n0, n1;
  bs_split((size_t)s->N, t, ntasks, &n0, &n1);
  const int K = s->KH * s->KW * s->Ci, rows = s->OH * s->OW, g = chunk_images(s);
  const size_t in_img = (size_t)s->H * s->W * s->Ci, out_img = (size_t)rows * s->Co;
  float *dw = c->weights_done ? NULL : c->dw_partial + (size_t)t * s->Co * K;
  if (dw) memset(dw, 0, (size_t)s->Co * K * sizeof(float));
  if (c->db_partial) {
    float *db = c->db_partial + (size_t)t * s->Co;
    memset(db, 0, (size_t)s->Co * sizeof(float));
    for (size_t r = n0 * rows; r < n1 * rows; r++)
      for (int o = 0; o < s->Co; o++) db[o] += c->dy[r * s->Co + o];
  }
  float *dwt = NULL;
  if (c->dwt_partial) {
    dwt = c->dwt_partial + (size_t)t * s->Co * K;
    memset(dwt, 0, (size_t)s->Co * K * sizeof(float));
  }
  float *work = dwt || c->wfp ? scratch(w, BS_SCRATCH_CONV_DIRECT,
                                         bs_conv3x3_direct_scratch_floats(
                                             s->H > s->OH ? s->H : s->OH,
                                             s->W > s->OW ? s->W : s->OW,
                                             s->Ci > s->Co ? s->Ci : s->Co))
                                 : NULL;
  for (size_t n = n0; n < n1; n += g) {
    const int m = (int)((n + g <= n1) ? g : n1 - n);
    const float *dy = c->dy + n * out_img;
    if (!dw) {
      // the Winograd weight gradient (bs_conv_backward)
    } else if (dwt) {
      // dwt [K x Co] += the image's weight gradient, image by image
      for (int i = 0; i < m; i++)
        k->bs_conv3x3_direct_dw(c->x + (n + i) * in_img, dy + (size_t)i * out_img, s->H, s->W,
                                s->Ci, s->Co, s->stride, dwt, work);
    } else {
      const float *a = im2col_chunk(w, s, c->x + n * in_img, m);
      // dw [Co x K] += dy^T [Co x M] * col [M x K]
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->Co, K, m * rows, 1.0f, dy, s->Co,
                  a, K, 1.0f, dw, K);
    }
    if (!c->dx) continue;
    float *dx = c->dx + n * in_img;
    if (is_pointwise(s)) {
      // dx [M x Ci] = dy [M x Co] * W [Co x Ci]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m * rows, K, s->Co, 1.0f, dy,
                  s->Co, c->w, K, 0.0f, dx, K);
    } else if (c->wfp) {
      // dx = conv3x3(dy, flipped kernel), image by image
      for (int i = 0; i < m; i++)
        k->bs_conv3x3_direct(dy + (size_t)i * out_img, s->OH, s->OW, s->Co, s->Ci, 1, c->wfp,
                             NULL, dx + (size_t)i * in_img, work);
    } else if (c->w_flipped) {
      // dx [M x Ci] = im2col(dy) [M x KH*KW*Co] * Wf^T [KH*KW*Co x Ci]
      const int Kt = s->KH * s->KW * s->Co;
      float *dcol = scratch(w, BS_SCRATCH_CONV_DX_COLUMNS, (size_t)m * rows * Kt);
      for (int i = 0; i < m; i++)
        k->bs_im2col(dy + (size_t)i * out_img, s->OH, s->OW, s->Co, s->KH, s->KW, 1, s->pad,
                  dcol + (size_t)i * rows * Kt);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m * rows, s->Ci, Kt, 1.0f, dcol, Kt,
                  c->w_flipped, Kt, 0.0f, dx, s->Ci);
    } else {
      float *dcol = scratch(w, BS_SCRATCH_CONV_DX_COLUMNS, (size_t)m * rows * K);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m * rows, K, s->Co, 1.0f, dy,
                  s->Co, c->w, K, 0.0f, dcol, K);
      memset(dx, 0, (size_t)m * in_img * sizeof(float));
      for (int i = 0; i < m; i++)
        k->bs_col2im(dcol + (size_t)i * rows * K, s->H, s->W, s->Ci, s->KH, s->KW, s->stride,
                  s->pad, dx + (size_t)i * in_img);
    }
  }
  if (dwt)   // [K][Co] -> [Co][K]
    for (int k = 0; k < K; k++)
      for (int o = 0; o < s->Co; o++) dw[(size_t)o * K + k] = dwt[(size_t)k * s->Co + o];
}

// The weight gradient sums over images: BS_PARTITION_TASKS partial sums whatever the thread
// count, reduced in task order.
void bs_conv_backward(bs_context *ctx, const bs_conv_shape *s, const float *x, const float *w,
                      const float *dy, float *dw, float *dbias, float *dx) {
  BS_ASSERT(shape_initialised(s), "bs_conv_backward: shape not filled by bs_conv_shape_init");
  BS_ASSERT(!dx || !bs_overlaps(dx, sizeof(float) * s->N * s->H * s->W * s->Ci, dy,
                                sizeof(float) * s->N * s->OH * s->OW * s->Co),
            "bs_conv_backward: dx overlaps dy");
  BS_PROF_BEGIN(ctx);
  const size_t K = (size_t)s->KH * s->KW * s->Ci;
  if (s->N == 0) {
    memset(dw, 0, (size_t)s->Co * K * sizeof(float));
    if (dbias) memset(dbias, 0, (size_t)s->Co * sizeof(float));
    BS_PROF_END(ctx, BS_PROF_CONV_BWD);
    return;
  }
  // Winograd passes run on their own; the task below does what is left (the bias gradient at
  // least, when there is one).
  const int weights_winograd = use_winograd(ctx, s, BS_CONV_PASS_WEIGHTS);
  if (weights_winograd) bs_conv_winograd_weight_grad(ctx, s->N, s->H, s->W, s->Ci, s->Co, x, dy, dw);
  if (dx && use_winograd(ctx, s, BS_CONV_PASS_DATA)) {
    // dx = the "same" convolution of dy with the flipped kernel (backward_data_as_forward)
    float *wf = checked_malloc((size_t)s->Co * K * sizeof(float));
    flip_kernel(s, w, wf);
    bs_conv_winograd_forward(ctx, s->N, s->OH, s->OW, s->Co, s->Ci, dy, wf, NULL, NULL, 0, dx,
                             winograd_tile(ctx, s));
    free(wf);
    dx = NULL;
  }
  if (weights_winograd && !dx && !dbias) {
    BS_PROF_END(ctx, BS_PROF_CONV_BWD);
    return;
  }
  int ntasks = BS_PARTITION_TASKS;
  if (ntasks > s->N) ntasks = s->N;
  float *dw_partial = weights_winograd ? NULL
                      : ntasks == 1    ? dw
                                       : checked_malloc((size_t)ntasks * s->Co * K * sizeof(float));
  float *db_partial = !dbias        ? NULL
                      : ntasks == 1 ? dbias
                                    : checked_malloc((size_t)ntasks * s->Co * sizeof(float));
  float *w_flipped = NULL, *wfp = NULL;
  if (dx && backward_data_as_forward(s)) {
    w_flipped = checked_malloc((size_t)s->Co * K * sizeof(float));
    flip_kernel(s, w, w_flipped);
    if (use_direct(ctx, s, BS_CONV_PASS_DATA)) {   // the flipped kernel: 3x3, pad 1, stride 1
      wfp = pack_direct(w_flipped, s->Co, s->Ci);
      free(w_flipped);
      w_flipped = NULL;
    }
  }
  float *dwt_partial = !weights_winograd && use_direct(ctx, s, BS_CONV_PASS_WEIGHTS)
                           ? checked_malloc((size_t)ntasks * s->Co * K * sizeof(float))
                           : NULL;
  conv_ctx c = {.s = s, .x = x, .w = w, .dy = dy, .w_flipped = w_flipped, .wfp = wfp,
                .dwt_partial = dwt_partial, .dw_partial = dw_partial, .db_partial = db_partial,
                .dx = dx, .weights_done = weights_winograd};
  bs_parallel_for(ctx, ntasks, conv_backward_task, &c);
  free(w_flipped);
  free(wfp);
  free(dwt_partial);
  if (ntasks > 1) {   // reduce in task order
    bs_add_t *add = ctx->kernels.bs_add;
    if (dw_partial) {
      memcpy(dw, dw_partial, (size_t)s->Co * K * sizeof(float));
      for (int t = 1; t < ntasks; t++)
        add(dw, dw_partial + (size_t)t * s->Co * K, s->Co * K, dw);
      free(dw_partial);
    }
    if (dbias) {
      memcpy(dbias, db_partial, (size_t)s->Co * sizeof(float));
      for (int t = 1; t < ntasks; t++) add(dbias, db_partial + (size_t)t * s->Co, s->Co, dbias);
      free(db_partial);
    }
  }
  BS_PROF_END(ctx, BS_PROF_CONV_BWD);
}
