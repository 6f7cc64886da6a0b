#include "proxy/server.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>

#include <filesystem>
#include <thread>

#include "cache/blob_store.h"
#include "cache/hosted_registry.h"
#include "cache/manifest_memo.h"
#include "cache/pull_through_cache.h"
#include "common/log.h"
#include "db/metadata_store.h"
#include "proxy/registry_api.h"
#include "upstream/client.h"

namespace regcache::proxy {
namespace {

class RequestHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  RequestHandler(RegistryApi& api, std::atomic<int>& in_flight, std::chrono::seconds send_timeout)
      : api_(api), in_flight_(in_flight), send_timeout_(send_timeout) {}

  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
    auto started = std::chrono::steady_clock::now();
    ++in_flight_;
    Exchange ex(req, resp);
    try {
      static_cast<Poco::Net::HTTPServerRequestImpl&>(req).socket().setSendTimeout(
          Poco::Timespan(send_timeout_.count(), 0));
      api_.handle(ex);
    } catch (const std::exception& e) {  // ClientGone, or the socket failing under Poco
      log::debug(std::string("client connection ended: ") + e.what());
      abort_connection(ex);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    log::info(req.getMethod() + " " + req.getURI() + " " + std::to_string(static_cast<int>(resp.getStatus())) + " " +
              std::to_string(ex.body_bytes) + " " + std::to_string(ms.count()) + "ms " + ex.cache_status +
              (ex.aborted ? " aborted" : ""));
    --in_flight_;
  }

 private:
  RegistryApi& api_;
  std::atomic<int>& in_flight_;
  std::chrono::seconds send_timeout_;
};

class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  HandlerFactory(RegistryApi& api, std::atomic<int>& in_flight, std::chrono::seconds send_timeout)
      : api_(api), in_flight_(in_flight), send_timeout_(send_timeout) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new RequestHandler(api_, in_flight_, send_timeout_);
  }

 private:
  RegistryApi& api_;
  std::atomic<int>& in_flight_;
  std::chrono::seconds send_timeout_;
};

}  // namespace

Server::Server(Config config) : config_(std::move(config)) {
  log::set_level(config_.log_level);
  std::filesystem::create_directories(config_.data_dir);
  meta_ = db::open_sqlite_store((config_.data_dir / "regcache.db").string());
  blobs_ = std::make_unique<cache::LocalBlobStore>(config_.data_dir);

  std::vector<cache::Origin> origins;
  std::size_t default_index = 0;
  for (const auto& u : config_.upstreams) {
    clients_.push_back(upstream::make_client(u.client));
    if (u.client.name == config_.default_upstream) default_index = origins.size();
    origins.push_back({u.client.name, clients_.back().get(), u.tag_ttl, u.negative_ttl, config_.offline});
  }
  manifests_ = std::make_unique<cache::ManifestMemo>(*blobs_, *meta_, config_.max_manifest_bytes,
                                                    config_.manifest_memory_bytes);
  cache_ = std::make_unique<cache::PullThroughCache>(
      *blobs_, *meta_, *manifests_,
      cache::CacheOptions{config_.max_manifest_bytes, config_.manifest_memory_bytes, config_.fill_timeout});
  hosted_ = std::make_unique<cache::HostedRegistry>(
      *blobs_, *meta_, *manifests_,
      cache::HostedOptions{config_.max_manifest_bytes, config_.upload_ttl, config_.delete_enabled,
                           config_.tag_delete_enabled});
  log::info(cache_->reconcile() + "; " + std::to_string(hosted_->expire_uploads()) + " stale upload sessions removed");
  api_ = std::make_unique<RegistryApi>(*cache_, *hosted_,
                                       OriginResolver(std::move(origins), default_index, config_.hosted));

  Poco::Net::ServerSocket socket;
  socket.bind(Poco::Net::SocketAddress(config_.listen_host, config_.listen_port), true);
  socket.listen(1024);

  auto* params = new Poco::Net::HTTPServerParams;  // owned by the server (ref-counted)
  params->setMaxThreads(static_cast<int>(config_.max_connections));
  params->setMaxQueued(static_cast<int>(config_.max_connections) * 2);
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);
  params->setKeepAliveTimeout(Poco::Timespan(config_.keep_alive_timeout.count(), 0));
  params->setTimeout(Poco::Timespan(config_.client_timeout.count(), 0));
  params->setSoftwareVersion("regcache/" REGCACHE_VERSION);
  pool_ = std::make_unique<Poco::ThreadPool>(4, static_cast<int>(config_.max_connections) + 4, 60, 1 << 20);
  http_ = std::make_unique<Poco::Net::HTTPServer>(
      new HandlerFactory(*api_, in_flight_, config_.client_timeout), *pool_, socket, params);
}

Server::~Server() = default;

void Server::start() {
  http_->start();
  std::string where = "no upstream: every repository is hosted";
  if (!config_.upstreams.empty()) {
    where = "default upstream " + config_.default_upstream_settings().client.url;
    if (config_.offline) where += " (offline: never contacted)";
    std::string prefixes;
    for (const auto& p : config_.hosted) prefixes += (prefixes.empty() ? "" : ", ") + p + "/";
    if (!prefixes.empty()) where += "; hosted: " + prefixes;
  }
  log::info("regcache " REGCACHE_VERSION " listening on " + config_.listen_host + ":" + std::to_string(port()) +
            ", data in " + config_.data_dir.string() + ", " + where);
}

std::uint16_t Server::port() const { return http_->port(); }

bool Server::stop(std::chrono::seconds grace) {
  http_->stopAll(false);  // no new connections; open ones end after their current request
  auto deadline = std::chrono::steady_clock::now() + grace;
  while ((in_flight_ > 0 || cache_->fills_running() > 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  bool drained = in_flight_ == 0 && cache_->fills_running() == 0;
  http_->stopAll(true);  // close idle keep-alive connections
  return drained;
}

}  // namespace regcache::proxy
