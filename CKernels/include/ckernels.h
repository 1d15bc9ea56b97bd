// Blockscope CKernels: the hot loops, nothing else.
//
// Layout: every activation tensor is NHWC, fp32, densely packed. A "row" is one pixel of one
// image, i.e. C contiguous floats; an activation of N images of HxW is N*H*W rows of C.
// Conv weights are [Co][KH][KW][Ci], i.e. a Co x (KH*KW*Ci) row-major matrix, which makes the
// NHWC im2col matrix times W^T the output directly (one sgemm, no transposes of activations).
//
// Two levels live here:
//  * micro-kernels (this header's first half): single-threaded, one scalar `_ref` version kept
//    forever plus SIMD variants; listed once in kernels.inc. A context's kernel table
//    (bs_kernels) holds the variants of its ISA: detected, forced by BLOCKSCOPE_ISA, or set on
//    the context.
//  * layer ops (second half): whole-batch forward/backward passes that split work over a
//    context's threads and call its micro-kernels and single-threaded cblas_sgemm.
//
// Every threaded op takes an explicit bs_context (as BLIS passes its cntx): the threads it runs
// on, the kernel variants, the convolution algorithm, the scratch memory and the profile
// counters all belong to the context, so requests with their own contexts do not change each
// other's numbers or speed. No op reads or writes process-wide mutable state. Results are
// deterministic: the training ops (convolution, batch norm) partition their reductions into a
// fixed number of tasks, so their results do not depend on the thread count at all; the CKA
// drivers partition by the thread count (their per-task partials are m x m matrices), so their
// results are bit-identical for a given thread count and differ in the last bits between
// thread counts.
#ifndef BLOCKSCOPE_CKERNELS_H
#define BLOCKSCOPE_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------
// Status of the calls that can fail: BS_OK, or a named failure (never a bare -1). The layer
// ops cannot fail mid-step and abort with a message when out of memory instead.
// ---------------------------------------------------------------------------------------------
typedef enum {
  BS_OK = 0,
  BS_ERR_NO_MEMORY = -1,     // an allocation failed; the outputs are unspecified
  BS_ERR_INVALID = -2,       // an argument the call cannot take (a shape, a size)
  BS_ERR_UNSUPPORTED = -3,   // this CPU cannot run the requested ISA
  BS_ERR_LAPACK = -4,        // LAPACK reported a failure (its info in *lapack_info)
  BS_ERR_NO_SOLUTION = -5,   // the eigen/singular solver returned no value
} bs_status;
// "ok", "out of memory", ...
const char *bs_status_message(bs_status s);

// Blocks of `bytes` or more are mmapped by the C library and returned when freed, always
// (glibc otherwise raises the threshold as large blocks are freed, and a long-running process
// that frees and refills large blocks fragments its heap). 1 B to 32 MiB; call before threads
// start (allocator.c).
bs_status bs_allocator_fix_mmap_threshold(size_t bytes);
// malloc_trim(0): the free pages of every arena back to the system; 1 if any was released.
int bs_allocator_trim(void);

// ---------------------------------------------------------------------------------------------
// ISA dispatch
// ---------------------------------------------------------------------------------------------
typedef enum { BS_ISA_REF = 0, BS_ISA_AVX2 = 1, BS_ISA_AVX512 = 2, BS_ISA_COUNT = 3 } bs_isa;

// The best ISA this CPU runs (detected once), or the one BLOCKSCOPE_ISA names; an override the
// CPU cannot run falls back to the best supported one and bs_isa_override_error() says why.
// New contexts start with it.
bs_isa bs_default_isa(void);
const char *bs_isa_name(bs_isa isa);
// 1 if this CPU can run the variant.
int bs_isa_supported(bs_isa isa);
// Non-NULL when BLOCKSCOPE_ISA held something unusable; the message names the value.
const char *bs_isa_override_error(void);

// ---------------------------------------------------------------------------------------------
// Micro-kernels. Each name below exists as NAME_ref, NAME_avx2, NAME_avx512 (see kernels.inc)
// and as the dispatched NAME.
// ---------------------------------------------------------------------------------------------

// Every micro-kernel: X(name, (parameters), (arguments)). The shape comment for each is below.
// Micro-kernels never allocate: a kernel that needs working memory takes it as a parameter.
//
// bs_im2col: im2col for one NHWC image.
//   x: [H][W][C]  ->  col: [OH*OW][KH*KW*C], zero padding `pad`, stride `stride`,
//   OH = (H + 2*pad - KH)/stride + 1, OW likewise.
// bs_col2im: col2im for one NHWC image, ACCUMULATING into dx (caller zeroes dx first).
//   col: [OH*OW][KH*KW*C]  ->  dx: [H][W][C] (+=).
// bs_channel_sums: per-channel sums over rows, ACCUMULATED into doubles.
//   x: [rows][C] -> sum[c] += sum_r x[r][c]; sumsq[c] += sum_r x[r][c]^2.
// bs_scale_shift: per-channel affine with optional ReLU; y may alias x.
//   x: [rows][C], scale/shift: [C] -> y[r][c] = scale[c]*x[r][c] + shift[c] (max(.,0) if relu).
// bs_bn_backward_sums: batch-norm backward reductions, ACCUMULATED into doubles.
//   dy, x: [rows][C], mean: [C] -> sum_dy[c] += sum_r dy; sum_dy_xc[c] += sum_r dy*(x-mean[c]).
// bs_channel_axpby: per-channel combination (batch-norm dx); dx may alias dy.
//   dy, x: [rows][C], k1/k2/k3: [C] -> dx[r][c] = k1[c]*dy[r][c] + k2[c]*x[r][c] + k3[c].
// bs_relu: y[i] = max(x[i], 0); y may alias x.
// bs_relu_backward: from the ReLU's OUTPUT y: dx[i] = y[i] > 0 ? dy[i] : 0; dx may alias dy.
// bs_add_relu: residual add then ReLU: y[i] = max(a[i] + b[i], 0); y may alias a or b.
// bs_add: y[i] = a[i] + b[i]; y may alias a or b.
// bs_sgd_momentum: SGD, momentum, L2 decay, PyTorch semantics, in place.
//   w, v, g: [n] -> g' = g + wd*w; v = momentum*v + g'; w -= lr*v.
// bs_avgpool: global average pool. x: [N][HW][C] -> y: [N][C].
// bs_avgpool_backward: dy: [N][C] -> dx: [N][HW][C] = dy / HW broadcast.
// bs_augment: one uint8 HWC image into float [0,1]: reflect-pad by `pad`, crop HxW at offset
//   (oy, ox) in [0, 2*pad], optional horizontal flip. src: [H][W][C] u8 -> dst: [H][W][C] f32.
//   pad = 0 (with oy = ox = 0, flip = 0) is the plain u8 -> float conversion.
// bs_conv3x3_direct: direct ("implicit GEMM") 3x3 convolution of one NHWC image, pad 1,
//   stride 1 or 2, no im2col buffer. x: [H][W][Ci], wp: the weights as packed by
//   bs_conv3x3_direct_pack, bias: [Co] or NULL -> y: [OH][OW][Co] (overwritten),
//   OH = (H - 1)/stride + 1, OW likewise. scratch: bs_conv3x3_direct_scratch_floats(H, W, Ci)
//   floats, 64-byte aligned (the padded image).
// bs_conv3x3_direct_dw: the weight gradient of bs_conv3x3_direct's convolution for one image,
//   ACCUMULATED, in the transposed layout [ky][kx][ci][co]. x: [H][W][Ci], dy: [OH][OW][Co]
//   -> dwt: [3][3][Ci][Co] (+=). scratch: as bs_conv3x3_direct's (the padded image, a gather
//   buffer).
//
// Gram kernels for CKA (gram_*.c; docs/ANALYSIS.md, "CKA estimators"). m examples, d features,
// ld row stride.
// bs_center_columns: x: [m][ld] (first d columns) -> y: [m][ldy] (first d columns) = x - column
//   mean over the m rows (means accumulated in double); y may alias x (with ldy == ld). A
//   compact y (ldy = d) copies and centres in one pass: the Gram drivers' panels.
// bs_gram: x: [m][ld] (first d columns) -> K: [m][m] = x x^T (full, symmetric). The AVX2
//   entry is the BLAS variant (cblas_ssyrk), the reference accumulates in double.
// bs_ucenter: U-centring for the unbiased HSIC, m >= 4. K: [m][m] symmetric -> U: [m][m]
//   (may alias K); r: [m] double scratch. <vec U(K), vec U(L)> = m(m-3) HSIC1(K, L).
// bs_hcenter: HKH centring for the biased HSIC. K: [m][m] symmetric -> C: [m][m] (may alias
//   K); r: [m] double scratch.
// bs_pack_upper: A: [m][m] symmetric -> out: [m(m+1)/2], row i = scale*(A_ii/sqrt2, A_i,i+1..),
//   so that <vec A, vec B> = 2 <pack A, pack B>.
// bs_gram_sqdist: K: [m][m] Gram -> D: [m][m] squared distances max(K_ii + K_jj - 2K_ij, 0);
//   D must not alias K.
// bs_exp_scaled: x: [n] -> y[i] = exp(a*x[i]) for a*x[i] <= 88.3; y may alias x.
// bs_dots_acc: blocks of dot products, ACCUMULATED (dots_*.c; the CKA drivers' ssyrk/sgemm).
//   a: [na][lda], b: [nb][ldb] (first k columns of each), C: [na][ldc] (first nb columns) ->
//   C[i][j] += sum_p a[i][p] b[j][p]. upper != 0 (a == b, na == nb): only the entries with
//   j >= i are needed; the others may be left alone or overwritten. Nothing past column nb of
//   C is touched. The reference accumulates in double, the SIMD variants in float.
// bs_transpose: src: [rows][lds] (first cols columns) -> dst: [cols][ldd] (first rows
//   columns), dst[c][r] = src[r][c]; nothing else in dst is touched (transpose_*.c).
// bs_find_nonfinite: x: [n] -> *first = index of the first NaN or infinity, n if none
//   (finite_*.c; foreign activations are checked with it before their Grams).
// Winograd F(m x m, 3 x 3) convolution pieces (winograd_*.c, m = 2 or 4, alpha = m + 2; the
// transform matrices are in winograd_ref.c). Images are NHWC, H x W, cut into tiles of m x m
// output pixels, TH = ceil(H/m) by TW = ceil(W/m) per image, numbered row-major over images:
// tile t is image t / (TH*TW), row (t % (TH*TW)) / TW, column t % TW of x's images. A tile reads
// the alpha x alpha input window starting one pixel above and left of its outputs (zero outside
// the image).
// bs_winograd_input: tiles [t0, t0 + nt) of x: [..][H][W][C] -> v: [alpha^2][nt][C], the
//   window d of each channel transformed to B^T d B.
// bs_winograd_products: v: [alpha2][nt][Ci], up: transformed weights packed by
//   bs_winograd_pack -> mo: [alpha2][nt][Co], mo[k][t][co] = sum over ci (in order) of
//   v[k][t][ci] * U[k][ci][co].
// bs_winograd_output: mo: [alpha^2][nt][Co] -> the tiles' outputs A^T M A (+ bias [Co] if not
//   NULL, + residual [..][H][W][Co] if not NULL, then max(0, .) if relu) written to y:
//   [..][H][W][Co] (stride-1 "same": output size = input size); pixels past the image's edge
//   are not written. residual may alias y.
// bs_winograd_dy: the weight gradient's F(3 x 3, 2 x 2): the 2 x 2 tiles [t0, t0 + nt) of
//   dy: [..][H][W][Co] (tiles as above with m = 2, zero past the edge) -> g: [16][nt][Co],
//   each transformed to G' g G'^T. With bs_winograd_input(m = 2) of the layer's input, the sum
//   over tiles of v[k]^T g[k] is the transformed weight gradient (bs_winograd_weight_grad).
// bs_winograd_dw_products: v: [16][nt][Ci], g: [16][nt][Co] -> s: [16][Ci][Co] (+=),
//   s[k][ci][co] += sum over t (in order) of v[k][t][ci] * g[k][t][co].
#define BS_OPS(X)                                                                                 \
  X(bs_im2col, (const float *x, int H, int W, int C, int KH, int KW, int stride, int pad,        \
                float *col), (x, H, W, C, KH, KW, stride, pad, col))                             \
  X(bs_col2im, (const float *col, int H, int W, int C, int KH, int KW, int stride, int pad,      \
                float *dx), (col, H, W, C, KH, KW, stride, pad, dx))                             \
  X(bs_channel_sums, (const float *x, size_t rows, int C, double *sum, double *sumsq),           \
    (x, rows, C, sum, sumsq))                                                                     \
  X(bs_scale_shift, (const float *x, size_t rows, int C, const float *scale,                     \
                     const float *shift, int relu, float *y), (x, rows, C, scale, shift, relu, y)) \
  X(bs_bn_backward_sums, (const float *dy, const float *x, size_t rows, int C,                   \
                          const float *mean, double *sum_dy, double *sum_dy_xc),                 \
    (dy, x, rows, C, mean, sum_dy, sum_dy_xc))                                                    \
  X(bs_channel_axpby, (const float *dy, const float *x, size_t rows, int C, const float *k1,     \
                       const float *k2, const float *k3, float *dx),                             \
    (dy, x, rows, C, k1, k2, k3, dx))                                                             \
  X(bs_relu, (const float *x, size_t n, float *y), (x, n, y))                                     \
  X(bs_relu_backward, (const float *y, const float *dy, size_t n, float *dx), (y, dy, n, dx))     \
  X(bs_add_relu, (const float *a, const float *b, size_t n, float *y), (a, b, n, y))              \
  X(bs_add, (const float *a, const float *b, size_t n, float *y), (a, b, n, y))                   \
  X(bs_sgd_momentum, (float *w, float *v, const float *g, size_t n, float lr, float momentum,    \
                      float wd), (w, v, g, n, lr, momentum, wd))                                  \
  X(bs_avgpool, (const float *x, int N, int HW, int C, float *y), (x, N, HW, C, y))               \
  X(bs_avgpool_backward, (const float *dy, int N, int HW, int C, float *dx), (dy, N, HW, C, dx))  \
  X(bs_augment, (const uint8_t *src, int H, int W, int C, int pad, int oy, int ox, int flip,     \
                 float *dst), (src, H, W, C, pad, oy, ox, flip, dst))                             \
  X(bs_conv3x3_direct, (const float *x, int H, int W, int Ci, int Co, int stride,                 \
                        const float *wp, const float *bias, float *y, float *scratch),            \
    (x, H, W, Ci, Co, stride, wp, bias, y, scratch))                                              \
  X(bs_conv3x3_direct_dw, (const float *x, const float *dy, int H, int W, int Ci, int Co,         \
                           int stride, float *dwt, float *scratch),                               \
    (x, dy, H, W, Ci, Co, stride, dwt, scratch))                                                  \
  X(bs_winograd_input, (const float *x, int H, int W, int C, int m, size_t t0, int nt, float *v), \
    (x, H, W, C, m, t0, nt, v))                                                                   \
  X(bs_winograd_products, (const float *v, int nt, int Ci, int Co, int alpha2, const float *up,  \
                           float *mo), (v, nt, Ci, Co, alpha2, up, mo))                           \
  X(bs_winograd_output, (const float *mo, int H, int W, int Co, int m, size_t t0, int nt,        \
                         const float *bias, const float *residual, int relu, float *y),          \
    (mo, H, W, Co, m, t0, nt, bias, residual, relu, y))                                           \
  X(bs_winograd_dy, (const float *dy, int H, int W, int Co, size_t t0, int nt, float *g),        \
    (dy, H, W, Co, t0, nt, g))                                                                    \
  X(bs_winograd_dw_products, (const float *v, const float *g, int nt, int Ci, int Co, float *s), \
    (v, g, nt, Ci, Co, s))                                                                        \
  X(bs_center_columns, (const float *x, int m, size_t d, size_t ld, float *y, size_t ldy),        \
    (x, m, d, ld, y, ldy))                                                                        \
  X(bs_gram, (const float *x, int m, size_t d, size_t ld, float *K), (x, m, d, ld, K))            \
  X(bs_ucenter, (const float *K, int m, float *U, double *r), (K, m, U, r))                       \
  X(bs_hcenter, (const float *K, int m, float *C, double *r), (K, m, C, r))                       \
  X(bs_pack_upper, (const float *A, int m, float scale, float *out), (A, m, scale, out))          \
  X(bs_gram_sqdist, (const float *K, int m, float *D), (K, m, D))                                 \
  X(bs_exp_scaled, (const float *x, size_t n, float a, float *y), (x, n, a, y))                   \
  X(bs_dots_acc, (const float *a, int na, int lda, const float *b, int nb, int ldb, int k,        \
                  int upper, float *C, int ldc), (a, na, lda, b, nb, ldb, k, upper, C, ldc))      \
  X(bs_transpose, (const float *src, size_t rows, size_t cols, size_t lds, float *dst,           \
                   size_t ldd), (src, rows, cols, lds, dst, ldd))                               \
  X(bs_find_nonfinite, (const float *x, size_t n, size_t *first), (x, n, first))

// For each op: a function type NAME_t and the variants NAME_ref / NAME_avx2 / NAME_avx512 (an
// ISA without its own variant is absent from kernels.inc and falls back to the next lower one).
#define BS_DECLARE_OP(name, params, args)                                                        \
  typedef void name##_t params;                                                                  \
  name##_t name##_ref, name##_avx2, name##_avx512;
BS_OPS(BS_DECLARE_OP)
#undef BS_DECLARE_OP

// One variant per op, all of one ISA (with the fallbacks above): a context's kernels. Call
// through it: bs_context_kernels(ctx)->bs_relu(x, n, y).
typedef struct {
#define BS_KERNEL_FIELD(name, params, args) name##_t *name;
  BS_OPS(BS_KERNEL_FIELD)
#undef BS_KERNEL_FIELD
} bs_kernels;
// Fills *k with the variants of `isa`; BS_ERR_UNSUPPORTED (k untouched) if this CPU cannot
// run it.
bs_status bs_kernels_select(bs_isa isa, bs_kernels *k);

// The working memory of bs_conv3x3_direct and bs_conv3x3_direct_dw for an H x W x Ci image.
size_t bs_conv3x3_direct_scratch_floats(int H, int W, int Ci);

// The packed weights of bs_conv3x3_direct (one layout for every variant): w [Co][3][3][Ci] ->
// wp of bs_conv3x3_direct_packed_floats(Ci, Co) floats. Output channels rounded up to a
// multiple of 8 (zero weights past Co), in blocks of 16 (the last one 8 wide if need be), each
// block [ky][kx][ci][16 or 8]; see conv_direct_ref.c.
size_t bs_conv3x3_direct_packed_floats(int Ci, int Co);
void bs_conv3x3_direct_pack(const float *w, int Ci, int Co, float *wp);

// Winograd F(m x m, 3 x 3) weights (winograd_ref.c, one layout for every variant): w
// [Co][3][3][Ci] -> up of bs_winograd_packed_floats(m, Ci, Co) floats: U = G g G^T for each
// (co, ci) (computed in double), laid out [alpha^2][Co blocks][Ci][bw] with Co rounded up to a
// multiple of 8 (zero weights past Co) and cut into blocks of 16 (the last one 8 wide if need
// be), as bs_conv3x3_direct_pack does.
size_t bs_winograd_packed_floats(int m, int Ci, int Co);
void bs_winograd_pack(const float *w, int m, int Ci, int Co, float *up);
// The weight gradient from its transformed sums: s: [16][Ci][Co], the sum over tiles of
// v[k]^T g[k] (bs_winograd_input with m = 2, bs_winograd_dy) -> dw: [Co][3][3][Ci]
// (overwritten), dw = A'^T s A' (computed in double).
void bs_winograd_weight_grad(const float *s, int Ci, int Co, float *dw);

// The variant table built from kernels.inc, for tests and tools: one entry per (op, isa).
typedef struct {
  const char *op;   // e.g. "bs_relu"
  bs_isa isa;
  void *fn;         // a NAME_t*; cast back to the op's type
} bs_kernel_entry;
const bs_kernel_entry *bs_kernel_table(int *count);

// ---------------------------------------------------------------------------------------------
// Execution context: threads, kernel variants, convolution algorithm, scratch, profile.
// ---------------------------------------------------------------------------------------------
// A context is used by one thread at a time (a second thread entering its bs_parallel_for
// aborts with a message, as does a task calling bs_parallel_for on its own context). Any
// number of contexts may run at once, each on its own threads.
typedef struct bs_context bs_context;
// One thread of a context while it runs a task: its index and its scratch memory.
typedef struct bs_worker bs_worker;

#define BS_MAX_THREADS 64

// The threads a context gets when its creator has no better idea: BLOCKSCOPE_THREADS, else the
// online CPUs.
int bs_default_threads(void);

// A context that runs parallel sections on `threads` threads (the caller plus threads - 1
// workers it starts on first use; clamped to [1, BS_MAX_THREADS]), with the kernel variants of
// bs_default_isa(), the convolution algorithm BLOCKSCOPE_CONV names (default auto) and
// profiling as BLOCKSCOPE_PROFILE says (default off). NULL when out of memory.
bs_context *bs_context_create(int threads);
// Stops and joins its workers and frees its scratch. NULL is ignored.
void bs_context_destroy(bs_context *ctx);
int bs_context_threads(const bs_context *ctx);
bs_isa bs_context_isa(const bs_context *ctx);
// Uses the variants of `isa` from now on; BS_ERR_UNSUPPORTED if this CPU cannot run it.
bs_status bs_context_set_isa(bs_context *ctx, bs_isa isa);
const bs_kernels *bs_context_kernels(const bs_context *ctx);
// The calling thread's worker (worker 0): scratch for work outside parallel sections.
bs_worker *bs_context_caller(bs_context *ctx);

// Runs fn(arg, task, ntasks, worker) for task = 0..ntasks-1 on the context's threads and
// returns when all are done. Which thread runs which task is unspecified: results must depend
// on the task index only. `worker` is the running thread's (for scratch and kernels).
typedef void bs_task_fn(void *arg, int task, int ntasks, bs_worker *worker);
void bs_parallel_for(bs_context *ctx, int ntasks, bs_task_fn *fn, void *arg);

// Scratch memory, one buffer per (worker, owner): named by who uses it, so that two users on
// one thread never share a buffer. A buffer only grows and lives as long as its context.
typedef enum {
  BS_SCRATCH_CONV_COLUMNS,      // conv_ops.c: im2col of an input chunk
  BS_SCRATCH_CONV_DX_COLUMNS,   // conv_ops.c: the backward-data pass's columns
  BS_SCRATCH_CONV_DIRECT,       // conv_ops.c: bs_conv3x3_direct(_dw)'s working memory
  BS_SCRATCH_WINOGRAD_V,        // conv_winograd.c: transformed input tiles
  BS_SCRATCH_WINOGRAD_M,        // conv_winograd.c: their products (forward) or transformed dy
  BS_SCRATCH_GRAM_PANEL,        // gram_ops.c: a task's centred column panel
  BS_SCRATCH_DOTS_A,            // gram_ops.c bs_pairwise_dots: gathered chunks of a
  BS_SCRATCH_DOTS_B,            //   ... and of b
  BS_SCRATCH_DOTS_PRODUCT,      //   ... one chunk's products
  BS_SCRATCH_CHANNEL_PANEL,     // gram_channels.c: a task's transposed channels
  BS_SCRATCH_CHANNEL_GRAM,      // gram_channels.c: one channel's Gram
  BS_SCRATCH_TASK_PARTIALS,     // the CKA drivers' per-task partial results (caller only)
  BS_SCRATCH_OWNER_COUNT
} bs_scratch_owner;
// A 64-byte aligned buffer of at least `floats` floats, valid until the worker's next call
// with the same owner; NULL when out of memory.
float *bs_worker_scratch(bs_worker *w, bs_scratch_owner owner, size_t floats);
int bs_worker_index(const bs_worker *w);
const bs_kernels *bs_worker_kernels(const bs_worker *w);

// ---------------------------------------------------------------------------------------------
// Layer ops (threaded). All tensors NHWC.
// ---------------------------------------------------------------------------------------------
typedef struct {
  int N, H, W, Ci;   // input
  int Co, KH, KW;    // kernel (KH, KW in {1, 3}; any odd size works)
  int stride, pad;
  int OH, OW;        // output, filled by bs_conv_shape()
} bs_conv_shape;

// Fills OH/OW; BS_ERR_INVALID when the shape is invalid.
bs_status bs_conv_shape_init(bs_conv_shape *s);

// Forward: x [N][H][W][Ci], w [Co][KH][KW][Ci], bias [Co] or NULL -> y [N][OH][OW][Co].
void bs_conv_forward(bs_context *ctx, const bs_conv_shape *s, const float *x, const float *w,
                     const float *bias, float *y);
// Convolution algorithm (a context's). GEMM: im2col + single-threaded cblas_sgemm per image
// chunk, every shape. DIRECT: for 3x3 pad-1 stride-1/2 convolutions, bs_conv3x3_direct for the
// forward pass and (stride 1 only) the backward-data pass, bs_conv3x3_direct_dw for the
// weight gradient; GEMM for everything else. WINOGRAD: for 3x3 pad-1 stride-1 convolutions,
// F(m x m, 3 x 3) for the forward and backward-data passes and F(3 x 3, 2 x 2) for the weight
// gradient (conv_winograd.c); AUTO's choice for everything else. AUTO (default): per pass and
// layer shape, whichever was measured fastest (conv_ops.c; docs/PERFORMANCE.md, "Direct
// convolution thresholds" and "Winograd thresholds").
// BLOCKSCOPE_CONV=auto|gemm|direct|winograd sets the value new contexts start with (read once;
// anything else means auto, with a warning on stderr).
enum {
  BS_CONV_AUTO = 0,
  BS_CONV_GEMM = 1,
  BS_CONV_DIRECT = 2,
  BS_CONV_WINOGRAD = 3,
  BS_CONV_ALGORITHM_COUNT = 4
};
// The algorithm BLOCKSCOPE_CONV names (read once; default auto): what new contexts start with.
int bs_default_conv_algorithm(void);
// Sets the context's algorithm; out-of-range values are ignored.
void bs_context_set_conv_algorithm(bs_context *ctx, int algorithm);
int bs_context_conv_algorithm(const bs_context *ctx);
const char *bs_conv_algorithm_name(int algorithm);   // "auto", "gemm", "direct", "winograd"
// The Winograd tile size m of F(m x m, 3 x 3) for the forward and backward-data passes: 2 or 4
// for every layer, or 0 (the default) for the size measured faster for each layer shape
// (conv_ops.c, winograd_tile). Other values are ignored. For benchmarks and tests.
void bs_context_set_winograd_tile(bs_context *ctx, int m);
int bs_context_winograd_tile(const bs_context *ctx);

// The passes of a convolution, and which algorithm runs `pass` of s on ctx: BS_CONV_GEMM,
// BS_CONV_DIRECT or BS_CONV_WINOGRAD (with the tile size m of F(m x m, 3 x 3) in *tile, 2 for
// the weight gradient's F(3 x 3, 2 x 2); 0 for the others; tile may be NULL). For tests and
// benchmarks.
enum { BS_CONV_PASS_FORWARD = 0, BS_CONV_PASS_DATA = 1, BS_CONV_PASS_WEIGHTS = 2 };
int bs_conv_pass_algorithm(const bs_context *ctx, const bs_conv_shape *s, int pass, int *tile);

// Backward. dy [N][OH][OW][Co].
//  dw [Co][KH][KW][Ci] (overwritten), dbias [Co] (overwritten, may be NULL),
//  dx [N][H][W][Ci] (overwritten; NULL to skip, e.g. for the first layer).
void bs_conv_backward(bs_context *ctx, const bs_conv_shape *s, const float *x, const float *w,
                      const float *dy,
                      float *dw, float *dbias, float *dx);

// Inference: y = BN(conv(x, w)) (+ residual [N][OH][OW][Co] if not NULL), then max(0, .) if
// relu, with the BN's running statistics folded into the convolution (w scaled per output
// channel by gamma/sqrt(var + eps), the shift as its bias; conv_fused.c). Where the convolution
// runs Winograd, the residual and the ReLU are applied in its output transform; otherwise in
// one pass after it. residual may alias y. Equal to bs_conv_forward + bs_bn_forward_infer (+
// bs_op_add(_relu)) up to rounding: the folded weights round once more.
void bs_conv_bn_forward_infer(bs_context *ctx, const bs_conv_shape *s, const float *x,
                              const float *w, const float *gamma, const float *beta,
                              const float *run_mean, const float *run_var, float eps,
                              const float *residual, int relu, float *y);

// Batch norm, training mode, over rows = N*H*W of C channels.
// Computes batch mean/var (biased var for normalising), writes y = gamma*(x-mean)*invstd+beta
// (ReLU'd if relu), stores mean/invstd [C] for backward, and updates the running statistics:
// run = (1-momentum)*run + momentum*batch (running var uses the unbiased batch variance).
void bs_bn_forward_train(bs_context *ctx, const float *x, size_t rows, int C, const float *gamma,
                         const float *beta, float eps, float momentum, int relu,
                         float *run_mean, float *run_var, float *mean, float *invstd, float *y);
// Batch norm, inference mode: y = gamma*(x-run_mean)/sqrt(run_var+eps)+beta (ReLU'd if relu).
void bs_bn_forward_infer(bs_context *ctx, const float *x, size_t rows, int C, const float *gamma,
                         const float *beta, const float *run_mean, const float *run_var,
                         float eps, int relu, float *y);
// Batch norm backward (training-mode statistics). dy [rows][C], x the BN input.
// dgamma, dbeta [C] overwritten; dx [rows][C] overwritten (may alias dy).
void bs_bn_backward(bs_context *ctx, const float *dy, const float *x, size_t rows, int C,
                    const float *gamma,
                    const float *mean, const float *invstd, float *dgamma, float *dbeta,
                    float *dx);

// Threaded elementwise helpers over n floats.
void bs_op_relu(bs_context *ctx, const float *x, size_t n, float *y);
void bs_op_relu_backward(bs_context *ctx, const float *y, const float *dy, size_t n, float *dx);
void bs_op_add_relu(bs_context *ctx, const float *a, const float *b, size_t n, float *y);
void bs_op_add(bs_context *ctx, const float *a, const float *b, size_t n, float *y);

// Linear: x [N][In], w [Out][In], b [Out] -> y [N][Out].
void bs_linear_forward(const float *x, int N, int In, int Out, const float *w, const float *b,
                       float *y);
// dy [N][Out] -> dw [Out][In], db [Out] (overwritten), dx [N][In] (overwritten, may be NULL).
void bs_linear_backward(const float *x, int N, int In, int Out, const float *w, const float *dy,
                        float *dw, float *db, float *dx);

// A batch of dataset images into a model input, threaded: image i is base[positions[i]]
// ([H][W][C] u8) through bs_augment with (pad, oy[i], ox[i], flip[i]); oy/ox/flip may be NULL
// (all zero: with pad 0 the plain u8 -> [0, 1] conversion). dst: [n][H][W][C] f32.
void bs_augment_batch(bs_context *ctx, const uint8_t *base, const int64_t *positions, int n, int H,
                      int W, int C,
                      int pad, const int32_t *oy, const int32_t *ox, const int32_t *flip,
                      float *dst);

// Softmax cross-entropy, mean over the batch.
// logits [N][K], labels [N] -> probs [N][K] (may be NULL), dlogits [N][K] (may be NULL:
// (probs - onehot)/N), returns the mean loss; *correct (may be NULL) = number of argmax hits.
double bs_softmax_xent(const float *logits, const int32_t *labels, int N, int K, float *probs,
                       float *dlogits, int *correct);

// ---------------------------------------------------------------------------------------------
// CKA drivers (threaded; gram_ops.c). Results depend on the context's thread count, not on
// scheduling.
// ---------------------------------------------------------------------------------------------
// Gram matrix of column-centred features: x: [m][d] -> K: [m][m] = (x - 1 mean^T)(...)^T =
// H (x x^T) H, full symmetric. Centring before the product keeps fp32 accurate (the raw Gram
// of ReLU features is dominated by the mean; centring it afterwards cancels catastrophically).
// mean_sq (may be NULL) = sum over columns of the squared column mean, so that the raw energy
// sum x^2 = m * mean_sq + trace(K) tells a constant representation from a varying one.
// BS_ERR_NO_MEMORY when out of memory.
bs_status bs_gram_centered(bs_context *ctx, const float *x, int m, size_t d, float *K,
                           double *mean_sq);
// Two Grams for the price of one, from per-channel centred Grams Kc[c] of NHWC activations
// (gram_channels.c): x: [m][positions][channels] -> K = sum_c Kc[c] (= bs_gram_centered's K)
// and Kw = sum_c weights[c] Kc[c]; with weights a_c^2, Kw is the centred Gram of the
// per-channel affine map a_c x + b_c (an inference BatchNorm: centring removes b_c). K, Kw:
// [m][m] full symmetric (Kw and weights may be NULL). mean_sums: [channels][2] = the sum over
// positions of channel c's column means and of their squares. BS_ERR_INVALID (m, channels or
// positions not positive), BS_ERR_NO_MEMORY.
bs_status bs_gram_centered_channels(bs_context *ctx, const float *x, int m, size_t positions,
                              int channels,
                              const float *weights, float *K, float *Kw, double *mean_sums);
// The same for NCHW activations (a PyTorch conv's output), x: [m][channels][positions]: each
// channel is centred straight from its rows, with no transpose.
bs_status bs_gram_centered_channels_nchw(bs_context *ctx, const float *x, int m, size_t positions,
                                         int channels, const float *weights, float *K, float *Kw,
                                         double *mean_sums);
// All pairwise dot products of vectors of length len: out[i][j] = <a[i], b[j]>, fp32 products
// over chunks of 4096 accumulated in double. b == NULL: a against itself (out: [na][na],
// symmetric, computed once per pair). out: [na][nb or na]. BS_ERR_NO_MEMORY.
bs_status bs_pairwise_dots(bs_context *ctx, const float *const *a, int na, const float *const *b, int nb,
                     size_t len,
                     double *out);
// Largest eigenvalue and its unit eigenvector of a symmetric K: [m][m] (LAPACKE_ssyevr).
// u: [m]. BS_ERR_NO_MEMORY, BS_ERR_LAPACK (*lapack_info, if not NULL, gets LAPACK's info),
// BS_ERR_NO_SOLUTION.
bs_status bs_sym_top_eigen(const float *K, int m, float *lambda, float *u, int *lapack_info);
// Largest singular value and left singular vector of x: [n][d] (LAPACKE_sgesvdx). u: [n].
// Failures as bs_sym_top_eigen's.
bs_status bs_top_singular(const float *x, int n, size_t d, float *s1, float *u, int *lapack_info);

// OpenBLAS kernel choice (blas_core.c). Its name ("SkylakeX", "Haswell", "Prescott", ...);
// the OPENBLAS_CORETYPE this CPU deserves when OpenBLAS chose a weaker one (an unrecognised,
// newer CPU), else NULL (also when OPENBLAS_CORETYPE is set); and, for an executable's first
// line, a re-exec of /proc/self/exe with that variable set (at most once; returns only when
// nothing was to be done, 0, or exec failed, -1).
const char *bs_blas_core_name(void);
const char *bs_blas_core_suggestion(void);
int bs_blas_reexec_if_untuned(char *const *argv);

// A context's per-op wall-clock accounting (on from the start with BLOCKSCOPE_PROFILE=1).
// enable(1) resets the counters; read(op) gives op's name, seconds and calls, or -1 past the
// last op.
void bs_context_profile_enable(bs_context *ctx, int on);
int bs_context_profile_read(const bs_context *ctx, int op, const char **name, double *seconds,
                            long *calls);

// Throughput of cblas_sgemm as the ops use it (each of the context's threads its own
// single-threaded n^3 sgemm, `reps` times, all at once), in GFLOP/s over all of them.
double bs_sgemm_probe_gflops(bs_context *ctx, int n, int reps);
// The fp32 FMA peak of the context's threads (fma_peak_probe.c): each runs `iterations` rounds
// of 12 independent FMAs on vectors of the context's ISA, all at once; GFLOP/s over all of them
// (an FMA counts as 2 FLOPs). 10^8 iterations take ~0.5 s per thread on a 3 GHz AVX2 core.
double bs_fma_peak_probe_gflops(bs_context *ctx, long iterations);

#ifdef __cplusplus
}
#endif
#endif
