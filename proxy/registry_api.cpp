#include "proxy/registry_api.h"

#include "common/log.h"
#include "db/store_errors.h"

namespace regcache::proxy {

Digest parse_digest(const std::string& text) {
  if (auto d = Digest::parse(text)) return *d;
  if (digest_syntax_ok(text) && text.rfind("sha256:", 0) != 0 && text.rfind("sha512:", 0) != 0)
    throw RegistryError(ErrorCode::Unsupported, "unsupported digest algorithm in '" + text + "'");
  throw RegistryError(ErrorCode::DigestInvalid, "invalid digest '" + text + "'");
}

Reference parse_reference(const std::string& text) {
  if (text.find(':') != std::string::npos) return Reference::digest(parse_digest(text));
  if (valid_tag(text)) return Reference::tag(text);
  throw RegistryError(ErrorCode::TagInvalid, "invalid tag '" + text + "'");
}

void set_common_headers(Exchange& ex) { ex.response.set("Docker-Distribution-API-Version", "registry/2.0"); }

void set_cache_status(Exchange& ex, cache::CacheStatus status) {
  ex.cache_status = cache::to_string(status);
  ex.response.set("X-Cache-Status", ex.cache_status);
  if (status == cache::CacheStatus::Stale) ex.response.set("Warning", "110 - \"Response is Stale\"");
}

cache::Body request_body(Exchange& ex) {
  std::optional<std::uint64_t> length;
  if (ex.request.hasContentLength()) length = static_cast<std::uint64_t>(ex.request.getContentLength64());
  return {ex.request.stream(), length};
}

RegistryApi::RegistryApi(cache::PullThroughCache& cache, cache::HostedRegistry& hosted, OriginResolver origins)
    : cache_(cache), hosted_(hosted), origins_(std::make_shared<const OriginResolver>(std::move(origins))) {}

void RegistryApi::set_origins(OriginResolver origins) {
  auto fresh = std::make_shared<const OriginResolver>(std::move(origins));
  std::lock_guard lock(origins_mutex_);
  origins_ = std::move(fresh);
}

std::shared_ptr<const OriginResolver> RegistryApi::origins() const {
  std::lock_guard lock(origins_mutex_);
  return origins_;
}

ResolvedRepo RegistryApi::resolve(Exchange& ex, const std::string& name) const {
  ResolvedRepo resolved = origins()->resolve(name, query_param(ex.query, "ns"));
  if (!resolved.hosted()) ex.response.set("OCI-Namespace", resolved.origin->ns);
  return resolved;
}

ResolvedRepo RegistryApi::resolve_hosted(Exchange& ex, const std::string& name) const {
  ResolvedRepo resolved = resolve(ex, name);
  if (!resolved.hosted())
    throw RegistryError(ErrorCode::Denied, "'" + name + "' is a read-only mirror of upstream " + resolved.origin->ns +
                                               "; push to a hosted namespace instead");
  return resolved;
}

void RegistryApi::handle(Exchange& ex) {
  set_common_headers(ex);
  try {
    if (ex.path == kTokenPath) return token_endpoint(ex);
    Route r = route(ex.path);
    ex.resource = r.resource;
    ex.repository = r.name;
    dispatch(ex, r, authorize(ex, r));
  } catch (const ClientGone&) {
    throw;
  } catch (const RegistryError& e) {
    if (ex.response.sent()) {
      abort_connection(ex);
      return;
    }
    send_error(ex, e);
  } catch (const db::StoreUnavailable& e) {
    // The metadata store's server is away (db/store_errors.h): a clear 503
    // the client may retry, not a 500; the store reconnects by itself.
    log::error(ex.request.getMethod() + " " + ex.path + ": " + e.what());
    if (ex.response.sent()) {
      abort_connection(ex);
      return;
    }
    send_error(ex, RegistryError(ErrorCode::Unavailable, "the metadata store is unavailable; try again shortly"));
  } catch (const std::exception& e) {
    log::error(ex.request.getMethod() + " " + ex.path + ": " + e.what());
    if (ex.response.sent()) {
      abort_connection(ex);
      return;
    }
    send_error(ex, RegistryError(ErrorCode::Internal, "internal error"));
  }
}

void RegistryApi::dispatch(Exchange& ex, const Route& r, const auth::Caller& caller) {
  const std::string& method = ex.request.getMethod();
  auto allow = [&](std::initializer_list<const char*> methods) {
    for (const char* m : methods)
      if (method == m) return;
    throw RegistryError(ErrorCode::MethodNotAllowed, method + " is not supported on " + ex.path);
  };
  switch (r.resource) {
    case Resource::Base:
      allow({"GET", "HEAD"});
      return base(ex);
    case Resource::Manifest:
      allow({"GET", "HEAD", "PUT", "DELETE"});
      return manifest(ex, r);
    case Resource::Blob:
      allow({"GET", "HEAD", "DELETE"});
      return blob(ex, r);
    case Resource::UploadStart:
      allow({"POST"});
      return upload(ex, r);
    case Resource::Upload:
      allow({"GET", "PATCH", "PUT", "DELETE"});
      return upload(ex, r);
    case Resource::TagList:
      allow({"GET"});
      return tag_list(ex, r);
    case Resource::Catalog:
      allow({"GET"});
      return catalog(ex, caller);
    case Resource::Referrers:
      allow({"GET"});
      return referrers(ex, r);
    case Resource::Unknown:
      break;
  }
  throw RegistryError(ErrorCode::NotFound, "no such endpoint: " + ex.path);
}

void RegistryApi::base(Exchange& ex) { send_body(ex, "{}", "application/json"); }

}  // namespace regcache::proxy
