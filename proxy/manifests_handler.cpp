// /v2/<name>/manifests/<reference>: GET/HEAD (cache or hosted), PUT and DELETE (hosted)
#include "common/manifest_schema.h"
#include "proxy/registry_api.h"

namespace regcache::proxy {
namespace {

// Reads and drops what is left of a refused body (up to a bound), so that a
// client still writing it gets to read the error instead of a broken pipe.
void discard_body(std::istream& in) {
  constexpr std::uint64_t kMaxDiscard = 64 << 20;
  char buffer[64 << 10];
  std::uint64_t dropped = 0;
  while (in && dropped < kMaxDiscard) {
    in.read(buffer, sizeof buffer);
    dropped += static_cast<std::uint64_t>(in.gcount());
  }
}

// Reads a manifest body of at most `limit` bytes.
std::string read_manifest_body(Exchange& ex, std::size_t limit) {
  auto too_large = [&] {
    discard_body(ex.request.stream());
    return RegistryError(ErrorCode::ManifestTooLarge, "manifest exceeds the limit of " + std::to_string(limit) + " bytes");
  };
  if (ex.request.hasContentLength() && static_cast<std::uint64_t>(ex.request.getContentLength64()) > limit)
    throw too_large();
  std::string body;
  std::istream& in = ex.request.stream();
  char buffer[64 << 10];
  while (in) {
    in.read(buffer, sizeof buffer);
    body.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (body.size() > limit) throw too_large();
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
  // A read of a reference that cannot exist is a miss, not a bad request
  // (the OCI conformance suite expects 404 for ".INVALID_MANIFEST_NAME");
  // either way nothing is asked of any upstream.
  Reference ref = [&] {
    try {
      return parse_reference(r.reference);
    } catch (const RegistryError& e) {
      if (e.code() != ErrorCode::TagInvalid) throw;
      throw RegistryError(ErrorCode::ManifestUnknown, std::string(e.what()) + ": no such manifest");
    }
  }();
  cache::ManifestResult result = [&] {
    if (!origin) return hosted_.get_manifest(repo, ref);
    cache::AcceptList accept;
    for (const auto& value : ex.header_values("Accept")) accept.add_header(value);
    return cache_.get_manifest(*origin, repo, ref, accept);
  }();
  set_cache_status(ex, result.status);
  ex.response.set("Docker-Content-Digest", result.digest.str());
  ex.response.set("ETag", "\"" + result.digest.str() + "\"");
  // Media types are checked when a manifest is stored; one stored before that
  // check may hold bytes that would split this response or a type a browser renders.
  send_body(ex, *result.body,
            is_servable_manifest_media_type(result.media_type) ? result.media_type : "application/octet-stream");
}

}  // namespace regcache::proxy
