#pragma once
// Role: blob upload sessions of hosted repositories (OCI "POST then PATCH/PUT").
// A session row is bookkeeping only: its bytes live in the blob store's spool,
// named by the session id; completing a session commits the blob, links it and
// deletes the session (cache/hosted_registry.h).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace regcache::db {

struct UploadRecord {
  std::string id;  // random hex, also the spool's name in the blob store
  std::string ns;
  std::string repo;
  std::int64_t created = 0;
  std::int64_t updated = 0;  // last time bytes arrived: idle sessions expire from here
  std::string client;        // the address that started it (per-client session caps); may be empty
};

class UploadSessions {
 public:
  virtual ~UploadSessions() = default;

  // Inserts or replaces the session with this id.
  virtual void put_upload(const UploadRecord& record) = 0;
  virtual std::optional<UploadRecord> find_upload(const std::string& id) = 0;
  // Moves `updated` forward to `now` (never back); no session, no effect.
  virtual void touch_upload(const std::string& id, std::int64_t now) = 0;
  // True when a session was there to remove (of two concurrent deletes of one
  // session, exactly one sees true).
  virtual bool delete_upload(const std::string& id) = 0;
  // Every session, sorted by id.
  virtual std::vector<UploadRecord> list_uploads() = 0;
  // Sessions whose last activity is strictly before `cutoff` (unix seconds),
  // oldest first, at most `limit` of them (indexed: cost grows with the answer).
  virtual std::vector<UploadRecord> list_uploads_idle_since(std::int64_t cutoff, std::size_t limit) = 0;
};

}  // namespace regcache::db
