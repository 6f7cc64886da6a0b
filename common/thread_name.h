#pragma once
// Names the calling thread as top -H, ps -L and perf show it (15 characters at most),
// so that an admin or a profile can tell connection, fill and hash threads apart.
#include <pthread.h>

namespace regcache {

inline void name_this_thread(const char* name) { ::pthread_setname_np(::pthread_self(), name); }

}  // namespace regcache
