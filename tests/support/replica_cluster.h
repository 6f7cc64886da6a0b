#pragma once
// Replicas of regcache with `cluster` set (#18, docs/REPLICAS.md) on one
// PostgreSQL database of the test run's cluster (shared_test_cluster), and the
// clients that read one blob from them step by step. Used by the fill-lease
// tests on a shared local data dir (tests/integration/test_fill_lease.cpp) and
// on one S3 bucket (tests/s3/test_replicas_s3.cpp).
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/regcache_server.h"
#include "support/temp_dir.h"

namespace regcache::test {

struct ReplicaClusterOptions {
  int replicas = 3;
  int lease_ttl_s = 5;
  // One cluster secret per replica (a misconfigured cluster); empty: the same for all.
  std::vector<std::string> secrets;
  // All replicas' data dirs are links to one shared dir (a shared local blob store).
  bool shared_data_dir = true;
  // Called on each replica's config (metadata and cluster already set) with its index.
  std::function<void(nlohmann::json&, int)> configure;
};

class ReplicaCluster {
 public:
  static const std::string kSecret;

  // Starts the replicas in front of `upstream_url`; each gets a fresh database
  // name prefix `database_prefix` (one database for all of them).
  ReplicaCluster(const std::string& upstream_url, const std::string& database_prefix, ReplicaClusterOptions options);
  ~ReplicaCluster();
  ReplicaCluster(const ReplicaCluster&) = delete;
  ReplicaCluster& operator=(const ReplicaCluster&) = delete;

  RegcacheServer& replica(int i) { return *replicas_.at(static_cast<std::size_t>(i)); }
  int size() const { return static_cast<int>(replicas_.size()); }
  const std::string& database() const { return database_; }
  const TempDir& dir() const { return tmp_; }
  // The replica whose URL holds a fill lease now, or -1.
  int lease_holder() const;

 private:
  TempDir tmp_;
  std::string database_;
  std::vector<std::unique_ptr<RegcacheServer>> replicas_;
};

// One client's GET of a blob, read on its own thread: head, first bytes, then the rest.
struct BlobClient {
  int status = 0;
  bool got_first_bytes = false;
  bool complete = false;
  std::uint64_t body_bytes = 0;
  std::optional<std::uint64_t> content_length;
  std::string body_digest;
  std::string error;

  // Reads GET `path` from 127.0.0.1:`port`; counts `first_bytes` up once body
  // bytes arrived, before reading the rest.
  void run(int port, const std::string& path, std::atomic<int>& first_bytes,
           std::chrono::seconds timeout = std::chrono::seconds(60));
};

}  // namespace regcache::test
