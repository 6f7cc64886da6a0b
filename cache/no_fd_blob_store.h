#pragma once
// A blob store seen without its native descriptors: every native_fd() of its
// readers and spools answers nullopt, so every caller streams through
// read_at(), as it must for a store whose bytes are not in local files (an
// object store). Behind `"sendfile": false` (for file systems where sendfile(2)
// misbehaves), and in tests, so the streaming path runs everywhere the
// zero-copy one does.
#include "cache/blob_store.h"

namespace regcache::cache {

// Wraps `inner` (kept alive by the result); everything else passes through.
BlobStorePtr without_native_fds(BlobStorePtr inner);

}  // namespace regcache::cache
