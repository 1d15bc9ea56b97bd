// libpng from Debian's libpng-dev (pkg-config: libpng).
#include <png.h>
