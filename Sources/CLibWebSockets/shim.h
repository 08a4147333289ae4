// The smallest shim over libwebsockets that Swift needs: what does not import as-is.
#ifndef COLLAB_CLIBWEBSOCKETS_SHIM_H
#define COLLAB_CLIBWEBSOCKETS_SHIM_H

// lws_config.h turns on _DEBUG unless NDEBUG is set; Debian's .so does not export the debug-only
// functions that _DEBUG declares, so keep them out of sight.
#ifndef NDEBUG
#define NDEBUG 1
#define COLLAB_UNDEF_NDEBUG 1
#endif
#include <libwebsockets.h>
#ifdef COLLAB_UNDEF_NDEBUG
#undef NDEBUG
#undef COLLAB_UNDEF_NDEBUG
#endif

// LWS_PRE is an expression macro; Swift imports only plain literals.
enum { collab_lws_pre = LWS_PRE };

// lwsl_* are variadic macros; route one preformatted line through the library's logger.
static inline void collab_lws_log(int level, const char *line) {
    _lws_log(level, "%s\n", line);
}

#endif
