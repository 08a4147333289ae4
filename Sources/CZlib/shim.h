// zlib reads the gzip-compressed editing traces. inflateInit2 is a macro: expose it as a function.
#ifndef COLLAB_CZLIB_SHIM_H
#define COLLAB_CZLIB_SHIM_H
#include <zlib.h>
static inline int collab_inflate_init_gzip(z_streamp strm) {
    return inflateInit2(strm, 16 + MAX_WBITS); // 16: expect a gzip header
}
#endif
