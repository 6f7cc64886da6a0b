// /v2/<name>/blobs/<digest>: GET/HEAD with Range — stored blobs, and cache
// misses from the growing spool of the blob's fill — and DELETE (hosted).
// Bytes go out with sendfile(2) when the store has a local file for them (a
// range that ends the body may then finish in the event loop, holding no
// worker); a store without one is streamed through read_at() by this worker.
#include <algorithm>
#include <vector>

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

// Sends bytes [offset, offset + count) of `source` (after send_headers()).
// Throws ClientGone as send_file_range does, RegistryError(Internal) when the
// store cannot give the bytes (the caller cuts the connection).
void send_source_range(Exchange& ex, cache::BlobSource& source, std::uint64_t offset, std::uint64_t count) {
  if (auto fd = source.native_fd()) return send_file_range(ex, *fd, offset, count);
  static constexpr std::size_t kChunk = 256 << 10;
  std::vector<char> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, count)));
  while (count > 0) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), count));
    std::size_t n = 0;
    try {
      n = source.read_at(offset, buffer.data(), want);
    } catch (const RegistryError&) {
      throw;
    } catch (const std::exception& e) {
      throw RegistryError(ErrorCode::Internal, std::string("reading the blob store failed: ") + e.what());
    }
    if (n == 0)
      throw RegistryError(ErrorCode::Internal, "the blob store ended " + std::to_string(count) + " bytes short at byte " +
                                                   std::to_string(offset));
    send_bytes(ex, buffer.data(), n);
    offset += n;
    count -= n;
  }
}

void serve_stored(Exchange& ex, cache::BlobReader& reader) {
  std::uint64_t size = reader.size();
  ByteRange part = prepare(ex, size);
  send_headers(ex);
  if (ex.is_head() || size == 0) return;
  try {
    send_source_range(ex, reader, part.first, part.length());
  } catch (const RegistryError& e) {
    // Headers are out: a short body must not look complete.
    log::warn("aborting " + ex.path + ": " + e.what());
    abort_connection(ex);
  }
}

// Sends bytes [pos, end) of a blob passed through from the upstream. The
// range's final byte is held back until the whole blob (read to its end even
// past the range) is verified; on a mismatch or a broken upstream the
// connection is cut, so a wrong or short body never looks complete.
void serve_pass_through(Exchange& ex, cache::PassThrough& pt, std::uint64_t pos, std::uint64_t end) {
  std::vector<char> buffer(256 << 10);
  char last = 0;
  bool have_last = false;
  try {
    while (std::size_t n = pt.read(buffer.data(), buffer.size())) {
      std::uint64_t at = pt.offset() - n;  // blob offset of buffer[0]
      std::uint64_t from = std::max(at, pos), to = std::min(at + n, end);
      if (from >= to) continue;
      if (to == end) {  // holds the range's final byte
        last = buffer[static_cast<std::size_t>(end - 1 - at)];
        have_last = true;
        --to;
      }
      if (to > from) send_bytes(ex, buffer.data() + (from - at), static_cast<std::size_t>(to - from));
      pos = to;
    }
  } catch (const RegistryError& e) {
    log::warn("aborting pass-through of " + ex.path + " at byte " + std::to_string(pos) + ": " + e.what());
    return abort_connection(ex);
  }
  if (!have_last || !pt.verified()) {
    log::warn("aborting pass-through of " + ex.path + ": the upstream's bytes do not hash to the digest");
    return abort_connection(ex);
  }
  send_bytes(ex, &last, 1);
}

// The store could not keep the blob and nothing was sent yet: the whole
// answer comes from a pass-through.
void serve_fresh_pass_through(Exchange& ex, cache::PullThroughCache& cache, const cache::Origin& origin,
                              const RepoName& repo, const Digest& digest) {
  auto pt = cache.pass_through(origin, repo, digest);
  set_cache_status(ex, cache::CacheStatus::Pass);
  const std::uint64_t size = pt->size();
  ByteRange part = prepare(ex, size);
  send_headers(ex);
  if (ex.is_head() || size == 0) return;
  serve_pass_through(ex, *pt, part.first, part.first + part.length());
}

void serve_filling(Exchange& ex, cache::BlobFillPtr fill, cache::PullThroughCache& cache, const cache::Origin& origin,
                   const RepoName& repo, const Digest& digest) {
  using State = cache::BlobFill::State;
  std::optional<std::uint64_t> announced;
  try {
    announced = fill->wait_started();
  } catch (const RegistryError&) {
    if (!fill->passes_through()) throw;
    fill.reset();
    return serve_fresh_pass_through(ex, cache, origin, repo, digest);
  }
  if (!announced) {
    // The upstream sent no length: wait for the verified whole, then serve it.
    auto end = fill->wait_ended();
    if (end.state == State::Failed) {
      if (!fill->passes_through()) throw RegistryError(ErrorCode::Unavailable, fill->failure());
      fill.reset();
      return serve_fresh_pass_through(ex, cache, origin, repo, digest);
    }
    announced = end.spooled;
  }
  const std::uint64_t size = *announced;
  ByteRange part = prepare(ex, size);
  send_headers(ex);
  if (ex.is_head() || size == 0) return;

  // Set once Streaming (wait_started returned), and kept: the fill may drop it.
  cache::BlobSourcePtr spool = fill->spool();
  if (!spool) {  // cannot happen once started; headers are out, so cut rather than throw
    log::warn("aborting " + ex.path + ": its fill has no spool");
    return abort_connection(ex);
  }
  std::uint64_t pos = part.first, end = part.first + part.length();
  while (pos < end) {
    auto p = fill->wait_beyond(pos);
    // A fill verified before its commit failed still has the whole blob in
    // its spool: serve it from there.
    if (p.state == State::Failed && !p.verified) {
      if (fill->passes_through()) {
        // The store gave up, the upstream did not: go on from the upstream.
        // What this client got so far ([0, pos) as far as the spool has it)
        // is re-read from the spool for the digest.
        std::uint64_t prefix = std::min(pos, p.spooled);
        log::warn("continuing " + ex.path + " from the upstream at byte " + std::to_string(pos) + ": " +
                  fill->failure());
        std::unique_ptr<cache::PassThrough> pt;
        try {
          pt = cache.pass_through(origin, repo, digest, spool.get(), prefix);
        } catch (const RegistryError& e) {
          log::warn("aborting " + ex.path + " after " + std::to_string(pos - part.first) + " bytes: " + e.what());
          return abort_connection(ex);
        }
        fill.reset();  // the spool's space goes back once no reader needs it
        spool.reset();
        if (pt->size() != size) {
          log::warn("aborting " + ex.path + ": the upstream now announces " + std::to_string(pt->size()) + " bytes, not " +
                    std::to_string(size));
          return abort_connection(ex);
        }
        return serve_pass_through(ex, *pt, pos, end);
      }
      log::warn("aborting " + ex.path + " after " + std::to_string(pos - part.first) + " bytes: " + fill->failure());
      abort_connection(ex);
      return;
    }
    std::uint64_t limit = std::min(p.spooled, end);
    // The final byte goes out only once the whole blob is verified.
    if (!p.verified && limit == size) limit = size - 1;
    if (limit <= pos) {
      fill->wait_verified();
      continue;
    }
    try {
      send_source_range(ex, *spool, pos, limit - pos);
    } catch (const RegistryError& e) {
      log::warn("aborting " + ex.path + " after " + std::to_string(pos - part.first) + " bytes: " + e.what());
      return abort_connection(ex);
    }
    pos = limit;
  }
}

// Redirect mode: a blob the store holds whole (opened, so it is there and
// this client may read it: the caller passed access control and the cache's
// namespace check) goes out as a 307 to the store's own URL for it. The client
// repeats its Range there. false when the store offers no URL: serve it here.
bool redirect(Exchange& ex, cache::BlobStore& store, const Digest& digest, std::chrono::seconds expires) {
  std::optional<std::string> url;
  try {
    url = store.redirect_url(digest, expires);
  } catch (const std::exception& e) {
    log::warn("serving " + ex.path + " without a redirect: " + e.what());
    return false;
  }
  if (!url) return false;
  ex.response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_TEMPORARY_REDIRECT);
  ex.response.set("Location", *url);
  // The URL is a credential for the object until it expires: no cache keeps it.
  ex.response.set("Cache-Control", "no-store");
  send_body(ex, "", "application/octet-stream");
  return true;
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
  if (result.reader && redirect_store_ && !ex.is_head() && redirect(ex, *redirect_store_, digest, redirect_expires_))
    return;
  if (result.reader)
    serve_stored(ex, *result.reader);
  else if (result.fill)
    serve_filling(ex, std::move(result.fill), cache_, *origin, repo, digest);
  else if (origin)
    serve_fresh_pass_through(ex, cache_, *origin, repo, digest);
  else
    throw RegistryError(ErrorCode::Internal, "no blob to serve for " + digest.str());
}

}  // namespace regcache::proxy
