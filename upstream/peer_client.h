#pragma once
// A client for the other replicas of a cluster (docs/REPLICAS.md): streams a
// fill from the replica that holds its lease, through that replica's internal
// read-while-write endpoint
//   GET /_regcache/internal/fills/<digest>?ns=<namespace, percent-encoded>
//   Authorization: Bearer <cluster secret>
// Upstream-like: the answer is a BodyStream whose bytes a fill spools and
// verifies like an upstream's. Connections are pooled per replica.
// Failures to connect or read throw TransportError; every status is returned.
// The secret never appears in messages.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "upstream/client.h"

namespace regcache::upstream {

class ConnectionPool;

class PeerClient {
 public:
  // `read_timeout`: how long a stream may stay silent (the owner's upstream
  // may pause); a killed owner's connection breaks at once regardless.
  PeerClient(std::string secret, std::chrono::milliseconds connect_timeout, std::chrono::milliseconds read_timeout);
  ~PeerClient();
  PeerClient(const PeerClient&) = delete;
  PeerClient& operator=(const PeerClient&) = delete;

  // The fill of (ns, digest) on the replica at `peer_url` (scheme://host:port).
  std::unique_ptr<BodyStream> get_fill(const std::string& peer_url, const std::string& ns, const std::string& digest);

  static constexpr const char* kFillsPath = "/_regcache/internal/fills/";

 private:
  std::shared_ptr<ConnectionPool> pool_for(const std::string& peer_url);

  const std::string secret_;
  const std::chrono::milliseconds connect_timeout_, read_timeout_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ConnectionPool>> pools_;  // by peer URL; guarded by mutex_
};

}  // namespace regcache::upstream
