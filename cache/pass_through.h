#pragma once
// A blob streamed from the upstream to one client without being stored: what
// a fill becomes when the store cannot keep it (nginx's "cannot cache, pass
// it on"). Either the admission check refused the fill up front (the blob does
// not fit), or the store failed in the middle of it (ENOSPC, EDQUOT, EIO).
//
// Every client gets its own upstream stream: a shared in-memory stream would
// have to hold bytes for its slowest reader (unbounded), and the spool is
// exactly what we could not write. Each stream is hashed on its own, so the
// client's bytes are verified whichever way they came.
//
// Resuming: a client that already received bytes [0, prefix) from a failed
// fill's spool continues from the upstream. Its prefix is hashed from the
// spool (exactly the bytes it got), the upstream's copy of those bytes is read
// and skipped, and the digest covers what the client received as a whole.
//
// The caller sends what read() returns but must hold back the blob's final
// byte (or its range's) until verified() is true; when it is false, the only
// honest answer is to cut the connection.
#include <cstdint>
#include <memory>
#include <optional>

#include "cache/blob_store.h"
#include "common/digest.h"
#include "upstream/client.h"

namespace regcache::cache {

class PassThrough {
 public:
  // `body`: the upstream's 200 for `digest` announcing `size` bytes. `client`
  // keeps the upstream alive while the stream is read. Bytes [0, prefix) are
  // hashed from `prefix_source` (ignored when prefix is 0; read only here).
  PassThrough(std::shared_ptr<upstream::Client> client, std::unique_ptr<upstream::BodyStream> body, Digest digest,
              std::uint64_t size, BlobSource* prefix_source, std::uint64_t prefix);
  PassThrough(const PassThrough&) = delete;
  PassThrough& operator=(const PassThrough&) = delete;

  std::uint64_t size() const { return size_; }
  // The blob offset of the next byte read() returns.
  std::uint64_t offset() const { return offset_; }
  // The next bytes of the blob; 0 at its end. Throws RegistryError(Unavailable)
  // when the upstream breaks off, or sends more or fewer than size() bytes.
  std::size_t read(char* buf, std::size_t n);
  // After read() returned 0: the blob as the client received it hashes to the digest.
  bool verified();

 private:
  std::shared_ptr<upstream::Client> client_;
  std::unique_ptr<upstream::BodyStream> body_;
  Digest digest_;
  std::uint64_t size_;
  std::uint64_t offset_ = 0;       // blob offset the caller has been given up to
  std::uint64_t upstream_at_ = 0;  // upstream body bytes read so far (the skipped prefix included)
  DigestHasher hasher_;
  bool ended_ = false;
  std::optional<bool> verdict_;
};

}  // namespace regcache::cache
