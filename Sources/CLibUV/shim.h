// libuv from Debian's libuv1-dev (pkg-config: libuv).
#include <uv.h>
