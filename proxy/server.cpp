#include "proxy/server.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerConnection.h>
#include <Poco/Net/TCPServer.h>
#include <poll.h>
#include <sys/socket.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "cache/blob_store.h"
#include "cache/hosted_registry.h"
#include "cache/manifest_memo.h"
#include "cache/pull_through_cache.h"
#include "common/log.h"
#include "common/thread_name.h"
#include "db/metadata_store.h"
#include "proxy/registry_api.h"
#include "upstream/client.h"

namespace regcache::proxy {
namespace {

class RequestHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  RequestHandler(RegistryApi& api, std::atomic<int>& in_flight, bool tls)
      : api_(api), in_flight_(in_flight), tls_(tls) {}

  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
    auto started = std::chrono::steady_clock::now();
    ++in_flight_;
    Exchange ex(req, resp, tls_);
    try {
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
  bool tls_;
};

}  // namespace

// Creates the handler for each request (declared in server.h for ownership).
class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  HandlerFactory(RegistryApi& api, std::atomic<int>& in_flight, bool tls) : api_(api), in_flight_(in_flight), tls_(tls) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new RequestHandler(api_, in_flight_, tls_);
  }
  // Tells every open connection the server stopped: each ends after its
  // current request, or at once when `abort`.
  void announce_stop(bool abort) { serverStopped(this, abort); }

 private:
  RegistryApi& api_;
  std::atomic<int>& in_flight_;
  bool tls_;
};

namespace {

// One client connection, served as HTTP by Poco. A client that stalls while
// receiving is cut off after the send timeout (set once per connection).
// On a plain-HTTP port the client may open with a TLS handshake (skopeo and
// podman try TLS first, then fall back to HTTP when they get an HTTP answer).
// Poco's parser would wait for a line break that a ClientHello may never
// contain, so the first byte is peeked: a TLS record (0x16) gets a 400 at
// once; anything else is served as HTTP.
class RegistryConnection final : public Poco::Net::TCPServerConnection {
 public:
  RegistryConnection(const Poco::Net::StreamSocket& socket, Poco::Net::HTTPServerParams::Ptr params,
                     Poco::SharedPtr<HandlerFactory> factory, bool sniff_tls)
      : TCPServerConnection(socket), params_(std::move(params)), factory_(std::move(factory)), sniff_tls_(sniff_tls) {}

  void run() override {
    name_this_thread("regcache-conn");
    try {
      socket().setSendTimeout(params_->getTimeout());
    } catch (const Poco::Exception&) {
      return;  // the client is already gone
    }
    if (sniff_tls_ && opens_with_tls()) {
      static const std::string body =
          R"({"errors":[{"code":"UNSUPPORTED","message":"this port speaks plain HTTP, not TLS"}]})";
      std::string answer = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      std::string peer = "a client";
      try {
        peer = socket().peerAddress().toString();  // before the client can hang up
        socket().sendBytes(answer.data(), static_cast<int>(answer.size()));
        socket().shutdown();
      } catch (const Poco::Exception&) {
      }
      log::info("TLS handshake from " + peer + " on the plain-HTTP port: answered 400");
      return;
    }
    Poco::Net::HTTPServerConnection(socket(), params_, factory_).run();
  }

 private:
  bool opens_with_tls() {
    pollfd p{socket().impl()->sockfd(), POLLIN, 0};
    int timeout_ms = static_cast<int>(params_->getKeepAliveTimeout().totalMilliseconds());
    if (::poll(&p, 1, timeout_ms) <= 0) return false;  // silent client: let HTTP time it out
    unsigned char first = 0;
    return ::recv(p.fd, &first, 1, MSG_PEEK) == 1 && first == 0x16;
  }

  Poco::Net::HTTPServerParams::Ptr params_;
  Poco::SharedPtr<HandlerFactory> factory_;
  bool sniff_tls_;
};

class ConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  ConnectionFactory(Poco::Net::HTTPServerParams::Ptr params, Poco::SharedPtr<HandlerFactory> handlers, bool sniff_tls)
      : params_(std::move(params)), handlers_(std::move(handlers)), sniff_tls_(sniff_tls) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new RegistryConnection(socket, params_, handlers_, sniff_tls_);
  }

 private:
  Poco::Net::HTTPServerParams::Ptr params_;
  Poco::SharedPtr<HandlerFactory> handlers_;
  bool sniff_tls_;
};

// A listening socket: TLS when a certificate is configured. SO_REUSEPORT is
// left off: a second regcache on the same port must fail, not share it.
Poco::Net::ServerSocket listening_socket(const Config& config) {
  Poco::Net::SocketAddress address(config.listen_host, config.listen_port);
  try {
    Poco::Net::ServerSocket socket;
    if (!config.tls_cert.empty()) {
      static std::once_flag ssl_once;
      std::call_once(ssl_once, [] { Poco::Net::initializeSSL(); });
      Poco::Net::Context::Ptr context = new Poco::Net::Context(
          Poco::Net::Context::TLS_SERVER_USE, config.tls_key, config.tls_cert, "", Poco::Net::Context::VERIFY_NONE);
      socket = Poco::Net::SecureServerSocket(context);  // shares the TLS socket implementation
    }
    socket.bind(address, /*reuseAddress=*/true, /*reusePort=*/false);
    socket.listen(1024);
    return socket;
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot listen on " + config.listen_host + ":" + std::to_string(config.listen_port) +
                             ": " + e.displayText());
  }
}

// The upstream clients and routing a configuration asks for.
OriginResolver routing(const Config& config) {
  std::vector<cache::Origin> origins;
  std::size_t default_index = 0;
  for (const auto& u : config.upstreams) {
    if (u.client.name == config.default_upstream) default_index = origins.size();
    origins.push_back({u.client.name, upstream::make_client(u.client), u.tag_ttl, u.negative_ttl, config.offline});
  }
  return OriginResolver(std::move(origins), default_index, config.hosted);
}

}  // namespace

Server::Server(Config config) : config_(std::move(config)) {
  log::set_level(config_.log_level);
  shutdown_grace_ = config_.shutdown_grace;
  std::filesystem::create_directories(config_.data_dir);
  meta_ = db::open_sqlite_store((config_.data_dir / "regcache.db").string());
  blobs_ = std::make_unique<cache::LocalBlobStore>(config_.data_dir);

  manifests_ = std::make_unique<cache::ManifestMemo>(*blobs_, *meta_, config_.max_manifest_bytes,
                                                    config_.manifest_memory_bytes);
  cache_ = std::make_unique<cache::PullThroughCache>(
      *blobs_, *meta_, *manifests_,
      cache::CacheOptions{config_.max_manifest_bytes, config_.manifest_memory_bytes, config_.fill_timeout});
  hosted_ = std::make_unique<cache::HostedRegistry>(
      *blobs_, *meta_, *manifests_,
      cache::HostedOptions{config_.max_manifest_bytes, config_.upload_ttl, config_.delete_enabled,
                           config_.tag_delete_enabled});
  log::info(cache_->reconcile() + "; " + std::to_string(hosted_->expire_uploads() + hosted_->remove_orphan_uploads()) +
            " stale upload sessions removed");
  api_ = std::make_unique<RegistryApi>(*cache_, *hosted_, routing(config_));
  api_->configure_auth(config_.auth, config_.listen_host, !config_.tls_cert.empty(), config_.data_dir);

  Poco::Net::ServerSocket socket = listening_socket(config_);

  Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(static_cast<int>(config_.max_connections));
  params->setMaxQueued(static_cast<int>(config_.max_connections) * 2);
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);
  params->setKeepAliveTimeout(Poco::Timespan(config_.keep_alive_timeout.count(), 0));
  params->setTimeout(Poco::Timespan(config_.client_timeout.count(), 0));
  params->setSoftwareVersion("regcache/" REGCACHE_VERSION);
  pool_ = std::make_unique<Poco::ThreadPool>(4, static_cast<int>(config_.max_connections) + 4, 60, 1 << 20);
  const bool tls = !config_.tls_cert.empty();
  handlers_ = new HandlerFactory(*api_, in_flight_, tls);
  http_ = std::make_unique<Poco::Net::TCPServer>(new ConnectionFactory(params, handlers_, !tls), *pool_, socket,
                                                 params);
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
  log::info("regcache " REGCACHE_VERSION " listening on " + std::string(config_.tls_cert.empty() ? "http://" : "https://") + config_.listen_host + ":" + std::to_string(port()) +
            ", data in " + config_.data_dir.string() + ", " + where);
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
  note(fresh.tls_cert != config_.tls_cert || fresh.tls_key != config_.tls_key, "tls_cert/tls_key");
  note(fresh.max_connections != config_.max_connections, "max_connections");
  note(fresh.client_timeout != config_.client_timeout, "client_timeout_s");
  note(fresh.keep_alive_timeout != config_.keep_alive_timeout, "keep_alive_timeout_s");
  note(fresh.max_manifest_bytes != config_.max_manifest_bytes, "max_manifest_bytes");
  note(fresh.manifest_memory_bytes != config_.manifest_memory_bytes, "manifest_memory_bytes");
  note(fresh.fill_timeout != config_.fill_timeout, "fill_timeout_s");
  note(fresh.delete_enabled != config_.delete_enabled || fresh.tag_delete_enabled != config_.tag_delete_enabled,
       "delete_enabled/tag_delete_enabled");
  note(fresh.upload_ttl != config_.upload_ttl, "upload_ttl_s");
  for (const auto& key : fixed) log::warn("reload: " + key + " changed; it takes effect after a restart");

  // Users, groups, access rules and token settings apply now (the listener
  // that decides the safe default is the running one). First: a users file
  // or key that cannot be loaded refuses the whole reload.
  api_->configure_auth(fresh.auth, config_.listen_host, !config_.tls_cert.empty(), config_.data_dir);
  config_.auth = fresh.auth;
  // Upstreams (URLs, credentials, TLS options, tag_ttl_s, negative_ttl_s),
  // hosted prefixes, offline and the log level apply now.
  api_->set_origins(routing(fresh));
  log::set_level(fresh.log_level);
  config_.upstreams = fresh.upstreams;
  config_.default_upstream = fresh.default_upstream;
  config_.hosted = fresh.hosted;
  config_.offline = fresh.offline;
  config_.log_level = fresh.log_level;
  shutdown_grace_ = fresh.shutdown_grace;
  log::info("reload: upstreams, credentials, tag TTLs, hosted prefixes, offline, log level, users and access rules applied");
}

bool Server::stop(std::chrono::seconds grace) {
  http_->stop();  // no new connections
  // In-flight requests get the grace period to finish. (Poco's polite stop
  // notice waits on each busy connection's lock, so it is not used: a stuck
  // response would hold shutdown past the grace.)
  auto deadline = std::chrono::steady_clock::now() + grace;
  while ((in_flight_ > 0 || cache_->fills_running() > 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  bool drained = in_flight_ == 0 && cache_->fills_running() == 0;
  handlers_->announce_stop(true);  // close every connection, idle keep-alive ones included
  return drained;
}

}  // namespace regcache::proxy
