#include "cache/hosted_registry.h"

#include <openssl/rand.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "cache/policy.h"
#include "cache/store_maintenance.h"
#include "common/log.h"
#include "common/manifest_schema.h"
#include "common/thread_name.h"

namespace regcache::cache {
namespace {

using nlohmann::json;
const std::string& kNs = HostedRegistry::kNamespace;

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string new_upload_id() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("no randomness for an upload id");
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (unsigned char c : raw) {
    id.push_back(hex[c >> 4]);
    id.push_back(hex[c & 15]);
  }
  return id;
}

RegistryError upload_unknown(const std::string& id) {
  return RegistryError(ErrorCode::BlobUploadUnknown, "upload " + id + " is unknown or expired");
}

// The digest of a descriptor object, or MANIFEST_INVALID.
Digest descriptor_digest(const json& descriptor, const std::string& where) {
  if (descriptor.is_object())
    if (auto it = descriptor.find("digest"); it != descriptor.end() && it->is_string())
      if (auto d = Digest::parse(it->get<std::string>())) return *d;
  throw RegistryError(ErrorCode::ManifestInvalid, where + " is not a descriptor with a valid digest");
}

std::string string_field(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

HostedRegistry::HostedRegistry(BlobStore& blobs, db::MetadataStore& meta, ManifestMemo& manifests,
                               HostedOptions options)
    : blobs_(blobs), meta_(meta), manifests_(manifests), options_(options) {
  // Once, at start: later starts keep the counts in memory (O(1)).
  for (const auto& u : meta_.list_uploads()) {
    ++sessions_;
    ++sessions_per_client_[u.client];
  }
  sweeper_ = std::thread([this] { sweep_loop(); });
}

HostedRegistry::~HostedRegistry() {
  {
    std::lock_guard lock(sweep_mutex_);
    stopping_ = true;
  }
  sweep_wake_.notify_all();
  sweeper_.join();
}

void HostedRegistry::sweep_loop() {
  name_this_thread("regcache-sweep");
  const auto interval = std::clamp<std::chrono::seconds>(options_.upload_ttl / 4, std::chrono::seconds(1),
                                                         std::chrono::seconds(60));
  std::unique_lock lock(sweep_mutex_);
  while (!sweep_wake_.wait_for(lock, interval, [&] { return stopping_; })) {
    lock.unlock();
    try {
      if (std::size_t n = expire_uploads()) log::info(std::to_string(n) + " idle upload sessions expired");
    } catch (const std::exception& e) {
      log::warn(std::string("upload expiry failed: ") + e.what());
    }
    lock.lock();
  }
}

// --- pull ------------------------------------------------------------------

ManifestResult HostedRegistry::get_manifest(const RepoName& repo, const Reference& ref) {
  std::optional<Digest> digest;
  if (ref.is_digest()) {
    if (meta_.is_linked(kNs, repo.str(), ref.as_digest())) digest = ref.as_digest();
  } else if (auto tag = meta_.find_tag(kNs, repo.str(), ref.as_tag())) {
    digest = tag->digest;
  }
  if (digest)
    if (auto m = manifests_.load(kNs, repo.str(), *digest)) return {m->body, m->media_type, *digest, CacheStatus::Local};
  throw RegistryError(ErrorCode::ManifestUnknown, "manifest " + repo.str() + (ref.is_digest() ? "@" : ":") +
                                                      ref.str() + " is unknown");
}

// A digest is served only through a repository that links it: pushed to X, it
// is not readable as Y until Y mounts it or pushes it too.
BlobResult HostedRegistry::get_blob(const RepoName& repo, const Digest& digest) {
  if (meta_.is_linked(kNs, repo.str(), digest))
    if (auto reader = blobs_.open(digest)) return {CacheStatus::Local, std::move(reader), nullptr};
  throw RegistryError(ErrorCode::BlobUnknown, "blob " + digest.str() + " is unknown to " + repo.str());
}

// --- uploads ---------------------------------------------------------------

std::shared_ptr<std::mutex> HostedRegistry::upload_lock(const std::string& id) {
  std::lock_guard lock(locks_mutex_);
  auto& weak = upload_locks_[id];
  auto strong = weak.lock();
  if (!strong) weak = strong = std::make_shared<std::mutex>();
  // Drop entries of sessions nobody holds any more: a walk only when the map
  // has doubled since the last one, so a call costs O(1) amortised.
  if (upload_locks_.size() > prune_locks_above_) {
    for (auto it = upload_locks_.begin(); it != upload_locks_.end();)
      it = it->second.expired() ? upload_locks_.erase(it) : std::next(it);
    prune_locks_above_ = std::max<std::size_t>(64, 2 * upload_locks_.size());
  }
  return strong;
}

db::UploadRecord HostedRegistry::session(const RepoName& repo, const std::string& id) {
  if (id.size() != 32 || id.find_first_not_of("0123456789abcdef") != std::string::npos) throw upload_unknown(id);
  auto record = meta_.find_upload(id);
  if (!record || record->repo != repo.str() || record->ns != kNs) throw upload_unknown(id);
  if (now() - record->updated > options_.upload_ttl.count()) {
    drop_session(*record);
    throw upload_unknown(id);
  }
  return *record;
}

void HostedRegistry::release_slot(const std::string& client) {
  std::lock_guard lock(sessions_mutex_);
  if (sessions_ > 0) --sessions_;
  if (auto it = sessions_per_client_.find(client); it != sessions_per_client_.end() && --it->second == 0)
    sessions_per_client_.erase(it);
}

void HostedRegistry::drop_session(const db::UploadRecord& record) {
  blobs_.remove_upload(record.id);
  // Only the call that actually removed the row frees the slot: a session
  // finished and expired at once is counted out once.
  if (meta_.delete_upload(record.id)) release_slot(record.client);
}

std::size_t HostedRegistry::upload_sessions() const {
  std::lock_guard lock(sessions_mutex_);
  return sessions_;
}

UploadStatus HostedRegistry::start_upload(const RepoName& repo, const std::string& client) {
  {
    std::lock_guard lock(sessions_mutex_);
    std::size_t& mine = sessions_per_client_[client];
    auto refuse = [&](const std::string& why) {
      if (mine == 0) sessions_per_client_.erase(client);
      return RegistryError(ErrorCode::TooManyRequests,
                           why + "; finish or cancel sessions, or wait for idle ones to expire after " +
                               std::to_string(options_.upload_ttl.count()) + " s");
    };
    if (mine >= options_.max_upload_sessions_per_client)
      throw refuse("client " + client + " has " + std::to_string(mine) + " open upload sessions, the most allowed (max_upload_sessions_per_client)");
    if (sessions_ >= options_.max_upload_sessions)
      throw refuse("the registry has " + std::to_string(sessions_) + " open upload sessions, the most allowed (max_upload_sessions)");
    ++mine;  // the slot is taken before any I/O; released below on failure
    ++sessions_;
  }
  try {
    std::string id = new_upload_id();
    blobs_.open_upload(id, true);  // the empty file exists before the session row
    meta_.put_upload({id, kNs, repo.str(), now(), now(), client});
    return {id, 0};
  } catch (...) {
    release_slot(client);
    throw;
  }
}

UploadStatus HostedRegistry::upload_status(const RepoName& repo, const std::string& id) {
  session(repo, id);
  auto size = blobs_.upload_size(id);
  if (!size) throw upload_unknown(id);
  return {id, *size};
}

std::uint64_t HostedRegistry::append(BlobWriter& writer, Body body) {
  std::vector<char> buffer(256 << 10);
  std::uint64_t received = 0;
  while (body.stream) {
    body.stream.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    auto n = static_cast<std::size_t>(body.stream.gcount());
    if (n == 0) break;
    writer.write(buffer.data(), n);
    received += n;
  }
  if (body.length && received != *body.length)
    throw RegistryError(ErrorCode::SizeInvalid, "received " + std::to_string(received) + " bytes of the " +
                                                    std::to_string(*body.length) + " announced");
  return received;
}

UploadStatus HostedRegistry::append_upload(const RepoName& repo, const std::string& id,
                                           std::optional<std::uint64_t> first_byte, Body body) {
  session(repo, id);
  auto lock = upload_lock(id);
  std::lock_guard guard(*lock);
  auto writer = blobs_.open_upload(id, false);
  if (!writer) throw upload_unknown(id);
  if (first_byte && *first_byte != writer->size())
    throw RegistryError(ErrorCode::UploadRangeInvalid, "chunk starts at byte " + std::to_string(*first_byte) +
                                                           " but the upload has " + std::to_string(writer->size()));
  append(*writer, body);
  writer->end_chunk();  // a store that sends parts flushes them here
  meta_.touch_upload(id, now());
  return {id, writer->size()};
}

void HostedRegistry::publish(const RepoName& repo, BlobWriter& writer, const Digest& digest) {
  writer.commit(digest);  // verify, fsync, rename: outside the unit, it may take a while
  std::int64_t t = now();
  bool present = false;
  meta_.transact([&](db::MetadataStore& tx) {
    // A delete (or gc) that collected this digest removes the bytes in a unit
    // of its own after its rows are gone, and only while no row names the
    // digest: checked here, inside ours, either that removal already happened
    // (we see no bytes and refuse) or it will see our row and keep them.
    present = blobs_.exists(digest);
    if (!present) return;
    tx.put_blob({digest, writer.size(), "", t, t});
    tx.link(kNs, repo.str(), digest);
  });
  if (!present)
    throw RegistryError(ErrorCode::BlobUploadInvalid,
                        "blob " + digest.str() + " was deleted while it was being published; push it again");
}

void HostedRegistry::finish_upload(const RepoName& repo, const std::string& id, std::optional<Body> body,
                                   const Digest& digest) {
  auto record = session(repo, id);
  auto lock = upload_lock(id);
  std::lock_guard guard(*lock);
  auto writer = blobs_.open_upload(id, false);
  if (!writer) throw upload_unknown(id);
  try {
    if (body) append(*writer, *body);
    publish(repo, *writer, digest);
  } catch (const RegistryError& e) {
    if (e.code() != ErrorCode::DigestInvalid) throw;
    writer.reset();
    drop_session(record);
    throw;
  }
  if (meta_.delete_upload(id)) release_slot(record.client);
}

void HostedRegistry::cancel_upload(const RepoName& repo, const std::string& id) {
  auto record = session(repo, id);
  auto lock = upload_lock(id);
  std::lock_guard guard(*lock);
  drop_session(record);
}

void HostedRegistry::put_blob(const RepoName& repo, Body body, const Digest& digest) {
  auto writer = blobs_.create_writer();
  append(*writer, body);
  publish(repo, *writer, digest);
}

bool HostedRegistry::mount_blob(const RepoName& to, const RepoName& from, const Digest& digest) {
  bool mounted = false;
  meta_.transact([&](db::MetadataStore& tx) {
    mounted = tx.is_linked(kNs, from.str(), digest) && blobs_.exists(digest);
    if (!mounted) return;
    tx.link(kNs, to.str(), digest);
    tx.touch_blob(digest, now());  // a use: gc leaves it to the manifest that will follow (min_age)
  });
  return mounted;
}

std::size_t HostedRegistry::expire_uploads() {
  constexpr std::size_t kBatch = 256;
  std::size_t removed = 0;
  const std::int64_t cutoff = now() - options_.upload_ttl.count();
  for (;;) {
    auto idle = meta_.list_uploads_idle_since(cutoff, kBatch);
    std::size_t busy = 0;
    for (const auto& u : idle) {
      auto lock = upload_lock(u.id);
      std::unique_lock guard(*lock, std::try_to_lock);
      if (!guard.owns_lock()) {  // a request is writing to it right now
        ++busy;
        continue;
      }
      drop_session(u);
      ++removed;
    }
    if (idle.size() < kBatch || busy == idle.size()) return removed;
  }
}

std::size_t HostedRegistry::remove_orphan_uploads() {
  std::set<std::string> sessions;
  std::size_t removed = 0;
  for (const auto& u : meta_.list_uploads()) {
    if (!blobs_.upload_size(u.id)) {
      drop_session(u);
      ++removed;
    } else {
      sessions.insert(u.id);
    }
  }
  for (const auto& id : blobs_.list_uploads()) {
    if (!sessions.count(id)) {
      blobs_.remove_upload(id);
      ++removed;
    }
  }
  return removed;
}

// --- manifests -------------------------------------------------------------

PutManifestResult HostedRegistry::put_manifest(const RepoName& repo, const Reference& ref, const std::string& body,
                                               const std::string& content_type) {
  if (body.size() > options_.max_manifest_bytes)
    throw RegistryError(ErrorCode::ManifestTooLarge, "manifest of " + std::to_string(body.size()) +
                                                         " bytes exceeds the limit of " +
                                                         std::to_string(options_.max_manifest_bytes));
  // Bounded parse, then the schema (common/manifest_schema.h): from here on the
  // document is shallow, its descriptors and annotations well-typed.
  json doc = parse_manifest_json(body);
  std::string media_type = validate_manifest(doc, content_type);

  // Everything the manifest references must already be in this repository.
  std::vector<Digest> children;
  std::string artifact_type = string_field(doc, "artifactType");
  if (auto list = doc.find("manifests"); list != doc.end()) {
    if (!list->is_array()) throw RegistryError(ErrorCode::ManifestInvalid, "manifests must be a list");
    for (const auto& entry : *list) {
      Digest child = descriptor_digest(entry, "an index entry");
      if (!meta_.is_linked(kNs, repo.str(), child) || !manifests_.load(kNs, repo.str(), child))
        throw RegistryError(ErrorCode::ManifestBlobUnknown, "index references unknown manifest " + child.str());
      children.push_back(child);
    }
  } else {
    auto config = doc.find("config");
    if (config == doc.end()) throw RegistryError(ErrorCode::ManifestInvalid, "manifest has no config");
    children.push_back(descriptor_digest(*config, "config"));
    if (artifact_type.empty()) artifact_type = string_field(*config, "mediaType");
    if (auto layers = doc.find("layers"); layers != doc.end()) {
      if (!layers->is_array()) throw RegistryError(ErrorCode::ManifestInvalid, "layers must be a list");
      for (const auto& layer : *layers) {
        Digest d = descriptor_digest(layer, "a layer");
        if (layer.contains("urls")) continue;  // non-distributable: fetched from elsewhere
        children.push_back(d);
      }
    }
    for (const auto& child : children)
      if (!meta_.is_linked(kNs, repo.str(), child))
        throw RegistryError(ErrorCode::ManifestBlobUnknown, "manifest references unknown blob " + child.str());
  }
  std::optional<Digest> subject;
  if (auto s = doc.find("subject"); s != doc.end()) subject = descriptor_digest(*s, "subject");

  Digest digest = ref.is_digest() ? digest_of(ref.as_digest().algorithm(), body) : sha256_of(body);
  if (ref.is_digest() && digest != ref.as_digest())
    throw RegistryError(ErrorCode::DigestInvalid,
                        "manifest body has digest " + digest.str() + ", not " + ref.as_digest().str());

  std::string annotations_json;
  if (subject) {
    json annotations = doc.contains("annotations") && doc["annotations"].is_object() ? doc["annotations"] : json::object();
    annotations_json = annotations.dump();
  }

  // One unit: the references are checked and recorded together, so a delete of
  // a layer (also one unit) either comes first and this put fails with
  // MANIFEST_BLOB_UNKNOWN, or comes after and is refused because this manifest
  // references the layer. The bytes are written inside the unit too (they are
  // small), so a delete collecting the same digest cannot remove them between
  // their write and the link. Blob rows get no media type from a hosted write:
  // the type lives on this repository's link only.
  std::int64_t t = now();
  manifests_.forget(kNs, repo.str(), digest);  // a re-push may bring another media type
  const std::uint64_t generation = manifests_.generation(digest);
  meta_.transact([&](db::MetadataStore& tx) {
    for (const auto& child : children) {
      auto link = tx.find_link(kNs, repo.str(), child);
      bool is_index = doc.contains("manifests");
      if (!link || (is_index && link->media_type.empty()) || !blobs_.exists(child))
        throw RegistryError(ErrorCode::ManifestBlobUnknown, std::string(is_index ? "index references unknown manifest "
                                                                                 : "manifest references unknown blob ") +
                                                                child.str());
    }
    auto writer = blobs_.create_writer();
    writer->write(body.data(), body.size());
    writer->commit(digest);
    tx.put_blob({digest, body.size(), "", t, t});
    tx.link(kNs, repo.str(), digest, media_type);
    tx.put_manifest_refs(kNs, repo.str(), digest, children);
    if (subject)
      tx.put_referrer(kNs, repo.str(), {*subject, digest, media_type, artifact_type, body.size(), annotations_json});
    if (!ref.is_digest()) tx.put_tag(kNs, repo.str(), ref.as_tag(), digest, t);
  });
  // Remembered only if no delete forgot the digest since the generation was
  // taken (before the unit): a delete that commits after this put's unit and
  // forgets before this line must not be undone by it.
  manifests_.remember_if_current(kNs, repo.str(), digest, {std::make_shared<const std::string>(body), media_type},
                                 generation);
  return {digest, subject};
}

// --- deletes ---------------------------------------------------------------

void HostedRegistry::require_deletes() const {
  if (!options_.delete_enabled) throw RegistryError(ErrorCode::Unsupported, "deleting is disabled on this registry");
}

bool HostedRegistry::collect_if_unreferenced(db::MetadataStore& tx, const Digest& digest) {
  if (tx.count_links(digest) > 0) return false;
  tx.delete_blob(digest);
  return true;
}

void HostedRegistry::remove_collected(const Digest& digest) {
  manifests_.forget(digest);
  // The second unit (cache/store_maintenance.h): the object goes only while no
  // row and no link names the digest again. A failure here leaves an object
  // without a row, which `regcache gc` removes; never a row without its object.
  try {
    remove_if_unreferenced(blobs_, meta_, digest);
  } catch (const std::exception& e) {
    log::warn("removing the object of collected " + digest.str() + " failed (regcache gc will): " + e.what());
  }
}

void HostedRegistry::delete_manifest(const RepoName& repo, const Reference& ref) {
  require_deletes();
  if (!ref.is_digest()) {
    if (!options_.tag_delete_enabled)
      throw RegistryError(ErrorCode::Unsupported, "deleting tags is disabled; delete the manifest by digest");
    meta_.transact([&](db::MetadataStore& tx) {
      if (!tx.find_tag(kNs, repo.str(), ref.as_tag()))
        throw RegistryError(ErrorCode::ManifestUnknown, "tag " + ref.as_tag() + " is unknown to " + repo.str());
      tx.delete_tag(kNs, repo.str(), ref.as_tag());
    });
    return;
  }
  const Digest& digest = ref.as_digest();
  bool collected = false;
  meta_.transact([&](db::MetadataStore& tx) {
    auto link = tx.find_link(kNs, repo.str(), digest);
    if (!link || link->media_type.empty())
      throw RegistryError(ErrorCode::ManifestUnknown, "manifest " + digest.str() + " is unknown to " + repo.str());
    tx.delete_tags_for(kNs, repo.str(), digest);
    tx.delete_referrer(kNs, repo.str(), digest);
    tx.delete_manifest_refs(kNs, repo.str(), digest);
    tx.unlink(kNs, repo.str(), digest);
    collected = collect_if_unreferenced(tx, digest);
  });
  manifests_.forget(kNs, repo.str(), digest);
  if (collected) remove_collected(digest);
}

void HostedRegistry::delete_blob(const RepoName& repo, const Digest& digest) {
  require_deletes();
  bool collected = false;
  meta_.transact([&](db::MetadataStore& tx) {
    if (!tx.is_linked(kNs, repo.str(), digest))
      throw RegistryError(ErrorCode::BlobUnknown, "blob " + digest.str() + " is unknown to " + repo.str());
    auto users = tx.manifests_referencing(kNs, repo.str(), digest);
    if (!users.empty())
      throw RegistryError(ErrorCode::Denied, "blob " + digest.str() + " is referenced by manifest " +
                                                 users.front().str() + "; delete the manifest first");
    tx.unlink(kNs, repo.str(), digest);
    collected = collect_if_unreferenced(tx, digest);
  });
  manifests_.forget(kNs, repo.str(), digest);
  if (collected) remove_collected(digest);
}

// --- discovery -------------------------------------------------------------

std::vector<std::string> HostedRegistry::list_tags(const RepoName& repo) {
  auto tags = meta_.list_tags(kNs, repo.str());
  if (tags.empty()) {
    auto repos = meta_.list_repositories(kNs);
    if (!std::binary_search(repos.begin(), repos.end(), repo.str()))
      throw RegistryError(ErrorCode::NameUnknown, "repository " + repo.str() + " is unknown");
  }
  return tags;
}

std::vector<std::string> HostedRegistry::list_repositories() { return meta_.list_repositories(kNs); }

std::string HostedRegistry::referrers(const RepoName& repo, const Digest& subject, const std::string& artifact_type) {
  json manifests = json::array();
  for (const auto& r : meta_.list_referrers(kNs, repo.str(), subject)) {
    if (!artifact_type.empty() && r.artifact_type != artifact_type) continue;
    json d = {{"mediaType", r.media_type}, {"digest", r.digest.str()}, {"size", r.size}};
    if (!r.artifact_type.empty()) d["artifactType"] = r.artifact_type;
    json annotations = json::parse(r.annotations_json, nullptr, false);
    if (annotations.is_object() && !annotations.empty()) d["annotations"] = annotations;
    manifests.push_back(std::move(d));
  }
  return json{{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", manifests}}
      .dump();
}

}  // namespace regcache::cache
