// /v2/<name>/manifests/<reference>: GET/HEAD (cache or hosted), PUT and DELETE (hosted)
#include "proxy/registry_api.h"

namespace regcache::proxy {
namespace {

// Reads a manifest body, refusing more than `limit` bytes without reading them all.
std::string read_manifest_body(Exchange& ex, std::size_t limit) {
  if (ex.request.hasContentLength() && static_cast<std::uint64_t>(ex.request.getContentLength64()) > limit)
    throw RegistryError(ErrorCode::ManifestTooLarge, "manifest exceeds the limit of " + std::to_string(limit) + " bytes");
  std::string body;
  std::istream& in = ex.request.stream();
  char buffer[64 << 10];
  while (in) {
    in.read(buffer, sizeof buffer);
    body.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (body.size() > limit)
      throw RegistryError(ErrorCode::ManifestTooLarge, "manifest exceeds the limit of " + std::to_string(limit) + " bytes");
  }
  return body;
}

}  // namespace

void RegistryApi::manifest(Exchange& ex, const Route& r) {
  const std::string& method = ex.request.getMethod();
  if (method == "PUT") {
    auto [origin, repo] = resolve_hosted(ex, r.name);
    Reference ref = parse_reference(r.reference);
    std::string body = read_manifest_body(ex, hosted_.max_manifest_bytes());
    auto result = hosted_.put_manifest(repo, ref, body, ex.request.getContentType());
    ex.response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_CREATED);
    ex.response.set("Location", "/v2/" + r.name + "/manifests/" + result.digest.str());
    ex.response.set("Docker-Content-Digest", result.digest.str());
    if (result.subject) ex.response.set("OCI-Subject", result.subject->str());
    return send_body(ex, "", "text/plain");
  }
  if (method == "DELETE") {
    auto [origin, repo] = resolve_hosted(ex, r.name);
    hosted_.delete_manifest(repo, parse_reference(r.reference));
    ex.response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_ACCEPTED);
    return send_body(ex, "", "text/plain");
  }

  auto [origin, repo] = resolve(ex, r.name);
  Reference ref = parse_reference(r.reference);
  cache::ManifestResult result = [&] {
    if (!origin) return hosted_.get_manifest(repo, ref);
    cache::AcceptList accept;
    for (const auto& value : ex.header_values("Accept")) accept.add_header(value);
    return cache_.get_manifest(*origin, repo, ref, accept);
  }();
  set_cache_status(ex, result.status);
  ex.response.set("Docker-Content-Digest", result.digest.str());
  ex.response.set("ETag", "\"" + result.digest.str() + "\"");
  send_body(ex, *result.body, result.media_type);
}

}  // namespace regcache::proxy
