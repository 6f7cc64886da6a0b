#include "proxy/internal_endpoint.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <vector>

#include "common/log.h"
#include "common/percent.h"
#include "proxy/registry_api.h"

namespace regcache::proxy {
namespace {

constexpr std::string_view kPrefix = "/_regcache/internal/";
constexpr std::string_view kFills = "/_regcache/internal/fills/";

// Constant-time: the time a wrong secret takes says nothing about the right one.
bool same_secret(const std::string& given, const std::string& secret) {
  return given.size() == secret.size() && CRYPTO_memcmp(given.data(), secret.data(), secret.size()) == 0;
}

void authenticate(Exchange& ex, const std::string& secret) {
  const std::string auth = ex.request.get("Authorization", "");
  if (auth.empty()) throw RegistryError(ErrorCode::Unauthorized, "the internal endpoint needs the cluster secret");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.rfind(kBearer, 0) != 0 || !same_secret(auth.substr(kBearer.size()), secret))
    throw RegistryError(ErrorCode::Denied, "wrong cluster secret");
}

// The `ns` parameter: an upstream's name (printable, no spaces, bounded).
std::string namespace_param(const std::string& query) {
  std::string ns;
  bool found = false;
  std::size_t at = 0;
  while (at <= query.size()) {
    std::size_t end = query.find('&', at);
    if (end == std::string::npos) end = query.size();
    std::string_view part(query.data() + at, end - at);
    if (part.rfind("ns=", 0) == 0) {
      auto decoded = percent_decode(part.substr(3));
      if (!decoded || found) throw RegistryError(ErrorCode::NameInvalid, "bad ns parameter");
      ns = *decoded;
      found = true;
    }
    at = end + 1;
  }
  if (ns.empty() || ns.size() > 255 ||
      std::any_of(ns.begin(), ns.end(), [](unsigned char c) { return c <= 0x20 || c >= 0x7f; }))
    throw RegistryError(ErrorCode::NameInvalid, "the ns parameter must name an upstream");
  return ns;
}

void send_source(Exchange& ex, cache::BlobSource& source, std::uint64_t offset, std::uint64_t count) {
  if (auto fd = source.native_fd()) return send_file_range(ex, *fd, offset, count);
  std::vector<char> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(256 << 10, count)));
  while (count > 0) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), count));
    std::size_t n = source.read_at(offset, buffer.data(), want);
    if (n == 0) throw RegistryError(ErrorCode::Internal, "the spool ended short at byte " + std::to_string(offset));
    send_bytes(ex, buffer.data(), n);
    offset += n;
    count -= n;
  }
}

// A running fill, as it arrives: the final byte only once it committed.
void serve_fill(Exchange& ex, cache::BlobFillPtr fill) {
  using State = cache::BlobFill::State;
  std::optional<std::uint64_t> size;
  try {
    size = fill->wait_started();
  } catch (const RegistryError& e) {
    throw RegistryError(ErrorCode::Unavailable, std::string("this replica's fill failed: ") + e.what());
  }
  if (!size) {  // no length announced: the verified whole first
    auto end = fill->wait_ended();
    if (end.state != State::Committed) throw RegistryError(ErrorCode::Unavailable, "this replica's fill failed");
    size = end.spooled;
  }
  ex.response.setContentType("application/octet-stream");
  ex.response.setContentLength64(static_cast<Poco::Int64>(*size));
  send_headers(ex);
  if (*size == 0) {
    if (fill->wait_ended().state != State::Committed) abort_connection(ex);
    return;
  }
  cache::BlobSourcePtr spool = fill->spool();
  if (!spool) return abort_connection(ex);
  std::uint64_t pos = 0;
  while (pos < *size) {
    auto p = fill->wait_beyond(pos);
    if (p.state == State::Failed) {
      log::warn("aborting the internal stream of " + fill->digest().str() + " after " + std::to_string(pos) +
                " bytes: " + fill->failure());
      return abort_connection(ex);
    }
    std::uint64_t limit = std::min(p.spooled, *size);
    if (p.state != State::Committed && limit == *size) limit = *size - 1;
    if (limit <= pos) {
      fill->wait_ended();
      continue;
    }
    try {
      send_source(ex, *spool, pos, limit - pos);
    } catch (const RegistryError& e) {
      log::warn("aborting the internal stream of " + fill->digest().str() + ": " + e.what());
      return abort_connection(ex);
    }
    pos = limit;
  }
}

void serve_stored(Exchange& ex, cache::BlobReader& reader) {
  ex.response.setContentType("application/octet-stream");
  ex.response.setContentLength64(static_cast<Poco::Int64>(reader.size()));
  send_headers(ex);
  try {
    if (reader.size() > 0) send_source(ex, reader, 0, reader.size());
  } catch (const RegistryError& e) {
    log::warn("aborting the internal stream of a stored blob: " + std::string(e.what()));
    abort_connection(ex);
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const ClientGone*>(&e)) throw;
    log::warn("aborting the internal stream of a stored blob: " + std::string(e.what()));
    abort_connection(ex);
  }
}

}  // namespace

bool serve_internal(Exchange& ex, cache::PullThroughCache& cache, const std::string& secret) {
  if (ex.path.rfind(kPrefix, 0) != 0) return false;
  ex.response.set("Cache-Control", "no-store");
  try {
    if (secret.empty()) throw RegistryError(ErrorCode::NotFound, "no cluster is configured on this replica");
    if (ex.path.rfind(kFills, 0) != 0) throw RegistryError(ErrorCode::NotFound, "no such internal endpoint");
    authenticate(ex, secret);
    if (ex.request.getMethod() != "GET") {
      ex.response.set("Allow", "GET");
      throw RegistryError(ErrorCode::MethodNotAllowed, ex.request.getMethod() + " is not supported here");
    }
    const Digest digest = parse_digest(ex.path.substr(kFills.size()));
    const std::string ns = namespace_param(ex.query);
    auto found = cache.peer_blob(ns, digest);
    ex.response.set("Docker-Content-Digest", digest.str());
    if (found.fill) {
      ex.cache_status = "fill";
      serve_fill(ex, std::move(found.fill));
    } else if (found.reader) {
      ex.cache_status = "stored";
      serve_stored(ex, *found.reader);
    } else {
      throw RegistryError(ErrorCode::BlobUnknown, "no fill of " + digest.str() + " here");
    }
  } catch (const RegistryError& e) {
    if (ex.head_sent)
      abort_connection(ex);  // headers are out: a short body must not look complete
    else
      send_error(ex, e);
  }
  return true;
}

}  // namespace regcache::proxy
