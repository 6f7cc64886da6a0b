#pragma once
// Liveness and readiness (issue 15). /healthz answers 200 whenever the
// process serves requests at all. /readyz runs the readiness checks below and
// answers 503 naming every failing check, so that a load balancer or a
// Kubernetes probe takes the instance out while its store cannot serve:
//
//   database   the metadata store answers a fresh read
//   data_dir   a spool file can be created and written in the store
//   disk_free  free space is above the floor (min_free_bytes; 0: no floor)
//   blob_store a remote blob store answers (S3: its bucket); only with one
//
// The checks go through the store interfaces (MetadataStore, BlobStore), so
// another backend brings its own meaning of "answers" and "writable".
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace regcache {
namespace db {
class MetadataStore;
}
namespace cache {
class BlobStore;
}
}  // namespace regcache

namespace regcache::proxy {

struct HealthCheck {
  std::string name;
  bool ok = true;
  std::string detail;  // why it failed, or what was measured
};

struct Readiness {
  bool ready = true;
  std::vector<HealthCheck> checks;
  // {"status":"ready"|"not ready","checks":[{"name":…,"ok":…,"detail":…}]}
  std::string json() const;
};

class HealthChecks {
 public:
  HealthChecks(db::MetadataStore& meta, cache::BlobStore& blobs) : meta_(meta), blobs_(blobs) {}
  // The disk floor: readiness fails while free space is below it (0: no floor).
  void set_min_free_bytes(std::uint64_t floor) { min_free_bytes_ = floor; }
  std::uint64_t min_free_bytes() const { return min_free_bytes_; }
  Readiness check() const;

 private:
  db::MetadataStore& meta_;
  cache::BlobStore& blobs_;
  std::atomic<std::uint64_t> min_free_bytes_{0};
};

}  // namespace regcache::proxy
