#include "upstream/peer_client.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/SSLManager.h>

#include <cctype>
#include <mutex>

#include "upstream/connection_pool.h"
#include "upstream/transport.h"

namespace regcache::upstream {
namespace {

std::string percent_encode(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Poco::Net::Context::Ptr peer_tls_context() {
  static std::once_flag ssl_initialized;
  std::call_once(ssl_initialized, [] { Poco::Net::initializeSSL(); });
  Poco::Net::Context::Params params;
  params.verificationMode = Poco::Net::Context::VERIFY_RELAXED;
  params.loadDefaultCAs = true;
  Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
  context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
  return context;
}

}  // namespace

PeerClient::PeerClient(std::string secret, std::chrono::milliseconds connect_timeout,
                       std::chrono::milliseconds read_timeout)
    : secret_(std::move(secret)), connect_timeout_(connect_timeout), read_timeout_(read_timeout) {}

PeerClient::~PeerClient() = default;

std::shared_ptr<ConnectionPool> PeerClient::pool_for(const std::string& peer_url) {
  std::lock_guard lock(mutex_);
  if (auto it = pools_.find(peer_url); it != pools_.end()) return it->second;
  auto target = parse_target(peer_url);
  if (!target) throw TransportError("replica " + peer_url + ": not an http(s) URL");
  SessionSettings settings;
  settings.tls = peer_tls_context();  // never null, by SessionSettings' contract (used for https only)
  settings.connect_timeout = connect_timeout_;
  settings.read_timeout = read_timeout_;
  auto pool = std::make_shared<ConnectionPool>(target->endpoint, settings, 64);
  pools_.emplace(peer_url, pool);
  return pool;
}

std::unique_ptr<BodyStream> PeerClient::get_fill(const std::string& peer_url, const std::string& ns,
                                                 const std::string& digest) {
  auto pool = pool_for(peer_url);
  Request request;
  request.method = "GET";
  request.path_and_query = std::string(kFillsPath) + digest + "?ns=" + percent_encode(ns);
  request.headers = {{"Authorization", "Bearer " + secret_}};
  request.priority = Priority::Blob;
  return send_request(*pool, request);
}

}  // namespace regcache::upstream
