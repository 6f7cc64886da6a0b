#pragma once
// The application's start-up: the one place that builds the concrete objects
// (SQLite metadata, local blob store, upstream clients, cache, HTTP server) and
// wires them; everything else receives interfaces.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <mutex>
#include <vector>

#include "cache/observer.h"
#include "db/fill_leases.h"
#include "upstream/peer_client.h"
#include "proxy/config.h"
#include "proxy/status_page.h"


namespace regcache {
namespace db {
class MetadataStore;
}
namespace cache {
class BlobStore;
class ManifestMemo;
class PullThroughCache;
class HostedRegistry;
class AccessLog;
class EvictionWorker;
class ScrubScheduler;
class StoreUsageMeter;
enum class ReconcilePolicy;
}  // namespace cache
namespace upstream {
class Client;
}

namespace proxy {

class RegistryApi;
class Metrics;
struct ScrapeValues;
class HealthChecks;
class UpstreamMonitor;
class RecentErrors;
class TopRepositories;
struct Exchange;
namespace http {
class HttpEngine;
}

class Server {
 public:
  // Opens the store and binds the listening socket; start() serves and
  // reconciles the store with its metadata in the background. Throws
  // std::exception with a message fit for the operator.
  explicit Server(Config config);
  ~Server();

  void start();
  // Stops accepting, lets in-flight requests finish for at most `grace`, then
  // closes every connection. Returns false when requests or fills were still
  // running at the deadline.
  bool stop(std::chrono::seconds grace);
  std::uint16_t port() const;
  // Applies a re-read configuration (SIGHUP): upstreams with their credentials
  // and TTLs, hosted prefixes, offline and the log level change live; keys that
  // need a restart are logged by name and left as they were.
  void reload(Config fresh);
  std::chrono::seconds shutdown_grace() const { return shutdown_grace_; }

 private:
  StatusSnapshot status_snapshot() const;
  // With `cluster`: opens the fill lease table, the client for the other
  // replicas, and the internal endpoint (internal_).
  void start_cluster();
  void set_status_upstreams(const Config& config);

  Config config_;
  std::unique_ptr<db::MetadataStore> meta_;
  std::unique_ptr<cache::BlobStore> blobs_;
  // `cluster` (docs/REPLICAS.md): null without one. Before cache_, whose
  // running fills use them until it is destroyed.
  std::unique_ptr<db::FillLeases> fill_leases_;
  std::unique_ptr<upstream::PeerClient> peers_;
  // Serves /_regcache/internal/ (proxy/internal_endpoint.h); false for other paths.
  std::function<bool(Exchange&)> internal_;
  std::unique_ptr<cache::ManifestMemo> manifests_;
  // The lifecycle counters (cache/observer.h) the eviction worker and the
  // disk-full pass-through bump; declared first, so it outlives them.
  cache::StoreEvents store_events_;
  // Operator visibility, declared before the cache and the upstream clients
  // that report to them (fills may still run while the cache is destroyed).
  std::unique_ptr<Metrics> metrics_;  // null: metrics_enabled is false
  std::unique_ptr<UpstreamMonitor> upstream_monitor_;
  std::unique_ptr<RecentErrors> recent_errors_;  // the log's problem listener while this server lives
  // Takes recent_errors_ off the log before it goes, also when the
  // constructor throws (then no destructor of ours runs, members' do).
  struct ProblemListenerReset {
    ~ProblemListenerReset();
  } problem_listener_reset_;
  std::unique_ptr<TopRepositories> top_repositories_;
  // Declared before cache_: they outlive it and the fills it may still run.
  std::unique_ptr<cache::AccessLog> accesses_;
  std::unique_ptr<cache::EvictionWorker> eviction_;
  std::unique_ptr<cache::PullThroughCache> cache_;
  std::unique_ptr<cache::HostedRegistry> hosted_;
  std::unique_ptr<cache::ScrubScheduler> scrub_;  // scrub_interval_s
  std::unique_ptr<cache::StoreUsageMeter> store_usage_;  // the store gauges of /metrics
  std::unique_ptr<RegistryApi> api_;
  // Used by request handlers: declared before the engines, so destroyed after them.
  std::chrono::steady_clock::time_point started_;
  std::function<StatusSnapshot()> status_;
  mutable std::mutex status_mutex_;
  std::vector<StatusSnapshot::Upstream> status_upstreams_;  // guarded by status_mutex_
  std::unique_ptr<HealthChecks> health_;
  std::unique_ptr<http::HttpEngine> http_;
  std::unique_ptr<http::HttpEngine> metrics_http_;  // metrics_listen; null when not configured
  std::atomic<int> in_flight_{0};
  std::chrono::seconds shutdown_grace_{10};
  // The regcache_store_objects / _bytes gauges, by kind (cache/store_usage.h).
  void add_store_usage(ScrapeValues& v);
  void add_tier_stats(ScrapeValues& v);
  // Store reconciliation, started by start() and stopped by stop()/the destructor.
  void reconcile_in_background();
  // store_reconciliation, "auto" resolved for the configured metadata backend.
  cache::ReconcilePolicy reconcile_policy() const;
  std::atomic<bool> stop_reconciling_{false};
  std::thread reconciler_;
};

}  // namespace proxy
}  // namespace regcache
