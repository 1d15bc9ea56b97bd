#ifndef BLOCKSCOPE_PROFILE_H
#define BLOCKSCOPE_PROFILE_H
#include "ckernels.h"
#include <time.h>

enum { BS_PROF_CONV_FWD, BS_PROF_CONV_BWD, BS_PROF_BN_FWD, BS_PROF_BN_BWD, BS_PROF_ELTWISE,
       BS_PROF_HEAD, BS_PROF_COUNT };
extern int bs_profile_on;
extern double bs_profile_seconds[BS_PROF_COUNT];
extern long bs_profile_calls[BS_PROF_COUNT];
int bs_profile_enabled(void);

static inline double bs_prof_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
// Usage: BS_PROF_BEGIN; ...; BS_PROF_END(BS_PROF_CONV_FWD);
#define BS_PROF_BEGIN const double bs_prof_t0 = bs_profile_enabled() ? bs_prof_now() : 0.0
#define BS_PROF_END(op)                                                                         \
  do {                                                                                          \
    if (bs_profile_on > 0) {                                                                    \
      bs_profile_seconds[op] += bs_prof_now() - bs_prof_t0;                                     \
      bs_profile_calls[op]++;                                                                   \
    }                                                                                           \
  } while (0)
#endif
