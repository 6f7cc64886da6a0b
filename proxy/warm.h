#pragma once
// Pre-filling the cache through a running regcache's own HTTP API: every
// manifest and blob is requested exactly as an engine's pull would request
// it, so it takes the same path through the server — routing by upstream
// name, single-flight with concurrent pulls, digest verification, the store's
// atomic publication. The client itself checks what it receives (sha256 of
// every body) and discards blob bytes; the server keeps them.
//
// Resumable and idempotent: a blob whose HEAD answers X-Cache-Status: hit is
// not fetched again, and a tag within its TTL is answered from the cache, so a
// second run asks the upstreams for nothing new.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/image_ref.h"

namespace regcache::proxy {

struct WarmOptions {
  std::string server_url = "http://127.0.0.1:5000";  // the running regcache
  std::vector<Platform> platforms;                   // empty: every platform of an index
  bool referrers = false;                            // also warm each manifest's referrers
  std::size_t newest = 0;                            // ":*"/globs: only the last N in version order
  std::string username;                              // Basic credentials for the server, if it asks
  std::string password;
  std::chrono::seconds timeout{300};                 // per request (a cold blob may take long)
};

// What one warm run did: objects are manifests and blobs, each counted once
// per reference.
struct WarmCounts {
  std::size_t objects = 0;
  std::size_t fetched = 0;      // the server had to get it from the upstream (X-Cache-Status miss)
  std::size_t cached = 0;       // already here (hit)
  std::size_t revalidated = 0;  // tags confirmed with the upstream (a HEAD there, nothing downloaded)
  std::uint64_t bytes_fetched = 0;
  std::uint64_t bytes_total = 0;
  WarmCounts& operator+=(const WarmCounts& o);
};

struct WarmResult {
  std::string reference;           // as given (a ":*" reference: one result per tag, plus its own on failure)
  bool ok = false;
  std::string error;               // when !ok
  std::string digest;              // what the reference resolved to
  std::vector<std::string> platforms;
  WarmCounts counts;
};

// Receives progress: after each object (for a live terminal line) and after
// each reference.
struct WarmObserver {
  std::function<void(const WarmCounts& so_far, const std::string& reference)> object_done;
  std::function<void(const WarmResult&)> reference_done;
};

class Warmer {
 public:
  explicit Warmer(WarmOptions options, WarmObserver observer = {});
  ~Warmer();
  Warmer(const Warmer&) = delete;
  Warmer& operator=(const Warmer&) = delete;

  // Warms one reference (a ":*" or glob reference: each selected tag). Never
  // throws for a failing reference: its result says why.
  std::vector<WarmResult> warm(const ImageRef& ref);
  const WarmCounts& totals() const { return totals_; }
  // From another thread: breaks off the request in progress (its socket is
  // shut down) and fails every later one, so a stopping server need not wait
  // for a large blob to arrive.
  void cancel();

 private:
  struct Http;
  WarmResult warm_one(const ImageRef& ref, const std::string& reference);
  void warm_manifest(const ImageRef& ref, const std::string& reference, const std::optional<std::string>& expected,
                     WarmResult& result, int depth, bool top);
  void warm_blob(const ImageRef& ref, const std::string& digest, std::uint64_t size, WarmResult& result);
  void warm_referrers(const ImageRef& ref, const std::string& digest, WarmResult& result);
  std::vector<std::string> list_tags(const ImageRef& ref);
  std::string path(const ImageRef& ref, const std::string& rest, const std::string& query = "") const;
  void count(WarmResult& result, const std::string& cache_status, std::uint64_t bytes);

  WarmOptions options_;
  WarmObserver observer_;
  std::unique_ptr<Http> http_;
  WarmCounts totals_;
};

// Human-readable byte count ("12.3 MiB").
std::string format_bytes(std::uint64_t bytes);

}  // namespace regcache::proxy
