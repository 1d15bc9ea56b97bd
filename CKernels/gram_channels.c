// Per-channel centred Grams of NHWC (or NCHW) activations, so that the Gram of a per-channel affine map
// of them (an inference-mode BatchNorm) costs a weighted sum instead of another X X^T.
//
// With x[i][p][c] (m examples, P positions, C channels) and Xc_c[i][p] = x[i][p][c] minus its
// mean over the m examples,
//   Kc[c] = Xc_c Xc_c^T                        (m x m)
//   centred Gram of x            = sum_c Kc[c]
//   centred Gram of a_c x + b_c  = sum_c a_c^2 Kc[c]   (centring removes the shift b_c)
// A ResNet taps every conv output and the BN right after it; this halves their Gram work.
//
// Threads split the channels. Each task first transposes its channels out of the interleaved
// NHWC rows (bs_transpose, image by image) into channel-major buffers, then centres
// and multiplies each channel on its own, adding Kc[c] and w_c Kc[c] into its two partial
// sums; the partials are summed in task order, so results do not depend on scheduling.
// The transpose is a kernel of its own (8x8 register blocks in AVX2) because a scalar gather
// loop here took about a tenth of bench-cka's time (docs/PERFORMANCE.md, "Gram phase:
// transpose, centring, page mapping").
#include "context_internal.h"
#include "task_partials.h"
#include <string.h>

enum { MAX_TASKS = 64 };

typedef struct {
  const float *x;
  int m, channels;
  size_t positions;
  int nchw;   // x is [m][channels][positions] (else [m][positions][channels])
  const float *weights;
  float *partials;   // [ntasks][2][m][m]: per task, sum_c Kc and sum_c w_c Kc (upper triangles)
  double *mean_sums;
  atomic_int failed;   // a task could not get its scratch buffer
} channels_ctx;

static void channels_task(void *p, int t, int ntasks, bs_worker *wk) {
  channels_ctx *c = p;
  const bs_kernels *kn = bs_worker_kernels(wk);
  size_t c0, c1;
  bs_split((size_t)c->channels, t, ntasks, &c0, &c1);
  const int m = c->m, C = c->channels;
  float *K = c->partials + (size_t)t * 2 * m * m, *Kw = K + (size_t)m * m;
  memset(K, 0, sizeof(float) * 2 * m * m);
  if (c0 == c1) return;
  const size_t P = c->positions, g = c1 - c0, d = P * (size_t)C;
  // NHWC: buf[k][i][p] = x[i][p][c0 + k] for the task's channels; NCHW: one channel at a time,
  // centred straight from its rows (x[i][c][.], row stride C * P). Then one channel's Gram in Kc.
  float *buf = bs_worker_scratch(wk, BS_SCRATCH_CHANNEL_PANEL, (c->nchw ? 1 : g) * (size_t)m * P);
  float *Kc = bs_worker_scratch(wk, BS_SCRATCH_CHANNEL_GRAM, (size_t)m * m + P);
  float *row0 = Kc ? Kc + (size_t)m * m : NULL;
  if (!buf || !Kc) {
    atomic_store(&c->failed, 1);
    return;
  }
  // Image i's [P][C] block, columns c0..c1, transposed to buf[.][i][.] (row stride m * P).
  if (!c->nchw)
    for (int i = 0; i < m; i++)
      kn->bs_transpose(c->x + (size_t)i * d + c0, P, g, C, buf + (size_t)i * P, (size_t)m * P);
  for (size_t k = 0; k < g; k++) {
    float *xc = c->nchw ? buf : buf + k * (size_t)m * P;
    if (c->nchw) {
      const float *src = c->x + (c0 + k) * P;
      memcpy(row0, src, P * sizeof(float));
      kn->bs_center_columns(src, m, P, d, xc, P);
    } else {
      // Keep row 0 to recover the column means after centring (mean = x - (x - mean)), as
      // bs_gram_centered does: a pass down the columns here would stride through the buffer.
      memcpy(row0, xc, P * sizeof(float));
      kn->bs_center_columns(xc, m, P, P, xc, P);
    }
    double s1 = 0, s2 = 0;
    for (size_t q = 0; q < P; q++) {
      const double mean = (double)row0[q] - (double)xc[q];
      s1 += mean;
      s2 += mean * mean;
    }
    c->mean_sums[2 * (c0 + k)] = s1;
    c->mean_sums[2 * (c0 + k) + 1] = s2;
    memset(Kc, 0, sizeof(float) * m * m);
    kn->bs_dots_acc(xc, m, (int)P, xc, m, (int)P, (int)P, 1, Kc, m);
    const float w = c->weights ? c->weights[c0 + k] : 0.0f;
    for (int i = 0; i < m; i++)
      for (int j = i; j < m; j++) {
        const float v = Kc[(size_t)i * m + j];
        K[(size_t)i * m + j] += v;
        Kw[(size_t)i * m + j] += w * v;
      }
  }
}

// x: [m][positions][channels] (or [m][channels][positions] when nchw), weights: [channels] or
// NULL -> K, Kw: [m][m] (full, symmetric), mean_sums: [channels][2]. See ckernels.h.
static bs_status gram_channels(bs_context *ctx, const float *x, int m, size_t positions,
                               int channels, int nchw, const float *weights, float *K, float *Kw,
                               double *mean_sums) {
  if (m <= 0 || channels <= 0 || positions == 0) return BS_ERR_INVALID;
  int ntasks = ctx->threads;
  if (ntasks > channels) ntasks = channels;
  if (ntasks > MAX_TASKS) ntasks = MAX_TASKS;
  float *partials = bs_worker_scratch(bs_context_caller(ctx), BS_SCRATCH_TASK_PARTIALS,
                                      (size_t)ntasks * 2 * m * m);
  if (!partials) return BS_ERR_NO_MEMORY;
  channels_ctx c = {.x = x, .m = m, .channels = channels, .positions = positions, .nchw = nchw,
                    .weights = weights, .partials = partials, .mean_sums = mean_sums};
  bs_parallel_for(ctx, ntasks, channels_task, &c);
  if (atomic_load(&c.failed)) return BS_ERR_NO_MEMORY;
  // Task order, so that the sums do not depend on scheduling.
  bs_reduce_task_partials(partials, 2 * (size_t)m * m, ntasks, m, K);
  if (Kw) bs_reduce_task_partials(partials + (size_t)m * m, 2 * (size_t)m * m, ntasks, m, Kw);
  return BS_OK;
}

bs_status bs_gram_centered_channels(bs_context *ctx, const float *x, int m, size_t positions,
                                    int channels, const float *weights, float *K, float *Kw,
                                    double *mean_sums) {
  return gram_channels(ctx, x, m, positions, channels, 0, weights, K, Kw, mean_sums);
}

// x: [m][channels][positions]; otherwise as bs_gram_centered_channels.
bs_status bs_gram_centered_channels_nchw(bs_context *ctx, const float *x, int m, size_t positions,
                                         int channels, const float *weights, float *K, float *Kw,
                                         double *mean_sums) {
  return gram_channels(ctx, x, m, positions, channels, 1, weights, K, Kw, mean_sums);
}
