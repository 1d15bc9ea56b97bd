// Winograd F(m x m, 3 x 3) convolution (Lavin & Gray 2016): the transform matrices, the weight
// packing and the weight-gradient finish shared by every variant, and the scalar references of
// the four tile kernels (input transform, products, output transform, dy transform).
//
// One 3x3 stride-1 "same" convolution of an image becomes, per m x m output tile, the element-
// wise product of the alpha x alpha transformed input window V = B^T d B and the transformed
// kernel U = G g G^T (alpha = m + 2), summed over input channels, and the output A^T M A. The
// sum over channels of each of the alpha^2 products is a small matrix product (tiles x Ci times
// Ci x Co), which is where the multiplications go: alpha^2 / m^2 per output and channel pair
// instead of 9 (16/4 = 4 for F(2x2), 36/16 = 2.25 for F(4x4)).
//
// The weight gradient uses F(3 x 3, 2 x 2) (the roles of kernel and output exchanged): the
// 4 x 4 window of the input is transformed by the same B^T as F(2x2, 3x3)'s forward (the same
// windows, so bs_winograd_input serves both), the 2 x 2 tile of dy by G' (4 x 2), and the sum
// over tiles of their products goes back to 3 x 3 through A' (4 x 3).
//
// The references compute each transform as the two matrix products, in float, term by term in
// index order (terms with a zero coefficient included: they add +-0).
#include "ckernels.h"
#include "winograd.h"
#include <string.h>

// F(2x2, 3x3): points 0, 1, -1, infinity.
const float bs_winograd_bt2[4 * 4] = {1, 0, -1, 0,   //
                                      0, 1, 1,  0,   //
                                      0, -1, 1, 0,   //
                                      0, 1, 0,  -1};
static const double g2[4 * 3] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};
const float bs_winograd_at2[2 * 4] = {1, 1, 1, 0,   //
                                      0, 1, -1, -1};
// F(4x4, 3x3): points 0, 1, -1, 2, -2, infinity.
const float bs_winograd_bt4[6 * 6] = {4, 0,  -5, 0,  1, 0,   //
                                      0, -4, -4, 1,  1, 0,   //
                                      0, 4,  -4, -1, 1, 0,   //
                                      0, -2, -1, 2,  1, 0,   //
                                      0, 2,  -1, -2, 1, 0,   //
                                      0, 4,  0,  -5, 0, 1};
static const double g4[6 * 3] = {1.0 / 4,   0,          0,         //
                                 -1.0 / 6,  -1.0 / 6,   -1.0 / 6,  //
                                 -1.0 / 6,  1.0 / 6,    -1.0 / 6,  //
                                 1.0 / 24,  1.0 / 12,   1.0 / 6,   //
                                 1.0 / 24,  -1.0 / 12,  1.0 / 6,   //
                                 0,         0,          1};
const float bs_winograd_at4[4 * 6] = {1, 1, 1,  1, 1,  0,   //
                                      0, 1, -1, 2, -2, 0,   //
                                      0, 1, 1,  4, 4,  0,   //
                                      0, 1, -1, 8, -8, 1};
// F(3x3, 2x2), with the input transform bs_winograd_bt2 (its last row is minus the usual one;
// G's last row is negated to match).
const float bs_winograd_gw[4 * 2] = {1, 0, 0.5f, 0.5f, 0.5f, -0.5f, 0, -1};
static const double aw[4 * 3] = {1, 0, 0, 1, 1, 1, 1, -1, 1, 0, 0, 1};   // A' (4 x 3)

size_t bs_winograd_packed_floats(int m, int Ci, int Co) {
  const size_t a = (size_t)m + 2;
  return a * a * (size_t)Ci * (size_t)((Co + 7) / 8 * 8);
}

void bs_winograd_pack(const float *w, int m, int Ci, int Co, float *up) {
  const int a = m + 2, Co8 = (Co + 7) / 8 * 8;
  const double *G = m == 2 ? g2 : g4;
  memset(up, 0, bs_winograd_packed_floats(m, Ci, Co) * sizeof(float));
  for (int co = 0; co < Co; co++)
    for (int ci = 0; ci < Ci; ci++) {
      double g[9], t[6 * 3];
      for (int k = 0; k < 9; k++) g[k] = w[((size_t)co * 9 + k) * Ci + ci];
      for (int i = 0; i < a; i++)   // t = G g  (a x 3)
        for (int j = 0; j < 3; j++)
          t[i * 3 + j] = G[i * 3] * g[j] + G[i * 3 + 1] * g[3 + j] + G[i * 3 + 2] * g[6 + j];
      const int b0 = co / 16 * 16, bw = Co8 - b0 < 16 ? Co8 - b0 : 16;
      for (int i = 0; i < a; i++)   // U = t G^T  (a x a)
        for (int j = 0; j < a; j++) {
          const double u = t[i * 3] * G[j * 3] + t[i * 3 + 1] * G[j * 3 + 1] +
                           t[i * 3 + 2] * G[j * 3 + 2];
          up[(size_t)(i * a + j) * Ci * Co8 + (size_t)b0 * Ci + (size_t)ci * bw + (co - b0)] =
              (float)u;
        }
    }
}

void bs_winograd_weight_grad(const float *s, int Ci, int Co, float *dw) {
  for (int co = 0; co < Co; co++)
    for (int ci = 0; ci < Ci; ci++) {
      double t[3 * 4];   // t = A'^T S  (3 x 4)
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
          double acc = 0;
          for (int k = 0; k < 4; k++)
            acc += aw[k * 3 + i] * (double)s[((size_t)(k * 4 + j) * Ci + ci) * Co + co];
          t[i * 4 + j] = acc;
        }
      for (int i = 0; i < 3; i++)   // dw = t A'  (3 x 3)
        for (int j = 0; j < 3; j++) {
          double acc = 0;
          for (int k = 0; k < 4; k++) acc += t[i * 4 + k] * aw[k * 3 + j];
          dw[(((size_t)co * 3 + i) * 3 + j) * Ci + ci] = (float)acc;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar references
// ---------------------------------------------------------------------------------------------

void bs_winograd_input_ref(const float *x, int H, int W, int C, int m, size_t t0, int nt,
                           float *v) {
  const int a = m + 2;
  const float *BT = m == 2 ? bs_winograd_bt2 : bs_winograd_bt4;
  const bs_winograd_grid g = bs_winograd_grid_of(H, W, m);
  for (int t = 0; t < nt; t++) {
    const bs_winograd_tile tl = bs_winograd_tile_at(&g, t0 + (size_t)t);
    const float *img = x + tl.image * (size_t)H * W * C;
    for (int c = 0; c < C; c++) {
      float d[6 * 6], u[6 * 6];
      for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++) {
          const int iy = tl.y0 - 1 + i, ix = tl.x0 - 1 + j;
          d[i * a + j] = iy >= 0 && iy < H && ix >= 0 && ix < W
                             ? img[((size_t)iy * W + ix) * C + c]
                             : 0.0f;
        }
      for (int i = 0; i < a; i++)   // u = B^T d
        for (int j = 0; j < a; j++) {
          float acc = 0;
          for (int k = 0; k < a; k++) acc += BT[i * a + k] * d[k * a + j];
          u[i * a + j] = acc;
        }
      for (int i = 0; i < a; i++)   // v = u B
        for (int j = 0; j < a; j++) {
          float acc = 0;
          for (int k = 0; k < a; k++) acc += u[i * a + k] * BT[j * a + k];
          v[((size_t)(i * a + j) * nt + t) * C + c] = acc;
        }
    }
  }
}

void bs_winograd_products_ref(const float *v, int nt, int Ci, int Co, int alpha2,
                              const float *up, float *mo) {
  const int Co8 = (Co + 7) / 8 * 8;
  for (int k = 0; k < alpha2; k++) {
    const float *U = up + (size_t)k * Ci * Co8;
    for (int t = 0; t < nt; t++)
      for (int co = 0; co < Co; co++) {
        const int b0 = co / 16 * 16, bw = Co8 - b0 < 16 ? Co8 - b0 : 16;
        const float *u = U + (size_t)b0 * Ci + (co - b0);
        const float *vt = v + ((size_t)k * nt + t) * Ci;
        float acc = 0;
        for (int ci = 0; ci < Ci; ci++) acc += vt[ci] * u[(size_t)ci * bw];
        mo[((size_t)k * nt + t) * Co + co] = acc;
      }
  }
}

void bs_winograd_output_ref(const float *mo, int H, int W, int Co, int m, size_t t0, int nt,
                            const float *bias, const float *residual, int relu, float *y) {
  const int a = m + 2;
  const float *AT = m == 2 ? bs_winograd_at2 : bs_winograd_at4;
  const bs_winograd_grid g = bs_winograd_grid_of(H, W, m);
  for (int t = 0; t < nt; t++) {
    const bs_winograd_tile tl = bs_winograd_tile_at(&g, t0 + (size_t)t);
    float *img = y + tl.image * (size_t)H * W * Co;
    for (int co = 0; co < Co; co++) {
      float u[4 * 6];
      for (int i = 0; i < m; i++)   // u = A^T M
        for (int j = 0; j < a; j++) {
          float acc = 0;
          for (int k = 0; k < a; k++) acc += AT[i * a + k] * mo[((size_t)(k * a + j) * nt + t) * Co + co];
          u[i * a + j] = acc;
        }
      for (int i = 0; i < m; i++)   // y = u A
        for (int j = 0; j < m; j++) {
          const int oy = tl.y0 + i, ox = tl.x0 + j;
          if (oy >= H || ox >= W) continue;
          float acc = 0;
          for (int k = 0; k < a; k++) acc += u[i * a + k] * AT[j * a + k];
          const size_t at = tl.image * (size_t)H * W * Co + ((size_t)oy * W + ox) * Co + co;
          if (bias) acc += bias[co];
          if (residual) acc += residual[at];
          if (relu && !(acc > 0.0f)) acc = 0.0f;   // NaN -> 0, as bs_relu
          img[((size_t)oy * W + ox) * Co + co] = acc;
        }
    }
  }
}

void bs_winograd_dy_ref(const float *dy, int H, int W, int Co, size_t t0, int nt, float *gt) {
  const bs_winograd_grid g = bs_winograd_grid_of(H, W, 2);
  for (int t = 0; t < nt; t++) {
    const bs_winograd_tile tl = bs_winograd_tile_at(&g, t0 + (size_t)t);
    const float *img = dy + tl.image * (size_t)H * W * Co;
    for (int co = 0; co < Co; co++) {
      float d[4], u[4 * 2];
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
          const int oy = tl.y0 + i, ox = tl.x0 + j;
          d[i * 2 + j] = oy < H && ox < W ? img[((size_t)oy * W + ox) * Co + co] : 0.0f;
        }
      for (int i = 0; i < 4; i++)   // u = G' d  (4 x 2)
        for (int j = 0; j < 2; j++)
          u[i * 2 + j] = bs_winograd_gw[i * 2] * d[j] + bs_winograd_gw[i * 2 + 1] * d[2 + j];
      for (int i = 0; i < 4; i++)   // g = u G'^T  (4 x 4)
        for (int j = 0; j < 4; j++)
          gt[((size_t)(i * 4 + j) * nt + t) * Co + co] =
              u[i * 2] * bs_winograd_gw[j * 2] + u[i * 2 + 1] * bs_winograd_gw[j * 2 + 1];
    }
  }
}

void bs_winograd_dw_products_ref(const float *v, const float *g, int nt, int Ci, int Co,
                                 float *s) {
  for (int k = 0; k < 16; k++)
    for (int ci = 0; ci < Ci; ci++)
      for (int co = 0; co < Co; co++) {
        float acc = s[((size_t)k * Ci + ci) * Co + co];
        for (int t = 0; t < nt; t++)
          acc += v[((size_t)k * nt + t) * Ci + ci] * g[((size_t)k * nt + t) * Co + co];
        s[((size_t)k * Ci + ci) * Co + co] = acc;
      }
}
