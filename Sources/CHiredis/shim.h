// hiredis imports cleanly; the command API used from Swift is the *Argv family (not variadic).
#ifndef COLLAB_CHIREDIS_SHIM_H
#define COLLAB_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#endif
