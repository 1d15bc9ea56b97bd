// Optional per-op wall-clock accounting of the layer ops (BLOCKSCOPE_PROFILE=1 or
// bs_profile_enable): where a training step spends its time, without a sampling profiler.
#include "profile.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bs_profile_on = -1;
double bs_profile_seconds[BS_PROF_COUNT];
long bs_profile_calls[BS_PROF_COUNT];

static const char *names[BS_PROF_COUNT] = {"conv forward",  "conv backward", "bn forward",
                                           "bn backward",   "elementwise",   "linear+softmax"};

void bs_profile_enable(int on) {
  bs_profile_on = on;
  memset(bs_profile_seconds, 0, sizeof bs_profile_seconds);
  memset(bs_profile_calls, 0, sizeof bs_profile_calls);
}

int bs_profile_enabled(void) {
  if (bs_profile_on < 0) {
    const char *e = getenv("BLOCKSCOPE_PROFILE");
    bs_profile_on = e && *e && strcmp(e, "0") != 0;
  }
  return bs_profile_on;
}

int bs_profile_read(int op, const char **name, double *seconds, long *calls) {
  if (op < 0 || op >= BS_PROF_COUNT) return -1;
  *name = names[op];
  *seconds = bs_profile_seconds[op];
  *calls = bs_profile_calls[op];
  return 0;
}
