#include "cache/tiered_blob_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "cache/eviction.h"
#include "common/error.h"
#include "common/log.h"

namespace fs = std::filesystem;

namespace regcache::cache {

struct TieredBlobStore::Shared {
  Shared(BlobStorePtr r, TieredBlobStoreOptions o)
      : remote(std::move(r)), publisher(dynamic_cast<VerifiedPublisher*>(remote.get())), options(std::move(o)),
        local(options.local_dir) {}

  struct Entry {
    std::uint64_t size = 0;
    std::int64_t last_access = 0;  // the logical clock below
    std::uint32_t hits = 1;
    bool verified = false;  // hashed by this process (committed by it, or checked on first open)
  };

  BlobStorePtr remote;
  VerifiedPublisher* publisher;  // the remote, when it can publish from a file
  TieredBlobStoreOptions options;
  LocalBlobStore local;

  mutable std::mutex mu;
  std::map<Digest, Entry> index;  // the local copies
  std::uint64_t bytes = 0;        // their sizes
  std::int64_t clock = 0;
  // Copies being made on read, one per digest; true once remove()/quarantine()
  // cancelled it (its commit must not leave a copy behind).
  std::map<Digest, bool> copying;
  std::atomic<std::uint64_t> local_reads{0}, remote_reads{0}, copies{0}, drops{0};

  // A verified copy of `size` bytes is in the local tier: index it, then keep
  // the bound. Call without `mu`.
  void admit(const Digest& d, std::uint64_t size) {
    std::lock_guard lock(mu);
    if (size > options.local_cache_bytes) {  // a fill bigger than the tier: its spool only fed the remote
      drop_locked(d);
      return;
    }
    auto [it, fresh] = index.try_emplace(d);
    if (!fresh) bytes -= it->second.size;
    it->second.size = size;
    it->second.last_access = ++clock;
    it->second.verified = true;
    bytes += size;
    copies.fetch_add(1, std::memory_order_relaxed);
    trim_locked();
  }

  // Drops least valuable copies while the tier is above its bound (down to 90%
  // of it, so that trimming runs in batches): the storage lifecycle's policy.
  void trim_locked() {
    EvictionLimits limits;
    limits.max_cache_bytes = options.local_cache_bytes;
    limits.high_watermark = 1.0;
    limits.low_watermark = 0.9;
    const std::uint64_t need = bytes_to_evict(limits, bytes, std::numeric_limits<std::uint64_t>::max());
    if (need == 0) return;
    std::vector<Digest> digests;
    std::vector<EvictionCandidate> candidates;
    for (const auto& [d, e] : index) {
      digests.push_back(d);
      candidates.push_back({e.size, e.last_access, e.hits});
    }
    const auto target = static_cast<std::uint64_t>(static_cast<double>(options.local_cache_bytes) * 0.9);
    for (std::size_t i : choose_victims(candidates, need, target)) drop_locked(digests[i]);
  }

  void drop_locked(const Digest& d) {
    if (auto it = index.find(d); it != index.end()) {
      bytes -= it->second.size;
      index.erase(it);
    }
    local.remove(d);  // an open reader keeps its file
    drops.fetch_add(1, std::memory_order_relaxed);
  }

  // A local copy served: more recent, one more hit (capped like the access log's).
  // Returns whether the copy still needs its first hash.
  bool touch(const Digest& d, std::uint64_t size) {
    std::lock_guard lock(mu);
    auto [it, fresh] = index.try_emplace(d);
    if (fresh) {  // a copy the index did not know (another store on this directory made it)
      it->second.size = size;
      bytes += size;
    }
    it->second.last_access = ++clock;
    if (!fresh) it->second.hits = std::min<std::uint32_t>(it->second.hits + 1, 1000);
    return !it->second.verified;
  }
};

namespace {

using Shared = TieredBlobStore::Shared;

bool hashes_to(BlobReader& r, const Digest& d) {
  DigestHasher h(d.algorithm());
  std::vector<char> buf(1 << 20);
  std::uint64_t at = 0;
  while (at < r.size()) {
    const auto n = r.read_at(at, buf.data(), buf.size());
    if (n == 0) return false;  // shorter than its size
    h.update(buf.data(), n);
    at += n;
  }
  return h.finish() == d;
}

// A fill: bytes go to a local spool (read-while-write readers get its
// descriptor); commit() verifies and publishes the local copy, then sends that
// same file to the remote, the authority.
class TieredWriter final : public BlobWriter {
 public:
  explicit TieredWriter(std::shared_ptr<Shared> s) : s_(std::move(s)), local_(s_->local.create_writer()) {}
  void write(const char* data, std::size_t size) override { local_->write(data, size); }
  std::uint64_t size() const override { return local_->size(); }
  BlobSourcePtr source() override { return local_->source(); }

  // The local commit verifies (and is quick); the upload to the remote in
  // commit() is what is slow, so a fill's readers may finish before it.
  bool verify(const Digest& expected) override {
    if (verified_) return true;
    // The spool's descriptor stays open on the same file once it is renamed
    // into the local tier: the remote is sent exactly the bytes just verified,
    // whatever happens to the name meanwhile.
    spool_ = local_->source();
    size_ = local_->size();
    local_->commit(expected);  // DigestInvalid: nothing published anywhere
    verified_ = true;
    return true;
  }

  void commit(const Digest& expected) override {
    verify(expected);
    auto spool = spool_;
    const std::uint64_t size = size_;
    try {
      if (s_->publisher) {
        s_->publisher->publish_verified(expected, *spool->native_fd(), size);
      } else {
        auto w = s_->remote->create_writer();
        std::vector<char> buf(1 << 20);
        for (std::uint64_t at = 0; at < size;) {
          const auto n = spool->read_at(at, buf.data(), buf.size());
          if (n == 0) throw RegistryError(ErrorCode::Internal, "local copy of " + expected.str() + " shrank");
          w->write(buf.data(), n);
          at += n;
        }
        w->commit(expected);
      }
    } catch (...) {
      // Not in the authority: no local copy may claim it either.
      std::lock_guard lock(s_->mu);
      s_->drop_locked(expected);
      throw;
    }
    s_->admit(expected, size);
  }

 private:
  std::shared_ptr<Shared> s_;
  BlobWriterPtr local_;
  bool verified_ = false;  // the local commit ran (verify())
  BlobSourcePtr spool_;    // the verified bytes, for the remote
  std::uint64_t size_ = 0;
};

// The remote's reader, its bytes copied into a local writer as they are read in
// order. The copy is committed (verified) when the last byte was read; a gap
// (a range read ahead of the copy) or a failing local write abandons it — the
// reader itself never fails for the copy's sake.
class CopyingReader final : public BlobReader {
 public:
  CopyingReader(std::shared_ptr<Shared> s, Digest d, BlobReaderPtr remote)
      : s_(std::move(s)), digest_(std::move(d)), remote_(std::move(remote)) {
    try {
      local_ = s_->local.create_writer();
    } catch (const std::exception&) {
      abandon();
    }
  }
  ~CopyingReader() override { abandon(); }
  std::uint64_t size() const override { return remote_->size(); }
  std::size_t read_at(std::uint64_t offset, char* buf, std::size_t n) override {
    const auto got = remote_->read_at(offset, buf, n);
    if (local_) copy(offset, buf, got);
    return got;
  }

 private:
  void copy(std::uint64_t offset, const char* buf, std::size_t got) {
    if (offset > copied_) return abandon();
    if (offset + got <= copied_) return;
    const auto skip = static_cast<std::size_t>(copied_ - offset);
    try {
      local_->write(buf + skip, got - skip);
      copied_ += got - skip;
      if (copied_ == remote_->size()) finish();
    } catch (const std::exception&) {
      abandon();
    }
  }

  void finish() {
    try {
      local_->commit(digest_);
    } catch (const RegistryError& e) {
      // The remote's whole object does not hash to its digest (or the local
      // write failed): no copy. Said, so that an operator runs scrub.
      if (e.code() == ErrorCode::DigestInvalid)
        log::warn("local tier: the object of " + digest_.str() +
                  " read from the remote store does not match its digest; not copied (run regcache scrub)");
      throw;
    }
    local_.reset();
    bool cancelled;
    {
      std::lock_guard lock(s_->mu);
      cancelled = s_->copying[digest_];
      s_->copying.erase(digest_);
      if (cancelled) s_->local.remove(digest_);  // removed from the store while we copied
    }
    if (!cancelled) s_->admit(digest_, remote_->size());
    done_ = true;
  }

  void abandon() {
    local_.reset();  // an uncommitted writer removes its spool
    if (done_) return;
    done_ = true;
    std::lock_guard lock(s_->mu);
    s_->copying.erase(digest_);
  }

  std::shared_ptr<Shared> s_;
  Digest digest_;
  BlobReaderPtr remote_;
  BlobWriterPtr local_;
  std::uint64_t copied_ = 0;
  bool done_ = false;
};

}  // namespace

TieredBlobStore::TieredBlobStore(BlobStorePtr remote, TieredBlobStoreOptions options)
    : s_(std::make_shared<Shared>(std::move(remote), std::move(options))) {
  // The index from the directory: oldest mtime first gets the smallest clock.
  std::vector<std::pair<std::int64_t, StoredBlob>> found;
  for (const auto& b : s_->local.list()) found.emplace_back(s_->local.written_at(b.digest).value_or(0), b);
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::lock_guard lock(s_->mu);
  for (const auto& [when, b] : found) {
    auto& e = s_->index[b.digest];
    e.size = b.size;
    e.last_access = ++s_->clock;
    s_->bytes += b.size;
  }
  s_->trim_locked();
}

TieredBlobStore::~TieredBlobStore() = default;

BlobWriterPtr TieredBlobStore::create_writer() { return std::make_unique<TieredWriter>(s_); }

BlobReaderPtr TieredBlobStore::open_authoritative(const Digest& digest) { return s_->remote->open(digest); }

BlobReaderPtr TieredBlobStore::open(const Digest& digest) {
  if (auto r = s_->local.open(digest)) {
    const bool unverified = s_->touch(digest, r->size());
    bool good = true;
    if (unverified) {
      good = hashes_to(*r, digest);
      std::lock_guard lock(s_->mu);
      if (!good) {
        s_->drop_locked(digest);
      } else if (auto it = s_->index.find(digest); it != s_->index.end()) {
        it->second.verified = true;
      }
    }
    if (good) {
      // Recency for the next start-up; best effort.
      if (auto fd = r->native_fd()) ::futimens(*fd, nullptr);
      s_->local_reads.fetch_add(1, std::memory_order_relaxed);
      return r;
    }
  }
  auto r = s_->remote->open(digest);
  if (!r) return nullptr;
  s_->remote_reads.fetch_add(1, std::memory_order_relaxed);
  // Blobs the tier could not keep (or empty ones: nothing to copy) are not copied.
  if (r->size() == 0 || r->size() > s_->options.local_cache_bytes) return r;
  {
    std::lock_guard lock(s_->mu);
    if (!s_->copying.try_emplace(digest, false).second) return r;  // another reader is copying it
  }
  return std::make_unique<CopyingReader>(s_, digest, std::move(r));
}

bool TieredBlobStore::exists(const Digest& digest) { return s_->remote->exists(digest); }

Presence TieredBlobStore::presence(const Digest& digest) { return s_->remote->presence(digest); }

std::optional<std::uint64_t> TieredBlobStore::free_bytes() const { return s_->remote->free_bytes(); }

void TieredBlobStore::remove(const Digest& digest) {
  {
    std::lock_guard lock(s_->mu);
    if (auto it = s_->copying.find(digest); it != s_->copying.end()) it->second = true;
    if (auto it = s_->index.find(digest); it != s_->index.end()) {
      s_->bytes -= it->second.size;
      s_->index.erase(it);
    }
    s_->local.remove(digest);
  }
  s_->remote->remove(digest);
}

std::vector<StoredBlob> TieredBlobStore::list() { return s_->remote->list(); }

std::size_t TieredBlobStore::remove_orphan_spools() {
  return s_->local.remove_orphan_spools() + s_->remote->remove_orphan_spools();
}

BlobUploadPtr TieredBlobStore::open_upload(const std::string& id, bool create) {
  return s_->remote->open_upload(id, create);
}

std::optional<std::uint64_t> TieredBlobStore::upload_size(const std::string& id) { return s_->remote->upload_size(id); }

void TieredBlobStore::remove_upload(const std::string& id) { s_->remote->remove_upload(id); }

std::vector<std::string> TieredBlobStore::list_uploads() { return s_->remote->list_uploads(); }

std::optional<std::int64_t> TieredBlobStore::written_at(const Digest& digest) { return s_->remote->written_at(digest); }

std::optional<std::string> TieredBlobStore::redirect_url(const Digest& digest, std::chrono::seconds expires) {
  return s_->remote->redirect_url(digest, expires);
}

std::optional<std::string> TieredBlobStore::check_reachable() { return s_->remote->check_reachable(); }

std::optional<std::string> TieredBlobStore::quarantine(const Digest& digest) {
  {
    std::lock_guard lock(s_->mu);
    if (auto it = s_->copying.find(digest); it != s_->copying.end()) it->second = true;
    if (auto it = s_->index.find(digest); it != s_->index.end()) {
      s_->bytes -= it->second.size;
      s_->index.erase(it);
    }
    s_->local.remove(digest);
  }
  return s_->remote->quarantine(digest);
}

TierStats TieredBlobStore::stats() const {
  TierStats t;
  t.local_reads = s_->local_reads.load(std::memory_order_relaxed);
  t.remote_reads = s_->remote_reads.load(std::memory_order_relaxed);
  t.local_copies = s_->copies.load(std::memory_order_relaxed);
  t.local_drops = s_->drops.load(std::memory_order_relaxed);
  std::lock_guard lock(s_->mu);
  t.local_bytes = s_->bytes;
  t.local_objects = s_->index.size();
  return t;
}

fs::path TieredBlobStore::local_path(const Digest& digest) const { return s_->local.blob_path(digest); }

}  // namespace regcache::cache
