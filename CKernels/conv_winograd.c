// Winograd convolution of whole batches, on the context's threads: the forward pass with
// F(m x m, 3 x 3) (the backward-data pass is the same call with the flipped kernel, see
// conv_ops.c) and the weight gradient with F(3 x 3, 2 x 2). The tile kernels and the matrices
// are in winograd_*.c; ckernels.h ("Winograd") numbers the tiles.
//
// Images are split into BS_PARTITION_TASKS parts whatever the thread count (results do not
// depend on it). A task walks its tiles in chunks small enough that a chunk's transformed
// input and products stay in L2 between the three steps.
#include "conv_winograd.h"
#include "winograd.h"
#include <string.h>

// Whether a [points][nt][C] buffer puts its points an even number of cache lines apart. Then
// the a^2 points of one tile, written or read together, fall into few L1 sets (two with 16
// channels and 96 tiles: every point a multiple of 2 KiB apart) and evict each other.
static int points_collide(int nt, int C) {
  const size_t bytes = (size_t)nt * C * sizeof(float);
  return bytes % 64 == 0 && (bytes / 64) % 2 == 0;
}

// About `target` tiles, a few less if need be so that neither v (Ci) nor the products (Co)
// collide.
static int spread_tiles(int target, int Ci, int Co) {
  for (int nt = target; nt > target - 16 && nt > 1; nt--)
    if (!points_collide(nt, Ci) && !points_collide(nt, Co)) return nt;
  return target;
}

// Tiles per chunk: the chunk's v ([a2][nt][Ci]) and products ([a2][nt][Co]) within ~192 KiB.
static int chunk_tiles(int a2, int Ci, int Co) {
  int nt = 49152 / (a2 * (Ci + Co));
  if (nt < 12) nt = 12;
  return spread_tiles(nt, Ci, Co);
}

static float *scratch(bs_worker *w, bs_scratch_owner owner, size_t floats) {
  return bs_worker_scratch_or_abort(w, owner, floats,
                                    "out of memory for Winograd convolution scratch");
}

typedef struct {
  int N, H, W, Ci, Co, m;
  const float *x, *up, *bias, *dy;
  const float *residual;   // forward epilogue: added before the ReLU (NULL: none)
  int relu;
  float *y;
  float *partials;   // weight gradient: per task [16][Ci][Co]
} winograd_job;

static void forward_task(void *p, int t, int ntasks, bs_worker *w) {
  const winograd_job *j = p;
  const bs_kernels *k = bs_worker_kernels(w);
  size_t n0, n1;
  bs_split((size_t)j->N, t, ntasks, &n0, &n1);
  if (n0 == n1) return;
  const int a = j->m + 2, a2 = a * a, nt = chunk_tiles(a2, j->Ci, j->Co);
  const bs_winograd_grid g = bs_winograd_grid_of(j->H, j->W, j->m);
  const size_t tiles = (n1 - n0) * bs_winograd_tiles_per_image(&g);
  const float *x = j->x + n0 * (size_t)j->H * j->W * j->Ci;
  float *y = j->y + n0 * (size_t)j->H * j->W * j->Co;
  const float *res = j->residual ? j->residual + n0 * (size_t)j->H * j->W * j->Co : NULL;
  float *v = scratch(w, BS_SCRATCH_WINOGRAD_V, (size_t)a2 * nt * j->Ci);
  float *mo = scratch(w, BS_SCRATCH_WINOGRAD_M, (size_t)a2 * nt * j->Co);
  for (size_t t0 = 0; t0 < tiles; t0 += nt) {
    const int n = tiles - t0 < (size_t)nt ? (int)(tiles - t0) : nt;
    k->bs_winograd_input(x, j->H, j->W, j->Ci, j->m, t0, n, v);
    k->bs_winograd_products(v, n, j->Ci, j->Co, a2, j->up, mo);
    k->bs_winograd_output(mo, j->H, j->W, j->Co, j->m, t0, n, j->bias, res, j->relu, y);
  }
}

void bs_conv_winograd_forward(bs_context *ctx, int N, int H, int W, int Ci, int Co,
                              const float *x, const float *w, const float *bias,
                              const float *residual, int relu, float *y, int m) {
  BS_CHECK(m == 2 || m == 4, "Winograd tile size must be 2 or 4");
  if (N == 0) return;
  float *up = malloc(bs_winograd_packed_floats(m, Ci, Co) * sizeof(float));
  BS_CHECK(up, "out of memory transforming convolution weights");
  bs_winograd_pack(w, m, Ci, Co, up);
  winograd_job j = {.N = N, .H = H, .W = W, .Ci = Ci, .Co = Co, .m = m, .x = x, .up = up,
                    .bias = bias, .residual = residual, .relu = relu, .y = y};
  bs_parallel_for(ctx, N < BS_PARTITION_TASKS ? N : BS_PARTITION_TASKS, forward_task, &j);
  free(up);
}

// Weight-gradient chunks: the products' sums run over the chunk's tiles and the partial sums
// s ([16][Ci][Co]) are read and written once per chunk, so chunks longer than the forward's.
static int chunk_tiles_dw(int Ci, int Co) {
  int nt = 131072 / (16 * (Ci + Co));
  return spread_tiles(nt < 32 ? 32 : nt, Ci, Co);
}

static void weight_grad_task(void *p, int t, int ntasks, bs_worker *w) {
  const winograd_job *j = p;
  const bs_kernels *k = bs_worker_kernels(w);
  size_t n0, n1;
  bs_split((size_t)j->N, t, ntasks, &n0, &n1);
  float *s = j->partials + (size_t)t * 16 * j->Ci * j->Co;
  memset(s, 0, (size_t)16 * j->Ci * j->Co * sizeof(float));
  if (n0 == n1) return;
  const int nt = chunk_tiles_dw(j->Ci, j->Co);
  const bs_winograd_grid g = bs_winograd_grid_of(j->H, j->W, 2);
  const size_t tiles = (n1 - n0) * bs_winograd_tiles_per_image(&g);
  const float *x = j->x + n0 * (size_t)j->H * j->W * j->Ci;
  const float *dy = j->dy + n0 * (size_t)j->H * j->W * j->Co;
  float *v = scratch(w, BS_SCRATCH_WINOGRAD_V, (size_t)16 * nt * j->Ci);
  float *gt = scratch(w, BS_SCRATCH_WINOGRAD_M, (size_t)16 * nt * j->Co);
  for (size_t t0 = 0; t0 < tiles; t0 += nt) {
    const int n = tiles - t0 < (size_t)nt ? (int)(tiles - t0) : nt;
    k->bs_winograd_input(x, j->H, j->W, j->Ci, 2, t0, n, v);
    k->bs_winograd_dy(dy, j->H, j->W, j->Co, t0, n, gt);
    k->bs_winograd_dw_products(v, gt, n, j->Ci, j->Co, s);
  }
}

void bs_conv_winograd_weight_grad(bs_context *ctx, int N, int H, int W, int Ci, int Co,
                                  const float *x, const float *dy, float *dw) {
  const int ntasks = N < 1 ? 1 : N < BS_PARTITION_TASKS ? N : BS_PARTITION_TASKS;
  const size_t per = (size_t)16 * Ci * Co;
  float *partials = malloc((size_t)ntasks * per * sizeof(float));
  BS_CHECK(partials, "out of memory for the weight gradient's partial sums");
  winograd_job j = {.N = N, .H = H, .W = W, .Ci = Ci, .Co = Co, .m = 2, .x = x, .dy = dy,
                    .partials = partials};
  bs_parallel_for(ctx, ntasks, weight_grad_task, &j);
  for (int t = 1; t < ntasks; t++)   // in task order
    ctx->kernels.bs_add(partials, partials + (size_t)t * per, per, partials);
  bs_winograd_weight_grad(partials, Ci, Co, dw);
  free(partials);
}
