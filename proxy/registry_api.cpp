#include "proxy/registry_api.h"

#include "common/log.h"

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

RegistryApi::RegistryApi(cache::PullThroughCache& cache, OriginResolver origins)
    : cache_(cache), origins_(std::move(origins)) {}

ResolvedRepo RegistryApi::resolve(Exchange& ex, const std::string& name) const {
  ResolvedRepo resolved = origins_.resolve(name, query_param(ex.query, "ns"));
  ex.response.set("OCI-Namespace", resolved.origin->ns);
  return resolved;
}

void RegistryApi::handle(Exchange& ex) {
  set_common_headers(ex);
  try {
    dispatch(ex, route(ex.path));
  } catch (const ClientGone&) {
    throw;
  } catch (const RegistryError& e) {
    if (ex.response.sent()) {
      abort_connection(ex);
      return;
    }
    send_error(ex, e);
  } catch (const std::exception& e) {
    log::error(ex.request.getMethod() + " " + ex.path + ": " + e.what());
    if (ex.response.sent()) {
      abort_connection(ex);
      return;
    }
    send_error(ex, RegistryError(ErrorCode::Internal, "internal error"));
  }
}

void RegistryApi::dispatch(Exchange& ex, const Route& r) {
  const std::string& method = ex.request.getMethod();
  bool read = method == "GET" || method == "HEAD";
  auto refuse_method = [&] {
    throw RegistryError(ErrorCode::MethodNotAllowed, method + " is not supported on " + ex.path);
  };
  switch (r.resource) {
    case Resource::Base:
      if (!read) refuse_method();
      return base(ex);
    case Resource::Manifest:
      if (method == "PUT" || method == "DELETE")
        throw RegistryError(ErrorCode::Unsupported, "pushing and deleting are not supported: '" + r.name +
                                                        "' is a read-only mirror of upstream " +
                                                        resolve(ex, r.name).origin->ns);
      if (!read) refuse_method();
      return manifest(ex, r);
    case Resource::Blob:
      if (!read) refuse_method();
      return blob(ex, r);
    case Resource::TagList:
      if (method != "GET") refuse_method();
      return tag_list(ex, r);
    case Resource::UploadStart:
    case Resource::Upload:
      throw RegistryError(ErrorCode::Unsupported, "uploads are not supported: '" + r.name +
                                                      "' is a read-only mirror of upstream " +
                                                      resolve(ex, r.name).origin->ns);
    case Resource::Catalog:
    case Resource::Referrers:
      throw RegistryError(ErrorCode::Unsupported, ex.path + " is not offered by this mirror");
    case Resource::Unknown:
      break;
  }
  throw RegistryError(ErrorCode::NotFound, "no such endpoint: " + ex.path);
}

void RegistryApi::base(Exchange& ex) { send_body(ex, "{}", "application/json"); }

}  // namespace regcache::proxy
