#pragma once
// One upstream transfer of one blob into the store, shared by every request for
// that digest while it runs (single-flight, read-while-write).
//
// A fill's states, each entered at most once and in this order:
//   Connecting  asking the upstream; no bytes yet
//   Streaming   the upstream answered 200; bytes land in the spool as they arrive
//   Committed   all bytes arrived, the digest matched, the blob and its rows are stored
//   Failed      the upstream refused, broke off, or sent bytes with another digest;
//               nothing was stored. (Reachable from Connecting and Streaming.)
//               A fill that failed only on the store's side (not admitted: the
//               blob does not fit; or ENOSPC/EIO while spooling) says so with
//               passes_through(): the upstream is fine, and each reader goes on
//               with a pass-through of its own (cache/pass_through.h) from where
//               it is, reading what it already sent from the spool.
//
// Readers stream from the spool (a BlobSource the store's writer gives: a local
// file for the local store, anything with read_at() for another) at their own pace. A reader must never hand
// a client the blob's final byte before the fill is verified (Committed, or
// verified() first where the store's commit is slow: an upload to S3): that is
// what keeps a wrong or short body from ever looking complete.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache/blob_store.h"
#include "common/digest.h"
#include "common/error.h"

namespace regcache::cache {

class BlobFill {
 public:
  enum class State { Connecting, Streaming, Committed, Failed };

  explicit BlobFill(Digest digest) : digest_(std::move(digest)) {}
  const Digest& digest() const { return digest_; }

  // Blocks until the upstream answered. Returns the blob's size when the
  // upstream announced it; throws the fill's RegistryError when it failed first.
  std::optional<std::uint64_t> wait_started();

  struct Progress {
    std::uint64_t spooled;  // bytes in the spool so far
    State state;
    // The whole spool hashed to the digest: Committed, or verified() before a
    // slow commit. Stays true if the commit then fails (the spool stays readable).
    bool verified = false;
  };
  // Blocks until more than `offset` bytes are spooled or the fill has ended.
  Progress wait_beyond(std::uint64_t offset);
  Progress progress();
  // Blocks until the fill is Committed or Failed.
  Progress wait_ended();
  // Blocks until the fill is verified, Committed or Failed.
  Progress wait_verified();

  // The spool's bytes (set once Streaming; nullptr before, and for a fill that
  // failed before it spooled). A reader keeps the pointer it got.
  BlobSourcePtr spool() const;
  // Why the fill failed (empty unless Failed).
  std::string failure() const;
  // Failed on the store's side only: readers continue from the upstream.
  bool passes_through() const;
  // The size the upstream announced (once Streaming; status page).
  std::optional<std::uint64_t> expected_size() const { std::lock_guard lock(mutex_); return size_; }

  // --- for the fill's own thread ---
  // `spool_owner` (the writer) lives for as long as readers hold the fill.
  void started(BlobSourcePtr spool, std::optional<std::uint64_t> size, std::shared_ptr<void> spool_owner);
  void spooled(std::uint64_t total);
  // All bytes spooled and hashed to the digest, before a slow commit():
  // readers may send the final byte.
  void verified();
  void committed();
  void failed(const RegistryError& error);
  // The store cannot keep this blob (`why`); the upstream answered 200. The
  // spool (if started) stays readable for as long as readers hold the fill.
  void not_stored(const RegistryError& why);

 private:
  Progress progress_locked() const;  // mutex_ held

  Digest digest_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  State state_ = State::Connecting;
  BlobSourcePtr spool_;
  std::shared_ptr<void> spool_owner_;
  std::optional<std::uint64_t> size_;
  std::uint64_t spooled_ = 0;
  bool verified_ = false;
  std::optional<RegistryError> error_;
  bool not_stored_ = false;
};
using BlobFillPtr = std::shared_ptr<BlobFill>;

// What a fill is shared by: the upstream namespace it comes from and the digest.
// Two upstreams' fills of one digest never meet: a slow or hostile upstream's
// bytes only ever reach clients that asked that upstream.
struct FillKey {
  std::string ns;
  Digest digest;
  friend bool operator<(const FillKey& a, const FillKey& b) {
    return a.ns != b.ns ? a.ns < b.ns : a.digest < b.digest;
  }
};

// Starts fills and lets later requests join a running one. Each fill runs on its
// own thread, so a client that goes away never cancels it; it ends by itself
// (upstream timeouts bound it). Destroying the coordinator waits for running fills.
class FillCoordinator {
 public:
  // The transfer itself: given the fill to report to, fetch, spool, commit.
  // It must end by calling committed() or failed() on the fill.
  using Transfer = std::function<void(BlobFill&)>;

  FillCoordinator() = default;
  ~FillCoordinator();
  FillCoordinator(const FillCoordinator&) = delete;
  FillCoordinator& operator=(const FillCoordinator&) = delete;

  // Joins the running fill for `key` (same namespace and digest), or starts
  // `transfer` as a new one. `started` tells the caller which happened.
  BlobFillPtr join_or_start(const FillKey& key, Transfer transfer, bool* started = nullptr);
  std::size_t running() const;
  // Whether a fill of `digest` (any namespace) is running.
  bool running(const Digest& digest) const;
  // The running fill for `key`, or null; never starts one.
  BlobFillPtr find(const FillKey& key) const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::map<FillKey, BlobFillPtr> running_;
  std::size_t threads_ = 0;
};

}  // namespace regcache::cache
