#include "proxy/server.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "cache/access_log.h"
#include "cache/blob_store.h"
#include "cache/eviction_worker.h"
#include "cache/hosted_registry.h"
#include "cache/manifest_memo.h"
#include "cache/observer.h"
#include "cache/no_fd_blob_store.h"
#include "cache/pull_through_cache.h"
#include "cache/scrub_scheduler.h"
#include "cache/store_usage.h"
#include "common/log.h"
#include "common/thread_name.h"
#include "cache/open_blob_store.h"
#include "cache/tiered_blob_store.h"
#include "db/metadata_store.h"
#include "db/open_metadata_store.h"
#include "db/postgres_metadata_store.h"
#include "db/sqlite_metadata_store.h"
#include "proxy/health.h"
#include "proxy/internal_endpoint.h"
#include "proxy/metrics.h"
#include "proxy/reactor.h"
#include "proxy/sd_notify.h"
#include "proxy/status_page.h"
#include "proxy/status_sources.h"
#include "proxy/registry_api.h"
#include "proxy/upstream_monitor.h"
#include "upstream/client.h"

namespace regcache::proxy {
namespace {

// A client's X-Request-Id is kept when it is a plausible id (1 to 128
// printable ASCII characters, no spaces): it goes into log lines and a
// response header, so anything else is replaced by a fresh one.
bool usable_request_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (unsigned char c : id)
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
  return true;
}

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    std::uint64_t v = rng();
    for (int i = 0; i < 16; ++i, v >>= 4) id[static_cast<std::size_t>(half * 16 + i)] = hex[v & 15];
  }
  return id;
}

// The operator endpoints (outside /v2/, so no repository name reaches them).
// Returns false when `ex` is not one of them. `api` is null on the metrics
// listener, which serves no status page.
bool serve_operator_endpoint(Exchange& ex, Metrics* metrics, const HealthChecks& health, RegistryApi* api,
                             const std::function<StatusSnapshot()>& status) {
  if (api && (ex.path == "/_regcache/" || ex.path == "/_regcache/status.json")) {
    const std::string& method = ex.request.getMethod();
    if (method != "GET" && method != "HEAD") return false;  // the API answers 404/405 as for any path
    api->serve_operator_page(ex, [&] {
      ex.response.set("Cache-Control", "no-store");
      // The page carries no script and loads nothing from elsewhere.
      ex.response.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
      ex.response.set("X-Content-Type-Options", "nosniff");
      StatusSnapshot snapshot = status();
      if (auto authn = api->authenticator(); authn && authn->enabled()) hide_caller_details(snapshot);
      if (ex.path == "/_regcache/")
        send_body(ex, status_html(snapshot), "text/html; charset=utf-8");
      else
        send_body(ex, status_json(snapshot), "application/json");
    });
    return true;
  }
  const bool is_metrics = ex.path == "/metrics" && metrics;
  if (!is_metrics && ex.path != "/healthz" && ex.path != "/readyz") return false;
  ex.response.set("Cache-Control", "no-store");
  const std::string& method = ex.request.getMethod();
  if (method != "GET" && method != "HEAD") {
    ex.response.set("Allow", "GET, HEAD");
    send_error(ex, RegistryError(ErrorCode::MethodNotAllowed, method + " is not supported on " + ex.path));
    return true;
  }
  if (is_metrics) {
    send_body(ex, metrics->render(), Metrics::kContentType);
  } else if (ex.path == "/healthz") {
    send_body(ex, "ok\n", "text/plain; charset=utf-8");
  } else {
    Readiness r = health.check();
    if (!r.ready) {
      ex.response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_SERVICE_UNAVAILABLE);
      std::string failing;
      for (const auto& c : r.checks)
        if (!c.ok) failing += (failing.empty() ? "" : "; ") + c.name + ": " + c.detail;
      log::warn("readiness: not ready: " + failing);
    }
    send_body(ex, r.json(), "application/json");
  }
  return true;
}

// Serves one request through the registry API, records it in the metrics and
// writes its access log line: the one place where a request completes with its
// status, bytes and duration known.
void handle_request(RegistryApi& api, Metrics* metrics, TopRepositories& top, const HealthChecks& health,
                    const std::function<StatusSnapshot()>& status_page, std::atomic<int>& in_flight, bool tls,
                    const std::function<bool(Exchange&)>& internal, Poco::Net::HTTPServerRequest& req,
                    Poco::Net::HTTPServerResponse& resp) {
  auto started = std::chrono::steady_clock::now();
  ++in_flight;
  Exchange ex(req, resp, tls);
  std::string request_id = req.get("X-Request-Id", "");
  if (!usable_request_id(request_id)) request_id = new_request_id();
  resp.set("X-Request-Id", request_id);
  try {
    if (!internal(ex) && !serve_operator_endpoint(ex, metrics, health, &api, status_page)) api.handle(ex);
  } catch (const std::exception& e) {  // ClientGone, or the socket failing
    log::debug(std::string("client connection ended: ") + e.what());
    abort_connection(ex);
  }
  // Metrics and the access log line: now, or when the event loop has sent
  // the end of a blob body to a slow reader (then with the bytes really sent,
  // the whole time, and "aborted" when the client went away first).
  const int status = static_cast<int>(resp.getStatus());
  auto complete = [started, metrics, request_id, status, method = req.getMethod(),
                   uri = http::printable(req.getURI(), 2048), bytes = ex.body_bytes, cache_status = ex.cache_status,
                   aborted = ex.aborted, path = ex.path, resource = ex.resource, head_sent = ex.head_sent,
                   ns = resp.get("OCI-Namespace", ""), client = req.clientAddress().toString()](std::uint64_t unsent) {
    auto finished = std::chrono::steady_clock::now();
    const std::uint64_t sent = bytes - std::min(bytes, unsent);
    if (metrics) {
      RequestSample sample;
      sample.route = path == RegistryApi::kTokenPath ? RouteKind::Token : route_kind(resource);
      sample.method = method_kind(method);
      sample.status = status;
      sample.cache = cache_result(cache_status);
      sample.body_bytes = sent;
      sample.seconds = std::chrono::duration<double>(finished - started).count();
      if (head_sent) sample.first_byte_seconds = std::chrono::duration<double>(*head_sent - started).count();
      metrics->record_request(sample);
    }
    log::access({request_id, method, uri, status, sent,
                 std::chrono::duration<double, std::milli>(finished - started).count(), cache_status, ns, client,
                 aborted || unsent > 0});
  };
  if (ex.aborted || !http::when_body_sent(req, complete)) complete(0);
  // A pulled image: its manifest answered (the status page's top
  // repositories). After the request's metrics, which a client may look for
  // as soon as it has the answer.
  if (ex.resource == Resource::Manifest && status >= 200 && status < 300 && !ex.aborted) {
    const std::string ns = resp.get("OCI-Namespace", "");
    top.count(ns.empty() ? ex.repository : ns + "/" + ex.repository);
  }
  --in_flight;
}

// Only the operator endpoints, for the separate metrics listener.
void handle_operator_request(Metrics* metrics, const HealthChecks& health, Poco::Net::HTTPServerRequest& req,
                             Poco::Net::HTTPServerResponse& resp) {
  Exchange ex(req, resp, false);
  try {
    if (!serve_operator_endpoint(ex, metrics, health, nullptr, {}))
      send_error(ex, RegistryError(ErrorCode::NotFound, "no such endpoint on the metrics listener: " + ex.path));
  } catch (const std::exception& e) {
    log::debug(std::string("metrics client connection ended: ") + e.what());
    abort_connection(ex);
  }
}

// The upstream clients and routing a configuration asks for.
OriginResolver routing(const Config& config, upstream::ExchangeObserver* observer) {
  std::vector<cache::Origin> origins;
  std::size_t default_index = 0;
  for (const auto& u : config.upstreams) {
    if (u.client.name == config.default_upstream) default_index = origins.size();
    origins.push_back(
        {u.client.name, upstream::make_client(u.client, observer), u.tag_ttl, u.negative_ttl, config.offline});
  }
  return OriginResolver(std::move(origins), default_index, config.hosted);
}

// The storage cap, free-space floor, watermarks and pins a configuration asks for.
cache::EvictionSettings eviction_settings(const Config& config) {
  cache::EvictionSettings s;
  s.max_cache_bytes = config.max_cache_bytes;
  s.min_free_bytes = config.min_free_bytes;
  s.high_watermark = config.cache_high_watermark;
  s.low_watermark = config.cache_low_watermark;
  s.pins = configured_pins(config);
  return s;
}

// What eviction reads as the store's free space. The local store: its file
// system. A bucket has no free space to measure: it reports itself unbounded, so
// only max_cache_bytes and the watermarks evict from it (min_free_bytes and the
// disk floor do not apply; the data dir then holds only spools).
cache::SpaceProbe blob_space_probe(const Config& config) {
  if (config.blobs.backend == cache::BlobBackend::S3)
    return [] { return cache::FsSpace{std::uint64_t{1} << 62, std::uint64_t{1} << 62}; };
  return [dir = config.data_dir] { return cache::statvfs_space(dir); };
}

// The metrics listener serves small answers to scrapers: short timeouts.
http::EngineLimits options_limits_for_metrics(const Config& config) {
  http::EngineLimits l;
  l.client_timeout = std::chrono::milliseconds(10'000);
  l.keep_alive_timeout = config.keep_alive_timeout;
  l.header_timeout = std::chrono::milliseconds(10'000);
  l.server_header = "regcache/" REGCACHE_VERSION;
  return l;
}

}  // namespace

void Server::start_cluster() {
  // Without a cluster the internal paths still answer (404), never the registry API.
  if (!config_.cluster.enabled) {
    internal_ = [this](Exchange& ex) { return serve_internal(ex, *cache_, ""); };
    return;
  }
  const std::string url = cluster_advertise_url(config_);
  db::PostgresSettings pg;
  pg.dsn = config_.metadata.dsn;
  pg.password = config_.metadata.password;
  fill_leases_ = db::open_postgres_fill_leases(pg, url, config_.cluster.lease_ttl);
  peers_ = std::make_unique<upstream::PeerClient>(config_.cluster.secret, std::chrono::seconds(10),
                                                  std::chrono::seconds(120));
  // Twice the ttl and a little: a dead holder's lease has expired by then, so
  // a holder that still holds it is alive but not serving this replica.
  const auto give_up = std::chrono::duration_cast<std::chrono::milliseconds>(2 * config_.cluster.lease_ttl) +
                       std::chrono::seconds(2);
  cache_->set_cluster({fill_leases_.get(), peers_.get(), give_up});
  internal_ = [this](Exchange& ex) { return serve_internal(ex, *cache_, config_.cluster.secret); };
  log::info("cluster: fill leases in postgres, this replica advertised as " + url + ", lease_ttl_s " +
            std::to_string(config_.cluster.lease_ttl.count()));
}

Server::Server(Config config) : config_(std::move(config)) {
  log::set_level(config_.log_level);
  log::set_format(config_.log_format);
  shutdown_grace_ = config_.shutdown_grace;
  recent_errors_ = std::make_unique<RecentErrors>();
  log::set_problem_listener(recent_errors_.get());
  top_repositories_ = std::make_unique<TopRepositories>();
  if (config_.metrics_enabled) metrics_ = std::make_unique<Metrics>(REGCACHE_VERSION);
  upstream_monitor_ = std::make_unique<UpstreamMonitor>(metrics_ ? &metrics_->registry() : nullptr);
  std::filesystem::create_directories(config_.data_dir);
  meta_ = db::open_metadata_store(config_.metadata, config_.data_dir);
  if (config_.metadata.backend == db::MetadataBackend::Postgres)
    log::info("metadata: postgres (" + db::postgres_dsn_for_log(config_.metadata.dsn) + ")");
  blobs_ = cache::open_blob_store(config_.blobs, config_.data_dir);
  if (config_.blobs.backend == cache::BlobBackend::S3)
    log::info("blobs: s3 (" + config_.blobs.s3.endpoint + ", bucket " + config_.blobs.s3.bucket + ")");
  if (!config_.sendfile) blobs_ = cache::without_native_fds(std::move(blobs_));

  manifests_ = std::make_unique<cache::ManifestMemo>(*blobs_, *meta_, config_.max_manifest_bytes,
                                                    config_.manifest_memory_bytes);
  cache::CacheOptions cache_options;
  cache_options.max_manifest_bytes = config_.max_manifest_bytes;
  cache_options.manifest_memory_bytes = config_.manifest_memory_bytes;
  cache_options.fill_timeout = config_.fill_timeout;
  // A fill is stored only when it fits under the cap and above the free-space
  // floor, after the eviction worker made room if it can (below); else it is
  // passed through. The worker exists before anything is served.
  cache_options.admit_fill = [this](std::uint64_t length) { return eviction_->admit_fill(length); };
  cache_ = std::make_unique<cache::PullThroughCache>(*blobs_, *meta_, *manifests_, std::move(cache_options));
  start_cluster();
  hosted_ = std::make_unique<cache::HostedRegistry>(
      *blobs_, *meta_, *manifests_,
      cache::HostedOptions{config_.max_manifest_bytes, config_.upload_ttl, config_.delete_enabled,
                           config_.tag_delete_enabled, config_.max_upload_sessions,
                           config_.max_upload_sessions_per_client});
  accesses_ = std::make_unique<cache::AccessLog>();
  cache_->set_access_log(accesses_.get());
  eviction_ = std::make_unique<cache::EvictionWorker>(
      *blobs_, *meta_, *manifests_, *accesses_,
      blob_space_probe(config_), eviction_settings(config_),
      config_.max_manifest_bytes);
  accesses_->on_filled([worker = eviction_.get()](std::uint64_t) { worker->wake(); });
  eviction_->set_events(&store_events_);
  cache_->set_events(&store_events_);
  // Spools left by a crash go before serving (a fill started after this owns
  // its spool); the store itself is reconciled in the background (start()).
  log::info(std::to_string(blobs_->remove_orphan_spools()) + " orphan spools removed; " +
            std::to_string(hosted_->expire_uploads() + hosted_->remove_orphan_uploads(reconcile_policy())) +
            " stale upload sessions removed");
  // After reconciliation: a scheduled scrub sees the reconciled store.
  scrub_ = std::make_unique<cache::ScrubScheduler>(*blobs_, *meta_, *manifests_);
  scrub_->configure(config_.scrub_interval, config_.scrub_rate);
  api_ = std::make_unique<RegistryApi>(*cache_, *hosted_, routing(config_, upstream_monitor_.get()));
  api_->configure_auth(config_.auth, config_.listen_host, !config_.tls_cert.empty(), config_.data_dir);
  if (config_.blobs.redirect.enabled) {
    api_->set_blob_redirect(blobs_.get(), config_.blobs.redirect.expires);
    log::info("blobs: GETs of stored blobs are redirected (307) to presigned URLs valid " +
              std::to_string(config_.blobs.redirect.expires.count()) + " s");
  }

  health_ = std::make_unique<HealthChecks>(*meta_, *blobs_);
  set_status_upstreams(config_);
  // Readiness fails below the same free-space floor eviction keeps.
  health_->set_min_free_bytes(eviction_->current_limits().min_free_bytes);
  if (metrics_) {
    // The store gauges run an aggregate over the blob rows: at most once per
    // kStoreUsageMaxAge, however often Prometheus scrapes.
    constexpr std::chrono::seconds kStoreUsageMaxAge{5};
    store_usage_ = std::make_unique<cache::StoreUsageMeter>(
        [this] {
          return cache::measure_store_usage(*meta_, *blobs_, eviction_->pins(), config_.max_manifest_bytes);
        },
        kStoreUsageMaxAge);
    metrics_->set_scrape_source([this] {
      ScrapeValues v;
      v.requests_in_flight = in_flight_.load();
      v.fills_in_flight = static_cast<double>(cache_->fills_running());
      v.auth_failures_total = static_cast<double>(api_->failed_authentications());
      if (auto free = blobs_->free_bytes()) v.free_disk_bytes = static_cast<double>(*free);
      auto get = [](const std::atomic<std::uint64_t>& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
      v.counters = {
          {"regcache_evictions_total", "Objects evicted from the store", get(store_events_.evictions)},
          {"regcache_evicted_bytes_total", "Bytes of the objects evicted from the store", get(store_events_.evicted_bytes)},
          {"regcache_pass_through_total", "Blobs streamed to a client without being stored (disk full)",
           get(store_events_.pass_through)},
          {"regcache_fill_joiners_total", "Blob requests that joined a running upstream fill instead of starting one",
           get(store_events_.fill_joiners)},
          {"regcache_negative_cache_hits_total",
           "Requests answered unknown from the negative cache, without asking the upstream",
           get(store_events_.negative_hits)},
      };
      for (std::size_t i = 0; i < cache::kFillFailureNames.size(); ++i)
        v.counters.push_back({"regcache_fill_failures_total", "Blob fills that failed, by cause",
                              get(store_events_.fill_failures[i]), {{"cause", cache::kFillFailureNames[i]}}});
      for (std::size_t i = 0; i < cache::kRevalidationNames.size(); ++i)
        v.counters.push_back({"regcache_tag_revalidations_total",
                              "Tags whose TTL had run out asked of the upstream again, by outcome",
                              get(store_events_.revalidations[i]), {{"outcome", cache::kRevalidationNames[i]}}});
      for (std::size_t l = 0; l < cache::kKeptListNames.size(); ++l)
        for (std::size_t i = 0; i < cache::kRevalidationNames.size(); ++i)
          v.counters.push_back({"regcache_list_revalidations_total",
                                "Kept tag lists and referrers indexes whose TTL had run out asked of the upstream "
                                "again, by list and outcome",
                                get(store_events_.list_revalidations[l][i]),
                                {{"list", cache::kKeptListNames[l]}, {"outcome", cache::kRevalidationNames[i]}}});
      v.counters.push_back({"regcache_metadata_retries_total",
                            "Metadata statements retried after contention (SQLite busy waits; PostgreSQL "
                            "serialization failures and deadlocks)",
                            static_cast<double>(meta_->contention_retries()),
                            {{"backend", db::backend_name(config_.metadata.backend)}}});
      add_store_usage(v);
      add_tier_stats(v);
      return v;
    });
  }

  started_ = std::chrono::steady_clock::now();
  status_ = [this] { return status_snapshot(); };

  http::EngineOptions options;
  options.host = config_.listen_host;
  options.port = config_.listen_port;
  options.max_connections = config_.max_connections;
  options.workers = config_.workers;
  options.tls_cert = config_.tls_cert;
  options.tls_key = config_.tls_key;
  options.limits.client_timeout = config_.client_timeout;
  options.limits.keep_alive_timeout = config_.keep_alive_timeout;
  options.limits.header_timeout = config_.header_timeout;
  options.limits.min_body_rate = config_.min_body_rate;
  options.limits.server_header = "regcache/" REGCACHE_VERSION;
  options.on_tick = systemd_watchdog_tick;  // WatchdogSec=: the main listener's loop is the heartbeat
  const bool tls = !config_.tls_cert.empty();
  RegistryApi& api = *api_;
  Metrics* metrics = metrics_.get();
  const HealthChecks& health = *health_;
  http_ = std::make_unique<http::HttpEngine>(
      std::move(options),
      [this, &api, metrics, &health, tls](Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
        handle_request(api, metrics, *top_repositories_, health, status_, in_flight_, tls, internal_, req, resp);
      });
  if (!config_.metrics_host.empty()) {
    http::EngineOptions m;
    m.host = config_.metrics_host;
    m.port = config_.metrics_port;
    m.max_connections = 64;
    m.workers = 2;
    m.limits = options_limits_for_metrics(config_);
    metrics_http_ = std::make_unique<http::HttpEngine>(
        std::move(m), [metrics, &health](Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
          handle_operator_request(metrics, health, req, resp);
        });
  }
}

Server::ProblemListenerReset::~ProblemListenerReset() { log::set_problem_listener(nullptr); }

Server::~Server() {
  stop_reconciling_ = true;
  if (reconciler_.joinable()) reconciler_.join();
}

cache::ReconcilePolicy Server::reconcile_policy() const {
  if (config_.store_reconciliation == "adopt-only") return cache::ReconcilePolicy::AdoptOnly;
  if (config_.store_reconciliation == "drop-missing") return cache::ReconcilePolicy::DropMissing;
  // auto: the SQLite database lives in the data dir beside the blobs it
  // describes, so whoever shares it shares this store too. A PostgreSQL
  // database is there to be shared, by replicas whose stores may differ.
  // A bucket, like PostgreSQL, is there to be shared.
  return config_.metadata.backend == db::MetadataBackend::Sqlite && config_.blobs.backend == cache::BlobBackend::Local
             ? cache::ReconcilePolicy::DropMissing
             : cache::ReconcilePolicy::AdoptOnly;
}

void Server::reconcile_in_background() {
  // Like nginx's cache loader: serving starts at once, the store is checked
  // against its metadata beside it, at the lowest CPU and I/O priority, so a
  // big store (or a lost database: every file hashed) never holds up READY.
  reconciler_ = std::thread([this] {
    name_this_thread("regcache-reconcile");
    const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
    ::setpriority(PRIO_PROCESS, tid, 19);  // best effort, per thread on Linux
    constexpr int kIoprioClassIdle = 3, kIoprioClassShift = 13, kIoprioWhoProcess = 1;
    ::syscall(SYS_ioprio_set, kIoprioWhoProcess, static_cast<int>(tid), kIoprioClassIdle << kIoprioClassShift);
    const cache::ReconcilePolicy policy = reconcile_policy();
    log::info(std::string("store reconciliation running in the background (") + cache::to_string(policy) + ")");
    try {
      log::info(cache_->reconcile_store(stop_reconciling_, policy));
    } catch (const std::exception& e) {
      log::error(std::string("store reconciliation failed (retried at the next start): ") + e.what());
    }
  });
}

void Server::start() {
  eviction_->start();
  http_->start();
  reconcile_in_background();
  if (metrics_http_) {
    metrics_http_->start();
    log::info("metrics, /healthz and /readyz also on http://" + config_.metrics_host + ":" +
              std::to_string(metrics_http_->port()));
  }
  std::string where = "no upstream: every repository is hosted";
  if (!config_.upstreams.empty()) {
    where = "default upstream " + config_.default_upstream_settings().client.url;
    if (config_.offline) where += " (offline: never contacted)";
    std::string prefixes;
    for (const auto& p : config_.hosted) prefixes += (prefixes.empty() ? "" : ", ") + p + "/";
    if (!prefixes.empty()) where += "; hosted: " + prefixes;
  }
  log::info("regcache " REGCACHE_VERSION " listening on " + std::string(config_.tls_cert.empty() ? "http://" : "https://") + config_.listen_host + ":" + std::to_string(port()) +
            ", data in " + config_.data_dir.string() + ", " + where);
}

void Server::add_store_usage(ScrapeValues& v) {
  cache::StoreUsage u;
  try {
    u = store_usage_->current();
  } catch (const std::exception& e) {
    // The database is in trouble (/readyz says so): the scrape goes on without these.
    log::warn(std::string("metrics: measuring the store failed: ") + e.what());
    return;
  }
  const std::pair<const char*, const cache::StoreUsage::Kind*> kinds[] = {
      {"mirrored", &u.mirrored}, {"hosted", &u.hosted}, {"pinned", &u.pinned}};
  for (const auto& [kind, k] : kinds)
    v.gauges.push_back({"regcache_store_objects", "Objects (blobs and manifests) in the store, by kind",
                        static_cast<double>(k->objects), {{"kind", kind}}});
  for (const auto& [kind, k] : kinds)
    v.gauges.push_back({"regcache_store_bytes", "Bytes of the objects in the store, by kind",
                        static_cast<double>(k->bytes), {{"kind", kind}}});
}

// The local tier in front of S3 (blobs.local_cache_bytes): reads per tier and
// what the tier holds. Nothing when there is no tier.
void Server::add_tier_stats(ScrapeValues& v) {
  const auto* tiered = dynamic_cast<const cache::TieredBlobStore*>(blobs_.get());
  if (!tiered) return;
  const cache::TierStats t = tiered->stats();
  const char* reads_help = "Blob reads (opens) answered by each tier of the two-tier store";
  v.counters.push_back({"regcache_blob_tier_reads_total", reads_help, static_cast<double>(t.local_reads),
                        {{"tier", "local"}}});
  v.counters.push_back({"regcache_blob_tier_reads_total", reads_help, static_cast<double>(t.remote_reads),
                        {{"tier", "s3"}}});
  v.counters.push_back({"regcache_blob_tier_local_drops_total",
                        "Local copies dropped to keep blobs.local_cache_bytes, or found corrupt",
                        static_cast<double>(t.local_drops)});
  v.gauges.push_back({"regcache_blob_tier_local_bytes", "Bytes of the local tier's copies",
                      static_cast<double>(t.local_bytes)});
  v.gauges.push_back({"regcache_blob_tier_local_objects", "Copies in the local tier",
                      static_cast<double>(t.local_objects)});
}

StatusSnapshot Server::status_snapshot() const {
  StatusSnapshot s;
  s.version = REGCACHE_VERSION;
  s.uptime_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  s.metrics_enabled = metrics_ != nullptr;
  if (metrics_) {
    Metrics::Totals t = metrics_->totals();
    auto n = [&](CacheResult r) { return t.by_cache[static_cast<std::size_t>(r)]; };
    s.requests = t.requests;
    s.hits = n(CacheResult::Hit) + n(CacheResult::Revalidated) + n(CacheResult::Stale);
    s.misses = n(CacheResult::Miss) + n(CacheResult::PassThrough);
    s.stale = n(CacheResult::Stale);
    s.server_errors = t.errors;
    s.bytes_from_store = t.bytes_from_store;
    s.bytes_from_upstream = t.bytes_from_upstream;
    RecentWindow::Sums w = metrics_->last_hour();
    s.last_hour = StatusSnapshot::Window{w.hits, w.misses, w.bytes_from_store, w.bytes_from_upstream};
  }
  s.requests_in_flight = in_flight_.load();
  s.fills_in_flight = static_cast<double>(cache_->fills_running());
  if (auto free = blobs_->free_bytes()) s.free_disk_bytes = static_cast<double>(*free);
  s.min_free_bytes = static_cast<double>(health_->min_free_bytes());
  auto get = [](const std::atomic<std::uint64_t>& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
  s.fill_joiners = get(store_events_.fill_joiners);
  s.negative_hits = get(store_events_.negative_hits);
  for (std::size_t i = 0; i < cache::kFillFailureNames.size(); ++i)
    s.fill_failures.emplace_back(cache::kFillFailureNames[i], get(store_events_.fill_failures[i]));
  for (std::size_t i = 0; i < cache::kRevalidationNames.size(); ++i)
    s.revalidations.emplace_back(cache::kRevalidationNames[i], get(store_events_.revalidations[i]));
  const auto wall = std::chrono::system_clock::now();
  auto ago = [&](const std::optional<std::chrono::system_clock::time_point>& t) -> std::optional<double> {
    if (!t) return std::nullopt;
    return std::max(0.0, std::chrono::duration<double>(wall - *t).count());
  };
  {
    std::vector<UpstreamMonitor::Health> health = upstream_monitor_->health();
    std::lock_guard lock(status_mutex_);
    for (auto u : status_upstreams_) {  // configured upstreams only: a removed one's record stays in the metrics
      for (const auto& h : health) {
        if (h.name != u.name) continue;
        u.exchanges = static_cast<double>(h.exchanges);
        u.failures = static_cast<double>(h.failures);
        u.window = static_cast<double>(h.window);
        u.window_failures = static_cast<double>(h.window_failures);
        u.mean_seconds = h.mean_seconds;
        u.since_success = ago(h.last_success);
        u.since_failure = ago(h.last_failure);
        u.last_error = h.last_error;
      }
      s.upstreams.push_back(std::move(u));
    }
  }
  for (const auto& f : cache_->fills_in_progress(20))
    s.fills.push_back({f.ns, f.digest, static_cast<double>(f.spooled),
                       f.size ? std::optional<double>(static_cast<double>(*f.size)) : std::nullopt, f.seconds});
  for (const auto& r : top_repositories_->top(10))
    s.top_repositories.push_back({r.repository, static_cast<double>(r.requests)});
  for (const auto& p : recent_errors_->newest_first())
    s.recent_errors.push_back({std::max(0.0, std::chrono::duration<double>(wall - p.time).count()), p.level, p.message});
  Readiness r = health_->check();
  s.ready = r.ready;
  for (const auto& c : r.checks)
    if (!c.ok) s.failing_checks.emplace_back(c.name, c.detail);
  return s;
}

void Server::set_status_upstreams(const Config& config) {
  std::vector<StatusSnapshot::Upstream> list;
  for (const auto& u : config.upstreams) {
    list.push_back({u.client.name, u.client.url});
    upstream_monitor_->declare(u.client.name);
  }
  std::lock_guard lock(status_mutex_);
  status_upstreams_ = std::move(list);
}

std::uint16_t Server::port() const { return http_->port(); }

void Server::reload(Config fresh) {
  // What lives in the listening socket, the thread pool, the store or the
  // cache's sizing is fixed at start; say so rather than half-apply it.
  std::vector<std::string> fixed;
  auto note = [&](bool changed, const char* key) {
    if (changed) fixed.push_back(key);
  };
  note(fresh.listen_host != config_.listen_host || fresh.listen_port != config_.listen_port, "listen");
  note(fresh.data_dir != config_.data_dir, "data_dir");
  note(fresh.metadata.backend != config_.metadata.backend || fresh.metadata.dsn != config_.metadata.dsn ||
           fresh.metadata.password != config_.metadata.password ||
           fresh.metadata.max_connections != config_.metadata.max_connections,
       "metadata");
  note(fresh.blobs.backend != config_.blobs.backend || fresh.blobs.s3.endpoint != config_.blobs.s3.endpoint ||
           fresh.blobs.s3.bucket != config_.blobs.s3.bucket || fresh.blobs.s3.region != config_.blobs.s3.region ||
           fresh.blobs.s3.credentials.access_key != config_.blobs.s3.credentials.access_key ||
           fresh.blobs.s3.credentials.secret_key != config_.blobs.s3.credentials.secret_key ||
           fresh.blobs.s3.addressing != config_.blobs.s3.addressing ||
           fresh.blobs.multipart_threshold != config_.blobs.multipart_threshold ||
           fresh.blobs.part_size != config_.blobs.part_size ||
           fresh.blobs.local_cache_bytes != config_.blobs.local_cache_bytes,
       "blobs");
  note(fresh.tls_cert != config_.tls_cert || fresh.tls_key != config_.tls_key, "tls_cert/tls_key");
  note(fresh.max_connections != config_.max_connections, "max_connections");
  note(fresh.client_timeout != config_.client_timeout, "client_timeout_s");
  note(fresh.keep_alive_timeout != config_.keep_alive_timeout, "keep_alive_timeout_s");
  note(fresh.header_timeout != config_.header_timeout, "header_timeout_s");
  note(fresh.min_body_rate != config_.min_body_rate, "min_body_bytes_per_s");
  note(fresh.workers != config_.workers, "workers");
  note(fresh.sendfile != config_.sendfile, "sendfile");
  note(fresh.metrics_host != config_.metrics_host || fresh.metrics_port != config_.metrics_port, "metrics_listen");
  note(fresh.metrics_enabled != config_.metrics_enabled, "metrics_enabled");
  note(fresh.max_manifest_bytes != config_.max_manifest_bytes, "max_manifest_bytes");
  note(fresh.manifest_memory_bytes != config_.manifest_memory_bytes, "manifest_memory_bytes");
  note(fresh.fill_timeout != config_.fill_timeout, "fill_timeout_s");
  note(fresh.delete_enabled != config_.delete_enabled || fresh.tag_delete_enabled != config_.tag_delete_enabled,
       "delete_enabled/tag_delete_enabled");
  note(fresh.upload_ttl != config_.upload_ttl, "upload_ttl_s");
  note(fresh.store_reconciliation != config_.store_reconciliation, "store_reconciliation");
  note(fresh.max_upload_sessions != config_.max_upload_sessions ||
           fresh.max_upload_sessions_per_client != config_.max_upload_sessions_per_client,
       "max_upload_sessions/max_upload_sessions_per_client");
  for (const auto& key : fixed) log::warn("reload: " + key + " changed; it takes effect after a restart");

  // Users, groups, access rules and token settings apply now (the listener
  // that decides the safe default is the running one). First: a users file
  // or key that cannot be loaded refuses the whole reload.
  api_->configure_auth(fresh.auth, config_.listen_host, !config_.tls_cert.empty(), config_.data_dir);
  config_.auth = fresh.auth;
  // Upstreams (URLs, credentials, TLS options, tag_ttl_s, negative_ttl_s),
  // hosted prefixes, offline and the log level apply now.
  api_->set_origins(routing(fresh, upstream_monitor_.get()));
  log::set_level(fresh.log_level);
  log::set_format(fresh.log_format);
  config_.log_format = fresh.log_format;
  set_status_upstreams(fresh);
  config_.upstreams = fresh.upstreams;
  config_.default_upstream = fresh.default_upstream;
  config_.hosted = fresh.hosted;
  config_.offline = fresh.offline;
  config_.log_level = fresh.log_level;
  shutdown_grace_ = fresh.shutdown_grace;
  // The storage cap, floor, watermarks and pins: the next eviction pass, started now, uses them.
  eviction_->configure(eviction_settings(fresh));
  config_.max_cache_bytes = fresh.max_cache_bytes;
  config_.min_free_bytes = fresh.min_free_bytes;
  health_->set_min_free_bytes(eviction_->current_limits().min_free_bytes);
  config_.cache_high_watermark = fresh.cache_high_watermark;
  config_.cache_low_watermark = fresh.cache_low_watermark;
  config_.pins = fresh.pins;
  scrub_->configure(fresh.scrub_interval, fresh.scrub_rate);
  config_.scrub_interval = fresh.scrub_interval;
  config_.scrub_rate = fresh.scrub_rate;
  log::info("reload: upstreams, credentials, tag TTLs, hosted prefixes, offline, log level and format, users, "
            "access rules, storage cap, free-space floor, watermarks, pins and scrub schedule applied");
}

bool Server::stop(std::chrono::seconds grace) {
  stop_reconciling_ = true;
  if (metrics_http_) metrics_http_->stop_accepting();
  http_->stop_accepting();  // no new connections; idle ones closed; busy ones close after their response
  // In-flight requests get the grace period to finish.
  auto deadline = std::chrono::steady_clock::now() + grace;
  // A blob body the event loop is still sending (a slow reader) is in flight too.
  auto busy = [&] { return in_flight_ > 0 || cache_->fills_running() > 0 || http_->sending() > 0; };
  while (busy() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  bool drained = !busy();
  http_->abort_all();  // cut what is still being served
  eviction_->stop();   // and write the last accesses
  if (metrics_http_) metrics_http_->abort_all();
  return drained;
}

}  // namespace regcache::proxy
