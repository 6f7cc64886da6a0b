// make_client(): the registry client proper. Requests go through pooled
// connections (connection_pool.h, transport.h); 401s are answered by the
// Authenticator; redirects are followed here.
#include "upstream/client.h"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/DNS.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLManager.h>

#include <atomic>
#include <mutex>
#include <stdexcept>

#include "common/log.h"
#include "upstream/authenticator.h"
#include "upstream/connection_pool.h"
#include "upstream/location.h"
#include "upstream/observer.h"
#include "upstream/transport.h"
#include "upstream/trust.h"

namespace regcache::upstream {
namespace {

constexpr const char* kUserAgent = "regcache/0.1";
constexpr int kMaxRedirects = 5;
constexpr std::size_t kDrainLimit = 64 * 1024;  // bodies of 401s and redirects read to keep the connection

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// The target a Location header points at, relative to the request that got
// it (RFC 3986 section 5); nullopt unless it is an http(s) URL with a host.
std::optional<Target> resolve_location(const Target& base, const std::string& location) {
  std::string host = base.endpoint.host.find(':') != std::string::npos ? "[" + base.endpoint.host + "]"
                                                                        : base.endpoint.host;
  std::string base_url =
      base.endpoint.scheme + "://" + host + ":" + std::to_string(base.endpoint.port) + base.path_and_query;
  std::optional<std::string> resolved = resolve_reference(base_url, location);
  if (!resolved) return std::nullopt;
  return parse_target(*resolved);
}

// The scheme of a Location, for messages (the rest may carry signatures).
std::string location_scheme(const std::string& location) {
  auto scheme = split_uri_reference(location).scheme;
  return scheme ? *scheme + ":" : std::string("(relative)");
}

std::vector<Network> networks(const UpstreamConfig& config, const std::vector<std::string>& texts, const char* key) {
  std::vector<Network> out;
  for (const auto& text : texts) {
    auto network = parse_network(text);
    if (!network) throw std::invalid_argument("upstream " + config.name + ": " + key + ": not a CIDR: " + text);
    out.push_back(*network);
  }
  return out;
}

std::optional<IpAddress> ip_of(const Poco::Net::IPAddress& address) {
  std::string text = address.toString();
  return parse_ip(text.substr(0, text.find('%')));  // no zone id
}

// Chooses the addresses sessions connect to. The upstream's own endpoint is
// trusted (it is configured) and only teaches us its address class; every
// other endpoint (redirect targets, token realms) is resolved here, each
// address checked with connect_refusal(), and the first allowed one is the one
// connected to.
class AddressGuard {
 public:
  AddressGuard(std::string upstream, Endpoint own, AddressPolicy policy)
      : upstream_(std::move(upstream)), own_(std::move(own)), policy_(std::move(policy)) {}

  Poco::Net::SocketAddress choose(const Endpoint& endpoint, const Poco::Net::SocketAddress& proposed) {
    if (endpoint == own_) {
      if (auto ip = ip_of(proposed.host())) own_classes_ |= class_bit(classify(*ip, policy_.internal));
      return proposed;
    }
    std::vector<IpAddress> candidates;
    if (auto literal = parse_ip(endpoint.host)) {
      candidates.push_back(*literal);
    } else {
      try {
        Poco::Net::HostEntry entry = Poco::Net::DNS::hostByName(endpoint.host);
        for (const auto& address : entry.addresses())
          if (auto ip = ip_of(address)) candidates.push_back(*ip);
      } catch (const Poco::Exception& e) {
        throw TransportError("upstream " + upstream_ + ": cannot resolve " + endpoint.host + ": " + e.displayText());
      }
    }
    std::string why = "no address";
    for (const auto& ip : candidates) {
      std::optional<std::string> refusal = connect_refusal(ip, own_classes_.load(), policy_);
      if (!refusal) return Poco::Net::SocketAddress(Poco::Net::IPAddress(ip.str()), endpoint.port);
      why = *refusal;
    }
    log::warn("upstream " + upstream_ + ": refused to connect to " + endpoint.label() +
              " (a redirect target or token realm): " + why);
    throw TransportError("upstream " + upstream_ + ": refused to connect to " + endpoint.label() + ": " + why);
  }

 private:
  const std::string upstream_;
  const Endpoint own_;
  const AddressPolicy policy_;
  std::atomic<ClassSet> own_classes_{0};
};

Poco::Net::Context::Ptr make_tls_context(const UpstreamConfig& config) {
  static std::once_flag ssl_initialized;
  std::call_once(ssl_initialized, [] { Poco::Net::initializeSSL(); });

  Poco::Net::Context::Params params;
  if (config.insecure_skip_tls_verify) {
    params.verificationMode = Poco::Net::Context::VERIFY_NONE;
  } else {
    params.verificationMode = Poco::Net::Context::VERIFY_RELAXED;
    params.loadDefaultCAs = config.ca_file.empty();
    params.caLocation = config.ca_file;
  }
  try {
    Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
    context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
    return context;
  } catch (const Poco::Exception& e) {
    throw std::invalid_argument("upstream " + config.name + ": cannot set up TLS (ca_file \"" + config.ca_file +
                                "\"): " + e.displayText());
  }
}

// The registry's own endpoint. The URL is not quoted back in the error: it
// might carry credentials that belong in username/password.
Target registry_root(const UpstreamConfig& config) {
  std::optional<Target> root = parse_target(config.url);
  if (!root || root->path_and_query != "/" || config.url.find('@') != std::string::npos) {
    throw std::invalid_argument("upstream " + config.name +
                                ": url must be http(s)://host[:port] (no path, no user info)");
  }
  return *root;
}

class RegistryClient final : public Client {
 public:
  RegistryClient(UpstreamConfig config, ExchangeObserver* observer)
      : config_(std::move(config)),
        observer_(observer),
        own_(registry_root(config_).endpoint),
        guard_(std::make_shared<AddressGuard>(
            config_.name, own_,
            AddressPolicy{networks(config_, config_.internal_networks, "internal_networks"),
                          networks(config_, config_.allowed_networks, "allowed_networks")})),
        settings_{make_tls_context(config_), config_.connect_timeout, config_.read_timeout,
                  [guard = guard_](const Endpoint& endpoint, const Poco::Net::SocketAddress& proposed) {
                    return guard->choose(endpoint, proposed);
                  },
                  config_.blob_queue_timeout},
        pools_(settings_, config_.max_connections),
        auth_(config_, settings_) {}

  const UpstreamConfig& config() const override { return config_; }

  Response head_manifest(const std::string& repo, const std::string& reference,
                         const std::vector<std::string>& accept) override {
    std::string name = upstream_name(repo);
    auto stream = perform("HEAD", name, "/v2/" + name + "/manifests/" + reference, accept);
    return stream->response();  // a HEAD response has no body: the connection is already pooled
  }

  BufferedResponse get_manifest(const std::string& repo, const std::string& reference,
                                const std::vector<std::string>& accept, std::size_t max_bytes) override {
    std::string name = upstream_name(repo);
    return buffered(perform("GET", name, "/v2/" + name + "/manifests/" + reference, accept), max_bytes, "manifest");
  }

  std::unique_ptr<BodyStream> get_blob(const std::string& repo, const std::string& digest) override {
    std::string name = upstream_name(repo);
    return perform("GET", name, "/v2/" + name + "/blobs/" + digest, {}, Priority::Blob);
  }

  std::unique_ptr<BodyStream> get_blob_from(const std::string& repo, const std::string& digest,
                                            std::uint64_t first) override {
    std::string name = upstream_name(repo);
    return perform("GET", name, "/v2/" + name + "/blobs/" + digest, {}, Priority::Blob,
                   "bytes=" + std::to_string(first) + "-");
  }

  Response head_blob(const std::string& repo, const std::string& digest) override {
    std::string name = upstream_name(repo);
    auto stream = perform("HEAD", name, "/v2/" + name + "/blobs/" + digest, {});
    return stream->response();  // no body: the connection is already pooled
  }

  BufferedResponse get_tags(const std::string& repo, const std::string& query, std::size_t max_bytes) override {
    std::string name = upstream_name(repo);
    std::string path = "/v2/" + name + "/tags/list";
    if (!query.empty()) path += "?" + query;
    return buffered(perform("GET", name, std::move(path), {}), max_bytes, "tag list");
  }

  BufferedResponse get_referrers(const std::string& repo, const std::string& digest, const std::string& query,
                                 std::size_t max_bytes) override {
    std::string name = upstream_name(repo);
    std::string path = "/v2/" + name + "/referrers/" + digest;
    if (!query.empty()) path += "?" + query;
    return buffered(perform("GET", name, std::move(path), {}), max_bytes, "referrers list");
  }

 private:
  std::string upstream_name(const std::string& repo) const {
    if (config_.library_prefix && repo.find('/') == std::string::npos) return "library/" + repo;
    return repo;
  }

  static BufferedResponse buffered(std::unique_ptr<PooledBodyStream> stream, std::size_t max_bytes,
                                   std::string_view what) {
    BufferedResponse out;
    static_cast<Response&>(out) = stream->response();
    out.body = read_all(*stream, max_bytes, what);
    return out;
  }

  // Sends the request, answering one 401 challenge and following up to
  // kMaxRedirects redirects. Authorization goes only to our own endpoint.
  std::unique_ptr<PooledBodyStream> perform(const std::string& method, const std::string& repo, std::string path,
                                            const std::vector<std::string>& accept,
                                            Priority priority = Priority::Metadata, const std::string& range = {}) {
    Target target{own_, std::move(path)};
    std::string authorization = auth_.up_front(repo);
    bool challenge_answered = false;
    int redirects = 0;
    while (true) {
      bool own = target.endpoint == own_;
      Request request{method, target.path_and_query, {{"User-Agent", kUserAgent}}, priority};
      for (const auto& value : accept) request.headers.emplace_back("Accept", value);
      if (!range.empty()) request.headers.emplace_back("Range", range);
      if (own && !authorization.empty()) request.headers.emplace_back("Authorization", authorization);

      auto stream = exchange(target, request);
      int status = stream->response().status;
      if (own) {
        log::debug("upstream " + config_.name + ": " + method + " " + target.path_and_query + " -> " +
                   std::to_string(status));
      }

      if (status == 401 && own && !challenge_answered) {
        challenge_answered = true;
        std::optional<std::string> retry_with = auth_.answer(stream->header("WWW-Authenticate"), repo, authorization);
        if (!retry_with) return stream;
        stream->drain(kDrainLimit);
        authorization = std::move(*retry_with);
        continue;
      }
      if (is_redirect(status) && !stream->header("Location").empty()) {
        if (++redirects > kMaxRedirects) {
          throw TransportError("upstream " + config_.name + ": more than " + std::to_string(kMaxRedirects) +
                               " redirects");
        }
        std::string location = stream->header("Location");
        std::optional<Target> next = resolve_location(target, location);
        if (!next) {
          log::warn("upstream " + config_.name + ": refused a redirect to a location that is not an http(s) URL (" +
                    location_scheme(location) + ")");
          throw TransportError("upstream " + config_.name +
                               ": redirect to an unusable location (only http and https are followed)");
        }
        // Once a request went over https (or the upstream is https), a plain
        // http hop would expose and let anyone on the path rewrite what we then
        // store and serve as this upstream's content.
        if (next->endpoint.scheme == "http" && (target.endpoint.scheme == "https" || own_.scheme == "https")) {
          log::warn("upstream " + config_.name + ": refused a redirect from https to plain http (" +
                    next->endpoint.label() + ")");
          throw TransportError("upstream " + config_.name + ": refused a redirect from https to plain http (" +
                               next->endpoint.label() + ")");
        }
        log::debug("upstream " + config_.name + ": " + std::to_string(status) + " redirect to " +
                   next->endpoint.label());
        stream->drain(kDrainLimit);
        target = std::move(*next);
        continue;
      }
      return stream;
    }
  }

  // One request up to its response head, reported to the observer.
  std::unique_ptr<PooledBodyStream> exchange(const Target& target, const Request& request) {
    if (!observer_) return send_request(*pools_.pool(target.endpoint), request);
    const auto started = std::chrono::steady_clock::now();
    auto report = [&](ExchangeOutcome outcome, int status, std::string_view error) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      observer_->exchanged({config_.name, request.method, outcome, status, seconds, error});
    };
    try {
      auto stream = send_request(*pools_.pool(target.endpoint), request);
      report(ExchangeOutcome::Answered, stream->response().status, {});
      return stream;
    } catch (const TimeoutError& e) {
      report(ExchangeOutcome::Timeout, 0, e.what());
      throw;
    } catch (const TransportError& e) {
      report(ExchangeOutcome::ConnectionError, 0, e.what());
      throw;
    }
  }

  const UpstreamConfig config_;
  ExchangeObserver* const observer_;
  const Endpoint own_;
  const std::shared_ptr<AddressGuard> guard_;
  const SessionSettings settings_;
  PoolSet pools_;
  Authenticator auth_;
};

}  // namespace

std::unique_ptr<Client> make_client(UpstreamConfig config, ExchangeObserver* observer) {
  return std::make_unique<RegistryClient>(std::move(config), observer);
}

}  // namespace regcache::upstream
