#pragma once
// The registry's HTTP face: validates what the client asked for (names,
// references, digests) before any I/O, finds where the repository lives
// (an upstream's cache, or hosted here), and answers each resource with its
// own handler (one file each).
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>

#include "cache/hosted_registry.h"
#include "cache/pull_through_cache.h"
#include "proxy/auth/authenticator.h"
#include "proxy/exchange.h"
#include "proxy/origin_resolver.h"
#include "proxy/router.h"

namespace regcache::proxy {

class RegistryApi {
 public:
  RegistryApi(cache::PullThroughCache& cache, cache::HostedRegistry& hosted, OriginResolver origins);

  // Replaces the routing (upstreams, their clients and settings, hosted
  // prefixes); requests already routed finish with what they had.
  void set_origins(OriginResolver origins);

  // Client authentication and access rules (proxy/access_control.cpp). Null
  // (the default): every request is allowed, as before auth existed.
  void set_authenticator(std::shared_ptr<auth::Authenticator> authenticator);
  // Builds the authenticator for these settings (at start and on every
  // reload: users, rules and keys re-read, credential cache emptied) and logs
  // what anonymous clients may do. `listen_host` decides the safe default
  // (loopback only, or a network address). Throws ConfigError naming the key.
  void configure_auth(const auth::AuthSettings& settings, const std::string& listen_host, bool tls,
                      const std::filesystem::path& data_dir);
  // Failed authentications since start, kept across reloads (for metrics).
  std::uint64_t failed_authentications() const;
  std::shared_ptr<auth::Authenticator> authenticator() const;

  // Redirect mode (blobs.redirect): a GET of a blob the store holds whole is
  // answered 307 with the store's redirect_url (valid `expires`) when it offers
  // one. Call before serving (not reloaded); null `store`: off (the default).
  void set_blob_redirect(cache::BlobStore* store, std::chrono::seconds expires) {
    redirect_store_ = store;
    redirect_expires_ = expires;
  }

  // Answers one request completely (errors included). Throws only ClientGone.
  void handle(Exchange& ex);

  // Serves a read-only operator page (the status page) under the same access
  // rule as GET /v2/: with users or rules configured, an anonymous client gets
  // the 401 challenge; errors are answered as OCI errors. `serve` sends the page.
  void serve_operator_page(Exchange& ex, const std::function<void()>& serve);

  // The token endpoint's path: outside /v2/, so no repository name can reach it.
  static constexpr const char* kTokenPath = "/auth/token";

 private:
  void dispatch(Exchange& ex, const Route& route, const auth::Caller& caller);
  void base(Exchange& ex);
  void manifest(Exchange& ex, const Route& route);
  void blob(Exchange& ex, const Route& route);
  void upload(Exchange& ex, const Route& route);
  void tag_list(Exchange& ex, const Route& route);
  void catalog(Exchange& ex, const auth::Caller& caller);
  void referrers(Exchange& ex, const Route& route);

  // Where the repository lives, from the path and the ns parameter; a proxied
  // one is announced in OCI-Namespace.
  ResolvedRepo resolve(Exchange& ex, const std::string& name) const;
  // Refuses writes to a proxied repository.
  ResolvedRepo resolve_hosted(Exchange& ex, const std::string& name) const;

  std::shared_ptr<const OriginResolver> origins() const;

  // Access control (proxy/access_control.cpp). authorize() returns who the
  // caller is when the request may proceed, and throws the 401/403/429 error
  // (with its challenge set on the response) otherwise.
  auth::Caller authorize(Exchange& ex, const Route& route);
  void token_endpoint(Exchange& ex);
  // The name access rules see: hosted repositories as they are, mirrored ones
  // under their upstream's name ("docker.io/library/busybox"), however the
  // client addressed them (plain name, path prefix or ?ns=).
  std::string policy_name(const std::string& name, const std::string& ns) const;
  bool may_pull_hosted(const auth::Caller& caller, const std::string& repository) const;
  void challenge(Exchange& ex, const auth::Authenticator& authn, const std::string& scope,
                 const std::string& error) const;

  cache::PullThroughCache& cache_;
  cache::HostedRegistry& hosted_;
  mutable std::mutex origins_mutex_;
  std::shared_ptr<const OriginResolver> origins_;
  std::shared_ptr<auth::Authenticator> authenticator_;  // guarded by origins_mutex_
  std::shared_ptr<auth::FailureLimiter> auth_failures_;  // set once by the first configure_auth()
  cache::BlobStore* redirect_store_ = nullptr;  // set_blob_redirect(); null: off
  std::chrono::seconds redirect_expires_{0};
};

// Shared by the handlers: validation at the edge and common headers.
Digest parse_digest(const std::string& text);
Reference parse_reference(const std::string& text);
void set_common_headers(Exchange& ex);
// Records how the answer was made, for the log line and the X-Cache-Status
// header; a stale answer also gets `Warning: 110`.
void set_cache_status(Exchange& ex, cache::CacheStatus status);
// The request body and its declared length.
cache::Body request_body(Exchange& ex);

}  // namespace regcache::proxy
