#include "cache/pull_through_cache.h"

#include <algorithm>
#include <atomic>
#include <ctime>
#include <optional>
#include <thread>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/log.h"
#include "common/manifest_schema.h"

namespace regcache::cache {
namespace {

// A stored blob read like an upstream answer: for a fill that took over from
// a dead lease holder and finds the blob committed meanwhile by another.
class StoredBodyStream final : public upstream::BodyStream {
 public:
  explicit StoredBodyStream(std::shared_ptr<BlobReader> reader) : reader_(std::move(reader)) {
    response_.status = 200;
    response_.content_length = reader_->size();
  }
  const upstream::Response& response() const override { return response_; }
  std::size_t read(char* buf, std::size_t n) override {
    if (offset_ >= reader_->size()) return 0;
    n = static_cast<std::size_t>(std::min<std::uint64_t>(n, reader_->size() - offset_));
    std::size_t got = reader_->read_at(offset_, buf, n);
    if (got == 0) throw upstream::TransportError("the stored blob ended short at byte " + std::to_string(offset_));
    offset_ += got;
    return got;
  }
  bool readable_within(std::chrono::milliseconds) override { return true; }

 private:
  std::shared_ptr<BlobReader> reader_;
  upstream::Response response_;
  std::uint64_t offset_ = 0;
};

RegistryError unreachable(const Origin& origin, const std::exception& e) {
  return RegistryError(ErrorCode::Unavailable, "upstream " + origin.ns + " is unreachable: " + e.what());
}

// Whether a failed revalidation is the upstream's trouble (serve stale) rather
// than its answer (pass the error on).
bool upstream_trouble(const RegistryError& e) {
  return e.code() == ErrorCode::Unavailable || e.code() == ErrorCode::TooManyRequests ||
         e.code() == ErrorCode::UpstreamInvalid;
}

std::string usable_media_type(const std::string& content_type, std::string_view body) {
  if (std::string known = known_manifest_media_type(content_type); !known.empty()) return known;
  std::string type = content_type.substr(0, content_type.find(';'));
  // Anything else than a servable type (text/html, CR LF...) is not passed on.
  if (!is_servable_manifest_media_type(type)) return sniff_manifest_media_type(body);
  return type;
}

}  // namespace

const char* to_string(CacheStatus status) {
  switch (status) {
    case CacheStatus::Hit: return "hit";
    case CacheStatus::Miss: return "miss";
    case CacheStatus::Revalidated: return "revalidated";
    case CacheStatus::Stale: return "stale";
    case CacheStatus::Local: return "local";
    case CacheStatus::Pass: return "pass";
  }
  return "?";
}

PullThroughCache::PullThroughCache(BlobStore& blobs, db::MetadataStore& meta, ManifestMemo& manifests,
                                   CacheOptions options)
    : blobs_(blobs), meta_(meta), manifests_(manifests), options_(std::move(options)) {
  if (!options_.admit_fill)
    options_.admit_fill = [this](std::uint64_t length) {
      auto free = blobs_.free_bytes();
      return !free || *free >= length;
    };
}

// --- disk full -------------------------------------------------------------

namespace {
// A failed write of the store (not the upstream's fault): the fill goes on as
// a pass-through instead of failing its clients.
bool store_trouble(const RegistryError& e) {
  return e.code() == ErrorCode::InsufficientStorage || e.code() == ErrorCode::Internal;
}
// A blob store's commit can also fail because the store is unreachable (an
// object store: RegistryError(Unavailable)); the bytes themselves were fine.
bool commit_trouble(const RegistryError& e) { return store_trouble(e) || e.code() == ErrorCode::Unavailable; }
}  // namespace

bool PullThroughCache::admit(std::uint64_t length) {
  try {
    return options_.admit_fill(length);
  } catch (const std::exception& e) {
    log::warn(std::string("fill admission check failed, not storing: ") + e.what());
    return false;
  }
}

void PullThroughCache::remember_not_stored(const FillKey& key, std::uint64_t need) {
  constexpr std::size_t kMaxRemembered = 4096;
  std::lock_guard lock(not_stored_mutex_);
  if (not_stored_.size() >= kMaxRemembered) not_stored_.clear();
  not_stored_[key] = need;
}

bool PullThroughCache::still_not_storable(const FillKey& key) {
  std::uint64_t need = 0;
  {
    std::lock_guard lock(not_stored_mutex_);
    auto it = not_stored_.find(key);
    if (it == not_stored_.end()) return false;
    need = it->second;
  }
  if (!admit(need)) return true;
  std::lock_guard lock(not_stored_mutex_);
  not_stored_.erase(key);  // it fits now: the next fill tries to store it again
  return false;
}

std::unique_ptr<PassThrough> PullThroughCache::pass_through(const Origin& origin, const RepoName& repo,
                                                            const Digest& digest, BlobSource* prefix_source,
                                                            std::uint64_t prefix) {
  if (events_) events_->passed_through();
  std::unique_ptr<upstream::BodyStream> body;
  try {
    body = origin.upstream->get_blob(repo.str(), digest.str());
  } catch (const upstream::TransportError& e) {
    throw unreachable(origin, e);
  }
  const auto& response = body->response();
  if (response.status != 200)
    throw upstream_status_error(response.status, ObjectKind::Blob, origin.ns, response.retry_after);
  if (!response.content_length)
    throw RegistryError(ErrorCode::Unavailable, "the store cannot keep " + digest.str() + " and upstream " + origin.ns +
                                                    " sends it without a length, so it cannot be passed through either");
  return std::make_unique<PassThrough>(origin.upstream, std::move(body), digest, *response.content_length,
                                       prefix_source, prefix);
}

std::int64_t PullThroughCache::now() { return static_cast<std::int64_t>(std::time(nullptr)); }

void PullThroughCache::check_reachable(const Origin& origin, const MissingKey& key, ErrorCode not_found,
                                       const std::string& what) {
  if (origin.offline)
    throw RegistryError(not_found, what + " is not cached, and regcache is offline (upstream " + origin.ns + " is not contacted)");
  if (missing_.contains(key)) {
    if (events_) events_->negative_hit();
    throw RegistryError(not_found, what + " is unknown to upstream " + origin.ns + " (remembered for " +
                                       std::to_string(origin.negative_ttl.count()) + " s)");
  }
}

void PullThroughCache::remember_missing(const Origin& origin, const MissingKey& key, const RegistryError& e) {
  if (e.code() == ErrorCode::ManifestUnknown || e.code() == ErrorCode::BlobUnknown) missing_.add(key, origin.negative_ttl);
  throw e;
}

// --- namespace visibility ----------------------------------------------------

bool PullThroughCache::namespace_has(const Origin& origin, const Digest& digest) {
  return meta_.find_namespace_link(origin.ns, digest).has_value();
}

std::optional<PullThroughCache::Memo> PullThroughCache::stored_manifest(const Origin& origin, const RepoName& repo,
                                                                        const Digest& digest) {
  if (auto own = manifests_.load(origin.ns, repo.str(), digest)) return own;
  auto link = meta_.find_namespace_link(origin.ns, digest);
  if (!link || link->media_type.empty() || link->repo == repo.str()) return std::nullopt;
  auto found = manifests_.load(origin.ns, link->repo, digest);
  if (!found) return std::nullopt;
  // Seen under this repository now: link it, so that its tags are answered
  // from memory and its repository lists it, like a fetched one.
  meta_.link(origin.ns, repo.str(), digest, found->media_type);
  manifests_.remember(origin.ns, repo.str(), digest, *found);
  return found;
}

BlobReaderPtr PullThroughCache::verified_stored(const Digest& digest) {
  if (!meta_.find_blob(digest)) return nullptr;
  return blobs_.open(digest);
}

bool PullThroughCache::adopt_stored(const Origin& origin, const RepoName& repo, const Digest& digest,
                                    std::uint64_t size, const std::string& media_type) {
  bool present = false;
  std::int64_t t = now();
  // The existence check is inside the unit: a hosted delete removes the bytes
  // inside its own unit, so once this one commits they stay.
  meta_.transact([&](db::MetadataStore& tx) {
    present = blobs_.exists(digest);
    if (!present) return;
    tx.put_blob({digest, size, media_type, t, t});
    tx.link(origin.ns, repo.str(), digest, media_type);
  });
  return present;
}

// --- manifests -------------------------------------------------------------

void PullThroughCache::record_hit(const Digest& digest) {
  if (access_log_) access_log_->record(digest, now());
}

void PullThroughCache::record_fill(std::uint64_t bytes) {
  if (access_log_) access_log_->filled(bytes);
}

ManifestResult PullThroughCache::get_manifest(const Origin& origin, const RepoName& repo, const Reference& ref,
                                              const AcceptList& accept) {
  ManifestResult result = serve_manifest(origin, repo, ref, accept);
  // A miss stored the manifest with its first use counted; later uses count here.
  if (result.status != CacheStatus::Miss) record_hit(result.digest);
  return result;
}

ManifestResult PullThroughCache::serve_manifest(const Origin& origin, const RepoName& repo, const Reference& ref,
                                                const AcceptList& accept) {
  auto flight_key = [&] { return origin.ns + "|" + repo.str() + "|" + ref.str() + "|" + accept.key(); };
  if (!ref.is_digest()) {
    if (auto fresh = fresh_tag(origin, repo, ref.as_tag(), accept)) return std::move(*fresh);
    return manifest_flights_.run(flight_key(), [&] { return resolve_tag(origin, repo, ref.as_tag(), accept); });
  }

  const Digest& digest = ref.as_digest();
  if (auto memo = stored_manifest(origin, repo, digest); memo && accept.accepts(memo->media_type))
    return {memo->body, memo->media_type, digest, CacheStatus::Hit};
  MissingKey missing_key{MissingKey::Kind::Manifest, origin.ns, repo.str(), digest.str()};
  check_reachable(origin, missing_key, ErrorCode::ManifestUnknown, "manifest " + repo.str() + "@" + digest.str());
  return manifest_flights_.run(flight_key(), [&] {
    try {
      return fetch_manifest(origin, repo, digest.str(), accept, digest);
    } catch (const RegistryError& e) {
      remember_missing(origin, missing_key, e);
    }
  });
}

std::optional<db::TagRecord> PullThroughCache::find_tag(const Origin& origin, const RepoName& repo,
                                                       const std::string& tag) {
  if (auto known = tags_.load(origin.ns, repo.str(), tag)) return known;
  auto row = meta_.find_tag(origin.ns, repo.str(), tag);
  if (row) tags_.remember(origin.ns, repo.str(), tag, *row);
  return row;
}

void PullThroughCache::put_tag(const Origin& origin, const RepoName& repo, const std::string& tag, const Digest& digest) {
  std::int64_t t = now();
  meta_.put_tag(origin.ns, repo.str(), tag, digest, t);
  tags_.remember(origin.ns, repo.str(), tag, {digest, t});
}

std::optional<ManifestResult> PullThroughCache::fresh_tag(const Origin& origin, const RepoName& repo,
                                                          const std::string& tag, const AcceptList& accept) {
  auto row = tags_.load(origin.ns, repo.str(), tag);
  if (!row) return std::nullopt;
  if (!origin.offline && decide_tag(row->confirmed_at, true, now(), origin.tag_ttl) != TagAction::ServeLocal)
    return std::nullopt;
  auto memo = manifests_.load(origin.ns, repo.str(), row->digest);
  if (!memo || !accept.accepts(memo->media_type)) return std::nullopt;
  return ManifestResult{memo->body, memo->media_type, row->digest, CacheStatus::Hit};
}

ManifestResult PullThroughCache::resolve_tag(const Origin& origin, const RepoName& repo, const std::string& tag,
                                             const AcceptList& accept) {
  auto row = find_tag(origin, repo, tag);
  std::optional<Memo> memo = row ? stored_manifest(origin, repo, row->digest) : std::nullopt;
  bool usable = memo && accept.accepts(memo->media_type);
  auto confirmed = row ? std::optional(row->confirmed_at) : std::nullopt;
  if (origin.offline && usable) return {memo->body, memo->media_type, row->digest, CacheStatus::Hit};
  MissingKey missing_key{MissingKey::Kind::Tag, origin.ns, repo.str(), tag};
  if (!usable) check_reachable(origin, missing_key, ErrorCode::ManifestUnknown, "manifest " + repo.str() + ":" + tag);

  switch (decide_tag(confirmed, usable, now(), origin.tag_ttl)) {
    case TagAction::ServeLocal:
      return {memo->body, memo->media_type, row->digest, CacheStatus::Hit};

    case TagAction::Fetch: {
      try {
        auto result = fetch_manifest(origin, repo, tag, accept, std::nullopt);
        put_tag(origin, repo, tag, result.digest);
        return result;
      } catch (const RegistryError& e) {
        remember_missing(origin, missing_key, e);
      }
    }

    case TagAction::Revalidate:
      try {
        upstream::Response head;
        try {
          head = origin.upstream->head_manifest(repo.str(), tag, accept.upstream_values());
        } catch (const upstream::TransportError& e) {
          throw unreachable(origin, e);
        }
        if (head.status != 200) throw upstream_status_error(head.status, ObjectKind::Manifest, origin.ns, head.retry_after);
        auto named = Digest::parse(head.docker_content_digest);
        auto revalidated = [&]() -> ManifestResult {
          if (named && *named == row->digest)
            return {memo->body, memo->media_type, row->digest, CacheStatus::Revalidated};
          if (auto other = named ? stored_manifest(origin, repo, *named) : std::nullopt;
              other && accept.accepts(other->media_type))
            return {other->body, other->media_type, *named, CacheStatus::Revalidated};
          // The tag moved to content we do not have (or the upstream named no digest).
          return fetch_manifest(origin, repo, named ? named->str() : tag, accept, named);
        };
        ManifestResult result = revalidated();
        put_tag(origin, repo, tag, result.digest);
        if (events_) events_->revalidated(result.digest == row->digest ? Revalidation::Unchanged : Revalidation::Changed);
        return result;
      } catch (const RegistryError& e) {
        if (events_) events_->revalidated(upstream_trouble(e) ? Revalidation::Stale : Revalidation::Error);
        if (!upstream_trouble(e)) remember_missing(origin, missing_key, e);
        log::warn("serving " + repo.str() + ":" + tag + " stale: " + e.what());
        return {memo->body, memo->media_type, row->digest, CacheStatus::Stale};
      }
  }
  throw RegistryError(ErrorCode::Internal, "unreachable tag decision");
}

ManifestResult PullThroughCache::fetch_manifest(const Origin& origin, const RepoName& repo, const std::string& reference,
                                                const AcceptList& accept, const std::optional<Digest>& expected) {
  upstream::BufferedResponse response;
  try {
    response = origin.upstream->get_manifest(repo.str(), reference, accept.upstream_values(), options_.max_manifest_bytes);
  } catch (const upstream::TransportError& e) {
    throw unreachable(origin, e);
  }
  if (response.status != 200)
    throw upstream_status_error(response.status, ObjectKind::Manifest, origin.ns, response.retry_after);

  Digest actual = digest_of(expected ? expected->algorithm() : "sha256", response.body);
  if (expected && actual != *expected)
    throw RegistryError(ErrorCode::UpstreamInvalid, "upstream " + origin.ns + " sent a manifest with digest " +
                                                        actual.str() + " for " + expected->str());
  if (!response.docker_content_digest.empty()) {
    auto named = Digest::parse(response.docker_content_digest);
    if (!named || digest_of(named->algorithm(), response.body) != *named)
      throw RegistryError(ErrorCode::UpstreamInvalid, "upstream " + origin.ns + " sent a manifest whose bytes do not match its Docker-Content-Digest " +
                                                          response.docker_content_digest);
  }

  std::string media_type = usable_media_type(response.content_type, response.body);
  std::int64_t t = now();
  // Written inside the unit (a manifest is small): a hosted delete collecting
  // the same digest cannot remove the bytes between their write and the link.
  // A failed write (disk full, the database full) rolls the whole unit back:
  // no row names bytes that were not stored. The manifest is verified and in
  // memory, so the client still gets it, passed through.
  try {
    meta_.transact([&](db::MetadataStore& tx) {
      auto writer = blobs_.create_writer();
      writer->write(response.body.data(), response.body.size());
      writer->commit(actual);
      tx.put_blob({actual, response.body.size(), media_type, t, t});
      tx.link(origin.ns, repo.str(), actual, media_type);
    });
  } catch (const RegistryError& e) {
    if (!store_trouble(e)) throw;
    log::warn("not storing manifest " + actual.str() + " from upstream " + origin.ns + " (passed through): " + e.what());
    if (events_) events_->passed_through();
    return {std::make_shared<const std::string>(std::move(response.body)), media_type, actual, CacheStatus::Pass};
  } catch (const std::runtime_error& e) {  // the metadata store's own failures (SQLITE_FULL, SQLITE_IOERR)
    log::warn("not storing manifest " + actual.str() + " from upstream " + origin.ns + " (passed through): " + e.what());
    if (events_) events_->passed_through();
    return {std::make_shared<const std::string>(std::move(response.body)), media_type, actual, CacheStatus::Pass};
  }

  record_fill(response.body.size());
  Memo memo{std::make_shared<const std::string>(std::move(response.body)), media_type};
  manifests_.remember(origin.ns, repo.str(), actual, memo);
  return {memo.body, media_type, actual, CacheStatus::Miss};
}

// --- blobs -----------------------------------------------------------------

BlobResult PullThroughCache::get_blob(const Origin& origin, const RepoName& repo, const Digest& digest) {
  if (namespace_has(origin, digest))
    if (auto reader = blobs_.open(digest)) {
      record_hit(digest);
      return {CacheStatus::Hit, std::move(reader), nullptr};
    }
  check_reachable(origin, {MissingKey::Kind::Blob, origin.ns, repo.str(), digest.str()}, ErrorCode::BlobUnknown,
                  "blob " + repo.str() + "@" + digest.str());
  if (still_not_storable({origin.ns, digest})) return {CacheStatus::Pass, nullptr, nullptr};
  bool started = true;
  auto fill = fills_.join_or_start({origin.ns, digest},
                                   [this, origin, repo](BlobFill& f) { observed_transfer(origin, repo, f); }, &started);
  if (!started && events_) events_->joined_fill();
  return {CacheStatus::Miss, nullptr, std::move(fill)};
}

BlobResult PullThroughCache::peer_blob(const std::string& ns, const Digest& digest) {
  if (auto fill = fills_.find({ns, digest})) return {CacheStatus::Miss, nullptr, std::move(fill)};
  Origin origin;
  origin.ns = ns;
  if (namespace_has(origin, digest))
    if (auto reader = blobs_.open(digest)) return {CacheStatus::Hit, std::move(reader), nullptr};
  return {CacheStatus::Miss, nullptr, nullptr};
}

upstream::Response PullThroughCache::confirm_upstream_blob(const Origin& origin, const RepoName& repo,
                                                          const Digest& digest, const MissingKey& missing_key) {
  upstream::Response head;
  try {
    head = origin.upstream->head_blob(repo.str(), digest.str());
  } catch (const upstream::TransportError& e) {
    throw unreachable(origin, e);
  }
  if (head.status != 200)
    remember_missing(origin, missing_key, upstream_status_error(head.status, ObjectKind::Blob, origin.ns, head.retry_after));
  return head;
}

BlobHeadResult PullThroughCache::head_blob(const Origin& origin, const RepoName& repo, const Digest& digest) {
  if (namespace_has(origin, digest))
    if (auto reader = blobs_.open(digest)) return {CacheStatus::Hit, reader->size()};
  MissingKey missing_key{MissingKey::Kind::Blob, origin.ns, repo.str(), digest.str()};
  check_reachable(origin, missing_key, ErrorCode::BlobUnknown, "blob " + repo.str() + "@" + digest.str());
  upstream::Response head = confirm_upstream_blob(origin, repo, digest, missing_key);
  if (!head.content_length)
    throw RegistryError(ErrorCode::UpstreamInvalid, "upstream " + origin.ns + " answered a HEAD of " + digest.str() +
                                                        " without Content-Length");
  // The upstream confirmed the digest: bytes stored for another namespace (or
  // a hosted push) may now be served under this one too.
  if (auto stored = verified_stored(digest); stored && stored->size() == *head.content_length)
    adopt_stored(origin, repo, digest, stored->size(), "");
  return {CacheStatus::Miss, *head.content_length};
}

void PullThroughCache::observed_transfer(const Origin& origin, const RepoName& repo, BlobFill& fill) {
  {
    std::lock_guard lock(fill_views_mutex_);
    fill_views_[&fill] = {origin.ns, std::chrono::steady_clock::now()};
  }
  struct Forget {
    PullThroughCache& self;
    BlobFill* fill;
    ~Forget() {
      std::lock_guard lock(self.fill_views_mutex_);
      self.fill_views_.erase(fill);
    }
  } forget{*this, &fill};
  try {
    transfer_blob(origin, repo, fill);
  } catch (const RegistryError& e) {
    if (events_) events_->fill_failed(e);
    throw;
  } catch (const std::exception& e) {  // the metadata store's own failures
    if (events_) events_->fill_failed(RegistryError(ErrorCode::Internal, e.what()));
    throw;
  }
}

std::vector<PullThroughCache::FillInProgress> PullThroughCache::fills_in_progress(std::size_t limit) const {
  std::vector<FillInProgress> out;
  const auto now_time = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(fill_views_mutex_);
    for (const auto& [fill, view] : fill_views_) {
      BlobFill::Progress p = fill->progress();
      out.push_back({view.ns, fill->digest().str(), p.spooled, fill->expected_size(),
                     std::chrono::duration<double>(now_time - view.started).count()});
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
  if (out.size() > limit) out.resize(limit);
  return out;
}

bool PullThroughCache::fill_from_stored(const Origin& origin, const RepoName& repo, BlobFill& fill,
                                        const MissingKey& missing_key) {
  const Digest& digest = fill.digest();
  std::shared_ptr<BlobReader> stored = verified_stored(digest);
  if (!stored) return false;
  bool visible = namespace_has(origin, digest);
  if (!visible) {
    upstream::Response head = confirm_upstream_blob(origin, repo, digest, missing_key);
    if (head.content_length && *head.content_length != stored->size())
      throw RegistryError(ErrorCode::UpstreamInvalid, "upstream " + origin.ns + " announces " +
                                                          std::to_string(*head.content_length) + " bytes for " +
                                                          digest.str() + ", which has " +
                                                          std::to_string(stored->size()));
    visible = adopt_stored(origin, repo, digest, stored->size(), "");
  }
  if (!visible) return false;  // removed meanwhile: fetch it like any miss
  // The committed blob is the spool: a reader, for the same read_at() and
  // native descriptor (when the store has one) as a stored hit.
  fill.started(stored, stored->size(), stored);
  fill.spooled(stored->size());
  fill.committed();
  return true;
}

std::unique_ptr<upstream::BodyStream> PullThroughCache::cluster_source(const Origin& origin, const RepoName& repo,
                                                                       BlobFill& fill, const MissingKey& missing_key,
                                                                       bool* held, bool* stored) {
  const Digest& digest = fill.digest();
  const std::string key = origin.ns + " " + digest.str();
  const auto deadline = std::chrono::steady_clock::now() + options_.fill_timeout;
  std::optional<std::chrono::steady_clock::time_point> failing_since;
  auto pause = std::chrono::milliseconds(50);
  for (;;) {
    db::FillLeases::Claim claim;
    try {
      claim = cluster_.leases->claim(key);
    } catch (const std::exception& e) {
      // Without the lease table there is no coordination: fetch, as a lone replica would.
      log::warn("fill lease of " + key + " unavailable, asking the upstream: " + e.what());
      return nullptr;
    }
    if (claim.mine) {
      *held = true;
      return nullptr;
    }
    std::string why;
    if (claim.owner_url.empty()) {
      why = "is held under this replica's own URL (an earlier run of it?)";
    } else {
      try {
        auto peer = cluster_.peers->get_fill(claim.owner_url, origin.ns, digest.str());
        const auto& r = peer->response();
        if (r.status == 200 && r.content_length) {
          log::debug("streaming " + digest.str() + " from replica " + claim.owner_url + ", which holds its fill lease");
          return peer;
        }
        if (r.status == 401 || r.status == 403) {
          // The replicas' secrets differ: that holder will never serve this
          // one. A second fetch is wasteful, never wrong.
          log::warn("replica " + claim.owner_url + " refused the cluster secret (" + std::to_string(r.status) +
                    "): check cluster.secret_file on every replica; asking the upstream for " + digest.str());
          return nullptr;
        }
        why = "answered " + std::to_string(r.status);
      } catch (const upstream::TransportError& e) {
        why = e.what();
      }
    }
    // A holder that still holds the lease long after a dead one's would have
    // expired is alive but cannot serve this replica (cut off from it, wedged,
    // or this replica's own URL): fetch without the lease rather than wait
    // for the whole fill timeout.
    const auto now = std::chrono::steady_clock::now();
    if (!failing_since) failing_since = now;
    if (cluster_.give_up_on_holder.count() > 0 && now - *failing_since > cluster_.give_up_on_holder) {
      log::warn("the fill lease of " + digest.str() + " " +
                (claim.owner_url.empty() ? why : "is held by replica " + claim.owner_url + ", which " + why) +
                "; asking the upstream instead");
      return nullptr;
    }
    // The holder has no fill of it (ended meanwhile) or is gone: stored by
    // now, or claim again (a dead holder's lease expires after its ttl).
    if (fill_from_stored(origin, repo, fill, missing_key)) {
      *stored = true;
      return nullptr;
    }
    if (std::chrono::steady_clock::now() > deadline)
      throw RegistryError(ErrorCode::Unavailable, "replica " + claim.owner_url + " holds the fill of " + digest.str() +
                                                      " but does not serve it: " + why);
    log::debug("replica " + claim.owner_url + " holds the fill lease of " + digest.str() + " but " + why +
               "; trying again");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(1000));
  }
}

std::unique_ptr<upstream::BodyStream> PullThroughCache::take_over(const Origin& origin, const RepoName& repo,
                                                                  const Digest& digest, std::uint64_t size,
                                                                  std::uint64_t offset,
                                                                  std::chrono::steady_clock::time_point deadline,
                                                                  bool* held, bool* from_peer) {
  const std::string key = origin.ns + " " + digest.str();
  auto pause = std::chrono::milliseconds(50);
  std::string why = "no answer yet";
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline)
      throw RegistryError(ErrorCode::Unavailable, "nobody continues the fill of " + digest.str() + ": " + why);
    std::unique_ptr<upstream::BodyStream> next;
    std::uint64_t skip = offset;  // bytes of `next` this replica has spooled already
    db::FillLeases::Claim claim;
    // Another survivor may have taken over and finished while this one waited.
    if (auto stored = verified_stored(digest); stored && stored->size() == size && namespace_has(origin, digest)) {
      *from_peer = false;
      next = std::make_unique<StoredBodyStream>(std::move(stored));
    } else {
      try {
        claim = cluster_.leases->claim(key);
      } catch (const std::exception& e) {
        why = std::string("fill lease unavailable: ") + e.what();
      }
    }
    if (next) {
      // read below, from the store
    } else if (claim.mine) {
      // This replica holds the lease now: the upstream, as any holder.
      *held = true;
      bool resumed = false;
      *from_peer = false;
      // Only the bytes after what is spooled: a 206 for exactly that range is
      // used as it comes; an upstream that ignores Range sends the whole blob
      // (200), whose start is read and dropped below. A 206 for any other range
      // is not trusted: the whole blob instead.
      try {
        if (offset > 0 && offset < size) {
          next = origin.upstream->get_blob_from(repo.str(), digest.str(), offset);
          const auto& r = next->response();
          const std::string asked =
              "bytes " + std::to_string(offset) + "-" + std::to_string(size - 1) + "/" + std::to_string(size);
          if (r.status == 206 && r.content_length == size - offset && r.content_range == asked) {
            log::info("taking over the fill of " + digest.str() + " from byte " + std::to_string(offset) +
                      " (a Range request to upstream " + origin.ns + ")");
            resumed = true;
            skip = 0;
          } else if (r.status == 206) {
            log::warn("upstream " + origin.ns + " answered a Range request for " + digest.str() + " with \"" +
                      r.content_range.substr(0, 100) + "\"; asking for the whole blob");
            next.reset();
          }
        }
        if (!next) next = origin.upstream->get_blob(repo.str(), digest.str());
      } catch (const upstream::TransportError& e) {
        throw unreachable(origin, e);
      }
      const auto& r = next->response();
      if (!resumed && (r.status != 200 || r.content_length != size))
        throw RegistryError(ErrorCode::UpstreamInvalid, "upstream " + origin.ns + " answered " +
                                                            std::to_string(r.status) + " (or another length) for " +
                                                            digest.str() + " when this replica took its fill over");
    } else if (!claim.owner_url.empty()) {
      try {
        next = cluster_.peers->get_fill(claim.owner_url, origin.ns, digest.str());
        const auto& r = next->response();
        if (r.status != 200 || r.content_length != size) {
          why = "replica " + claim.owner_url + " answered " + std::to_string(r.status);
          next.reset();
        }
        *from_peer = true;
      } catch (const upstream::TransportError& e) {
        why = e.what();
        next.reset();
      }
    }
    if (next) {
      // The bytes before `offset` are spooled already: read and dropped.
      try {
        std::vector<char> scratch(64 << 10);
        for (std::uint64_t left = skip; left > 0;) {
          std::size_t n = next->read(scratch.data(), static_cast<std::size_t>(std::min<std::uint64_t>(scratch.size(), left)));
          if (n == 0) throw upstream::TransportError("the stream ended before byte " + std::to_string(offset));
          left -= n;
        }
        return next;
      } catch (const upstream::TransportError& e) {
        if (!*from_peer) throw RegistryError(ErrorCode::Unavailable, "upstream " + origin.ns + " broke off " +
                                                                         digest.str() + ": " + e.what());
        why = e.what();
      }
    }
    // A dead holder's lease expires after its ttl; until then, ask again.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(1000));
  }
}

void PullThroughCache::transfer_blob(const Origin& origin, const RepoName& repo, BlobFill& fill) {
  const Digest& digest = fill.digest();
  const MissingKey missing_key{MissingKey::Kind::Blob, origin.ns, repo.str(), digest.str()};
  // The bytes are stored already: by a fill of this namespace that finished
  // just before this one started, or for another namespace or a hosted push.
  // The latter are served only once this upstream confirms it has the digest
  // (HEAD); the bytes themselves are verified content, so they need not move.
  if (fill_from_stored(origin, repo, fill, missing_key)) return;

  // Across replicas: only the lease holder asks the upstream; the others
  // stream from it. The lease is given up when this transfer ends, however.
  std::unique_ptr<upstream::BodyStream> body;
  bool lease_held = false;
  struct Release {
    db::FillLeases* leases;
    std::string key;
    bool* held;
    ~Release() {
      if (*held) leases->release(key);
    }
  } release{cluster_.leases, origin.ns + " " + digest.str(), &lease_held};
  bool from_peer = false;
  if (cluster_.leases && cluster_.peers) {
    bool stored = false;
    body = cluster_source(origin, repo, fill, missing_key, &lease_held, &stored);
    if (stored) return;
    from_peer = body != nullptr;
    // Stored between the first check and the lease: nothing to fetch.
    if (lease_held && fill_from_stored(origin, repo, fill, missing_key)) return;
  }
  if (!body) {
    try {
      body = origin.upstream->get_blob(repo.str(), digest.str());
    } catch (const upstream::TransportError& e) {
      throw unreachable(origin, e);
    }
  }
  // A copy: a fill that takes over from a dead lease holder replaces `body`.
  const upstream::Response response = body->response();
  if (response.status != 200)
    remember_missing(origin, missing_key,
                     upstream_status_error(response.status, ObjectKind::Blob, origin.ns, response.retry_after));

  // The store's side may fail from here on without failing the clients: the
  // fill ends as not_stored() and every reader continues from the upstream.
  const FillKey key{origin.ns, digest};
  auto give_up_storing = [&](const RegistryError& why, std::uint64_t need) {
    log::warn("not storing " + digest.str() + " from upstream " + origin.ns + " (passed through to its clients): " +
              why.what());
    remember_not_stored(key, need);
    fill.not_stored(why);
  };
  if (!admit(response.content_length.value_or(0))) {
    return give_up_storing(RegistryError(ErrorCode::InsufficientStorage,
                                         "the store has no room for " +
                                             (response.content_length ? std::to_string(*response.content_length)
                                                                      : std::string("an unknown number of")) +
                                             " bytes"),
                           response.content_length.value_or(0));
  }
  std::shared_ptr<BlobWriter> writer;
  try {
    writer = blobs_.create_writer();
  } catch (const RegistryError& e) {
    if (!store_trouble(e)) throw;
    return give_up_storing(e, response.content_length.value_or(0));
  }
  fill.started(writer->source(), response.content_length, writer);
  // Bytes are handed to readers in batches: the upstream stream yields a few
  // KiB per read, and each hand-over costs a write, a wake-up of every reader
  // and their sends. The first bytes go at once (time to first byte), later
  // ones when a batch is full or has waited long enough, and before a read
  // would block past that: an upstream that pauses never holds back bytes
  // it already sent.
  constexpr std::size_t kBatch = 128 << 10;
  constexpr auto kMaxHold = std::chrono::milliseconds(20);
  std::vector<char> buffer(2 * kBatch);
  std::size_t held = 0;
  auto held_since = std::chrono::steady_clock::now();
  std::optional<RegistryError> store_error;
  // False when the store failed (store_error says why).
  auto hand_over = [&] {
    try {
      writer->write(buffer.data(), held);
    } catch (const RegistryError& e) {
      if (!store_trouble(e)) throw;
      store_error = e;
      return false;
    }
    fill.spooled(writer->size());
    held = 0;
    return true;
  };
  // What the blob needs to be stored next time: its length, or (unknown) at
  // least what was spooled when the store failed.
  auto need = [&] { return response.content_length.value_or(writer->size() + held + 1); };
  const auto deadline = std::chrono::steady_clock::now() + options_.fill_timeout;
  for (;;) {
    try {
      for (;;) {
        if (held > 0) {
          auto waited =
              std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - held_since);
          if (!body->readable_within(std::max(kMaxHold - waited, std::chrono::milliseconds(0))) && !hand_over())
            return give_up_storing(*store_error, need());
        }
        std::size_t n = body->read(buffer.data() + held, buffer.size() - held);
        if (n == 0) break;
        auto now_time = std::chrono::steady_clock::now();
        if (held == 0) held_since = now_time;
        held += n;
        if ((writer->size() == 0 || held >= kBatch || now_time - held_since >= kMaxHold) && !hand_over())
          return give_up_storing(*store_error, need());
        if (now_time > deadline)
          throw RegistryError(ErrorCode::Unavailable, "transfer of " + digest.str() + " from upstream " + origin.ns +
                                                          " exceeded fill_timeout_s");
      }
      if (held > 0 && !hand_over()) return give_up_storing(*store_error, need());
      break;
    } catch (const upstream::TransportError& e) {
      if (!from_peer || !response.content_length)
        throw RegistryError(ErrorCode::Unavailable, (from_peer ? "the replica holding the fill lease" : "upstream " + origin.ns) +
                                                        " broke off " + digest.str() + ": " + e.what());
      // The lease holder died or broke off mid-fill: this fill goes on from
      // the next holder, after what it spooled. Its readers never notice.
      if (held > 0 && !hand_over()) return give_up_storing(*store_error, need());
      log::warn("the replica holding the fill lease of " + digest.str() + " broke off at byte " +
                std::to_string(writer->size()) + " (" + e.what() + "); taking over");
      body = take_over(origin, repo, digest, *response.content_length, writer->size(), deadline, &lease_held,
                       &from_peer);
    }
  }
  if (response.content_length && writer->size() != *response.content_length)
    throw RegistryError(ErrorCode::UpstreamInvalid, "upstream " + origin.ns + " sent " + std::to_string(writer->size()) +
                                                        " bytes of " + std::to_string(*response.content_length));
  // Readers send the final byte only after this: a client that got the whole
  // blob can rely on it being verified (and, unless the store verified it
  // ahead of a slow commit, durable here).
  try {
    if (writer->verify(digest)) fill.verified();
    writer->commit(digest);
  } catch (const RegistryError& e) {
    if (commit_trouble(e)) return give_up_storing(e, need());
    throw RegistryError(ErrorCode::UpstreamInvalid, "upstream " + origin.ns + " sent wrong bytes: " + e.what());
  }
  if (!adopt_stored(origin, repo, digest, writer->size(), ""))
    throw RegistryError(ErrorCode::Unavailable, "stored " + digest.str() + " was removed while its fill committed");
  fill.committed();
  record_fill(writer->size());
}

// --- tags ------------------------------------------------------------------

TagListResult PullThroughCache::kept_document(const Origin& origin, const RepoName& repo, const std::string& key,
                                              const std::function<upstream::BufferedResponse()>& fetch,
                                              ObjectKind kind,
                                              const std::function<std::optional<std::string>()>& fallback_body,
                                              KeptList list) {
  auto stored = meta_.find_document(origin.ns, repo.str(), key);
  auto from_stored = [&](CacheStatus status) {
    return TagListResult{stored->body, status, stored->next_query, stored->filters_applied};
  };
  if (stored && (origin.offline || (stored->fetched_at <= now() && now() - stored->fetched_at < origin.tag_ttl.count())))
    return from_stored(CacheStatus::Hit);
  // From here on, with a kept document, the upstream is asked again: a
  // revalidation (without one it is a miss, counted nowhere here).
  auto revalidated = [&](Revalidation outcome) {
    if (stored && events_) events_->list_revalidated(list, outcome);
  };
  auto fallback = [&](const std::string& why) {
    log::warn("serving kept " + key + " of " + repo.str() + ": " + why);
    if (stored) return from_stored(CacheStatus::Stale);
    if (auto body = fallback_body()) return TagListResult{*body, CacheStatus::Stale, "", ""};
    throw RegistryError(ErrorCode::Unavailable, why);
  };
  if (origin.offline) return fallback("regcache is offline");
  upstream::BufferedResponse response;
  try {
    response = fetch();
  } catch (const upstream::TransportError& e) {
    revalidated(Revalidation::Stale);
    return fallback(unreachable(origin, e).what());
  }
  if (response.status == 200) {
    db::DocumentRecord kept{std::move(response.body), now(), next_page_query(response.link), response.filters_applied};
    revalidated(stored && stored->body == kept.body && stored->next_query == kept.next_query &&
                        stored->filters_applied == kept.filters_applied
                    ? Revalidation::Unchanged
                    : Revalidation::Changed);
    meta_.transact([&](db::MetadataStore& tx) {
      tx.put_document(origin.ns, repo.str(), key, kept);
      tx.prune_documents(origin.ns, repo.str(), options_.documents_per_repository);
    });
    return {std::move(kept.body), stored ? CacheStatus::Revalidated : CacheStatus::Miss, std::move(kept.next_query),
            std::move(kept.filters_applied)};
  }
  if (may_serve_stale(response.status)) {
    revalidated(Revalidation::Stale);
    return fallback("upstream " + origin.ns + " answered " + std::to_string(response.status));
  }
  revalidated(Revalidation::Error);
  throw upstream_status_error(response.status, kind, origin.ns, response.retry_after);
}

TagListResult PullThroughCache::list_tags(const Origin& origin, const RepoName& repo, const std::string& client_query) {
  const std::string query = normalized_tags_query(client_query);
  return kept_document(
      origin, repo, "tags/list?" + query,
      [&] { return origin.upstream->get_tags(repo.str(), query, options_.max_manifest_bytes); }, ObjectKind::TagList,
      [&]() -> std::optional<std::string> {
        auto tags = meta_.list_tags(origin.ns, repo.str());
        if (tags.empty()) return std::nullopt;
        return nlohmann::json{{"name", repo.str()}, {"tags", tags}}.dump();
      },
      KeptList::Tags);
}

TagListResult PullThroughCache::list_referrers(const Origin& origin, const RepoName& repo, const Digest& subject,
                                               const std::string& client_query) {
  const std::string query = normalized_referrers_query(client_query);
  return kept_document(
      origin, repo, "referrers/" + subject.str() + "?" + query,
      [&] { return origin.upstream->get_referrers(repo.str(), subject.str(), query, options_.max_manifest_bytes); },
      ObjectKind::Manifest, [] { return std::optional<std::string>(); }, KeptList::Referrers);
}

// --- start-up --------------------------------------------------------------

const char* to_string(ReconcilePolicy policy) {
  switch (policy) {
    case ReconcilePolicy::DropMissing: return "drop-missing";
    case ReconcilePolicy::AdoptOnly: return "adopt-only";
  }
  return "?";
}

std::string PullThroughCache::reconcile(ReconcilePolicy policy) {
  std::size_t spools = blobs_.remove_orphan_spools();
  std::atomic<bool> never{false};
  return std::to_string(spools) + " orphan spools removed; " + reconcile_store(never, policy);
}

std::string PullThroughCache::reconcile_store(const std::atomic<bool>& stop, ReconcilePolicy policy) {
  std::size_t dropped = 0, unreadable = 0, adopted = 0, removed = 0, skipped = 0, corrupt_kept = 0;
  // Shared metadata: "not in this store" says nothing about the content, so
  // the rows are not even looked at (ReconcilePolicy).
  const bool may_drop = policy == ReconcilePolicy::DropMissing;
  for (const auto& row : may_drop ? meta_.list_blobs() : std::vector<db::BlobRecord>{}) {
    if (stop) break;
    // Only a file the store is sure is gone (ENOENT) takes its rows and tags
    // with it; EACCES, EIO, ELOOP... may pass, and deleting then would lose
    // the metadata for good. Checked and deleted in one unit: a push that
    // publishes the digest again meanwhile writes its row in its own unit,
    // after its file is in place, so it is either seen here or not undone.
    Presence presence = blobs_.presence(row.digest);
    if (presence == Presence::Unreadable) {
      log::warn("store reconciliation: " + row.digest.str() + " cannot be checked; its rows are kept");
      ++unreadable;
      continue;
    }
    if (presence != Presence::Absent) continue;
    meta_.transact([&](db::MetadataStore& tx) {
      if (blobs_.presence(row.digest) == Presence::Absent && tx.find_blob(row.digest)) {
        tx.delete_blob(row.digest);
        ++dropped;
      }
    });
  }
  std::vector<char> buffer(1 << 20);
  for (const auto& stored : blobs_.list()) {
    if (stop) break;
    if (meta_.find_blob(stored.digest)) continue;
    // Until it is hashed here, a file without a row is never served: the
    // request paths trust stored bytes only when a row vouches for them
    // (verified_stored()), and a fill of the same digest publishes its own
    // verified copy over this one.
    bool good = false;
    try {
      // The authority's bytes: with a local tier, a good local copy must not
      // vouch for a bad object in the bucket that every other replica serves.
      auto reader = blobs_.open_authoritative(stored.digest);
      if (!reader) continue;  // gone meanwhile
      DigestHasher hasher(stored.digest.algorithm());
      std::uint64_t offset = 0;
      while (!stop) {
        std::size_t n = reader->read_at(offset, buffer.data(), buffer.size());
        if (n == 0) break;
        hasher.update(buffer.data(), n);
        offset += n;
      }
      if (stop) break;
      good = hasher.finish() == stored.digest;
    } catch (const std::exception& e) {
      log::warn("store reconciliation: cannot read " + stored.digest.str() + ", left alone: " + e.what());
      ++unreadable;
      continue;
    }
    std::uint64_t size = stored.size;
    meta_.transact([&](db::MetadataStore& tx) {
      if (tx.find_blob(stored.digest)) {  // a fill or a push adopted it meanwhile
        ++skipped;
        return;
      }
      if (good) {
        if (blobs_.presence(stored.digest) != Presence::Present) return;
        tx.put_blob({stored.digest, size, "", now(), now()});
        ++adopted;
      } else if (!may_drop) {
        // Another replica's fill may be renaming its verified copy over this
        // name right now; removing it then would leave its row without bytes.
        log::warn("store reconciliation: " + stored.digest.str() +
                  " does not hash to its name; left in place (shared metadata; regcache gc removes it)");
        ++corrupt_kept;
      } else if (!fills_.running(stored.digest)) {
        // Corrupt and no row: nothing refers to it. Not while a fill of the
        // digest runs: its verified copy may be about to take this path.
        blobs_.remove(stored.digest);
        ++removed;
      }
    });
  }
  return std::string(stop ? "store reconciliation stopped early: " : "store reconciled: ") + std::to_string(dropped) +
         " rows without content dropped, " + std::to_string(unreadable) + " unreadable objects kept, " +
         std::to_string(adopted) + " files adopted, " + std::to_string(removed) + " corrupt files removed" +
         (may_drop ? std::string() : ", " + std::to_string(corrupt_kept) + " corrupt files kept (" +
                                         to_string(policy) + ": rows never dropped)");
}

}  // namespace regcache::cache
