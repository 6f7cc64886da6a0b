// make_client(): the registry client proper. Requests go through pooled
// connections (connection_pool.h, transport.h); 401s are answered by the
// Authenticator; redirects are followed here.
#include "upstream/client.h"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/URI.h>

#include <mutex>
#include <stdexcept>

#include "common/log.h"
#include "upstream/authenticator.h"
#include "upstream/connection_pool.h"
#include "upstream/transport.h"

namespace regcache::upstream {
namespace {

constexpr const char* kUserAgent = "regcache/0.1";
constexpr int kMaxRedirects = 5;
constexpr std::size_t kDrainLimit = 64 * 1024;  // bodies of 401s and redirects read to keep the connection

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool has_scheme(const std::string& url) {
  std::size_t colon = url.find(':');
  return colon != std::string::npos && colon > 0 && url.find_first_of("/?#") > colon;
}

// The target a Location header points at, relative to the request that got it.
std::optional<Target> resolve_location(const Target& base, const std::string& location) {
  if (has_scheme(location)) return parse_target(location);
  try {
    Poco::URI uri;
    uri.setScheme(base.endpoint.scheme);
    uri.setHost(base.endpoint.host);
    uri.setPort(base.endpoint.port);
    uri.setPathEtc(base.path_and_query);
    uri.resolve(location);
    return parse_target(uri.toString());
  } catch (const Poco::SyntaxException&) {
    return std::nullopt;
  }
}

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
  explicit RegistryClient(UpstreamConfig config)
      : config_(std::move(config)),
        own_(registry_root(config_).endpoint),
        settings_{make_tls_context(config_), config_.connect_timeout, config_.read_timeout},
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

  Response head_blob(const std::string& repo, const std::string& digest) override {
    std::string name = upstream_name(repo);
    auto stream = perform("HEAD", name, "/v2/" + name + "/blobs/" + digest, {});
    return stream->response();  // as head_manifest: no body to read
  }

  std::unique_ptr<BodyStream> get_blob(const std::string& repo, const std::string& digest) override {
    std::string name = upstream_name(repo);
    return perform("GET", name, "/v2/" + name + "/blobs/" + digest, {});
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
                                            const std::vector<std::string>& accept) {
    Target target{own_, std::move(path)};
    std::string authorization = auth_.up_front(repo);
    bool challenge_answered = false;
    int redirects = 0;
    while (true) {
      bool own = target.endpoint == own_;
      Request request{method, target.path_and_query, {{"User-Agent", kUserAgent}}};
      for (const auto& value : accept) request.headers.emplace_back("Accept", value);
      if (own && !authorization.empty()) request.headers.emplace_back("Authorization", authorization);

      auto stream = send_request(*pools_.pool(target.endpoint), request);
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
        std::optional<Target> next = resolve_location(target, stream->header("Location"));
        if (!next) throw TransportError("upstream " + config_.name + ": redirect to an unusable location");
        log::debug("upstream " + config_.name + ": " + std::to_string(status) + " redirect to " +
                   next->endpoint.label());
        stream->drain(kDrainLimit);
        target = std::move(*next);
        continue;
      }
      return stream;
    }
  }

  const UpstreamConfig config_;
  const Endpoint own_;
  const SessionSettings settings_;
  PoolSet pools_;
  Authenticator auth_;
};

}  // namespace

std::unique_ptr<Client> make_client(UpstreamConfig config) {
  return std::make_unique<RegistryClient>(std::move(config));
}

}  // namespace regcache::upstream
