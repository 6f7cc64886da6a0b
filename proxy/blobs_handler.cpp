// /v2/<name>/blobs/<digest>: GET/HEAD with Range — stored blobs go out with
// sendfile(2), cache misses from the growing spool of the blob's fill — and
// DELETE (hosted).
#include "common/log.h"
#include "proxy/http_range.h"
#include "proxy/registry_api.h"

namespace regcache::proxy {
namespace {

// Sets status, length and range headers for a body of `size` bytes; returns the
// part to send.
ByteRange prepare(Exchange& ex, std::uint64_t size) {
  ex.response.set("Accept-Ranges", "bytes");
  RangeRequest rr;
  if (ex.request.has("Range")) rr = parse_range(ex.request.get("Range"), size);
  if (rr.kind == RangeKind::Unsatisfiable) {
    ex.response.set("Content-Range", "bytes */" + std::to_string(size));
    throw RegistryError(ErrorCode::RangeNotSatisfiable,
                        "range " + ex.request.get("Range") + " is outside the blob's " + std::to_string(size) + " bytes");
  }
  if (rr.kind == RangeKind::Satisfiable) {
    ex.response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_PARTIAL_CONTENT);
    ex.response.set("Content-Range", "bytes " + std::to_string(rr.range.first) + "-" +
                                         std::to_string(rr.range.last) + "/" + std::to_string(size));
    ex.response.setContentLength64(static_cast<Poco::Int64>(rr.range.length()));
    return rr.range;
  }
  ex.response.setContentLength64(static_cast<Poco::Int64>(size));
  return {0, size - 1};  // size 0 gives an empty range below
}

void serve_stored(Exchange& ex, cache::BlobReader& reader) {
  std::uint64_t size = reader.size();
  ByteRange part = prepare(ex, size);
  send_headers(ex);
  if (ex.is_head() || size == 0) return;
  send_file_range(ex, reader.fd(), part.first, part.length());
}

void serve_filling(Exchange& ex, cache::BlobFill& fill) {
  using State = cache::BlobFill::State;
  std::optional<std::uint64_t> announced = fill.wait_started();
  if (!announced) {
    // The upstream sent no length: wait for the verified whole, then serve it.
    auto end = fill.wait_ended();
    if (end.state == State::Failed) throw RegistryError(ErrorCode::Unavailable, fill.failure());
    announced = end.spooled;
  }
  const std::uint64_t size = *announced;
  ByteRange part = prepare(ex, size);
  send_headers(ex);
  if (ex.is_head() || size == 0) return;

  std::uint64_t pos = part.first, end = part.first + part.length();
  while (pos < end) {
    auto p = fill.wait_beyond(pos);
    if (p.state == State::Failed) {
      log::warn("aborting " + ex.path + " after " + std::to_string(pos - part.first) + " bytes: " + fill.failure());
      abort_connection(ex);
      return;
    }
    std::uint64_t limit = std::min(p.spooled, end);
    // The final byte goes out only once the whole blob is verified.
    if (p.state != State::Committed && limit == size) limit = size - 1;
    if (limit <= pos) {
      fill.wait_ended();
      continue;
    }
    send_file_range(ex, fill.spool_fd(), pos, limit - pos);
    pos = limit;
  }
}

}  // namespace

void RegistryApi::blob(Exchange& ex, const Route& r) {
  if (ex.request.getMethod() == "DELETE") {
    auto [origin, repo] = resolve_hosted(ex, r.name);
    hosted_.delete_blob(repo, parse_digest(r.reference));
    ex.response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_ACCEPTED);
    return send_body(ex, "", "text/plain");
  }
  auto [origin, repo] = resolve(ex, r.name);
  Digest digest = parse_digest(r.reference);
  if (origin && ex.is_head()) {
    // A HEAD never fills: answered from the store or from an upstream HEAD.
    auto head = cache_.head_blob(*origin, repo, digest);
    set_cache_status(ex, head.status);
    ex.response.setContentType("application/octet-stream");
    ex.response.set("Docker-Content-Digest", digest.str());
    ex.response.set("ETag", "\"" + digest.str() + "\"");
    prepare(ex, head.size);
    return send_headers(ex);
  }
  auto result = origin ? cache_.get_blob(*origin, repo, digest) : hosted_.get_blob(repo, digest);
  set_cache_status(ex, result.status);
  ex.response.setContentType("application/octet-stream");
  ex.response.set("Docker-Content-Digest", digest.str());
  ex.response.set("ETag", "\"" + digest.str() + "\"");
  if (result.reader)
    serve_stored(ex, *result.reader);
  else
    serve_filling(ex, *result.fill);
}

}  // namespace regcache::proxy
