#pragma once
// A client for one remote registry (the OCI distribution API's pull side).
//
// Promises:
// - HTTP and HTTPS (system CA bundle, or `ca_file`; `insecure_skip_tls_verify`).
// - Keep-alive: connections are pooled per host and reused; at most
//   `max_connections` are open to the upstream at once (callers wait for one).
// - Auth is transparent: a 401 with `WWW-Authenticate: Bearer realm,service,scope`
//   fetches a token (anonymous, or with username/password as Basic auth on the
//   token request), caches it per scope until it expires, and retries once; a
//   `Basic` challenge is answered with the configured credentials. Once the
//   upstream's scheme is known, later requests send credentials up front
//   (fetching a token for a new scope first) instead of collecting a 401 each.
// - Redirects (301/302/303/307/308) are followed, at most 5, and only to
//   http(s) URLs; a Location is resolved as an RFC 3986 reference ("//host/x"
//   names another host). Credentials are only ever sent to the upstream's own
//   endpoint, never to a redirect target.
// - Redirect targets and token realms are connected to only at addresses the
//   trust rules of trust.h allow (checked on the resolved address, and that
//   very address is the one connected to); a refusal is a TransportError
//   saying why, logged as a warning.
// - The configured username/password go to a token realm only when
//   realm_credentials_refusal() (trust.h) allows it; otherwise the token is
//   requested anonymously.
// - Connections: blob GETs may hold at most max_connections minus a small
//   reserve (reserved_connections()), so manifest, tag and list requests never
//   wait behind blob transfers; blob requests beyond that wait in a FIFO queue
//   for up to blob_queue_timeout, other requests for up to connect_timeout.
// - For Docker Hub (`library_prefix`), single-component names get "library/".
// - Transport failures (refused, reset, timeout, TLS, malformed HTTP) throw
//   TransportError; every HTTP status, including 4xx/5xx, is returned.
// - Credentials never appear in logs or exception messages.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace regcache::upstream {

struct UpstreamConfig {
  std::string name;  // e.g. "docker.io"; also the cache namespace
  std::string url;   // e.g. "https://registry-1.docker.io" (scheme, host, optional port; no path)
  std::string username;
  std::string password;
  std::string ca_file;  // PEM bundle to trust instead of the system one; empty = system
  bool insecure_skip_tls_verify = false;
  bool library_prefix = false;  // Docker Hub: "busybox" -> "library/busybox"
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds read_timeout{30'000};  // idle time allowed between bytes
  std::size_t max_connections = 32;
  // Blob GETs wait this long for a connection when max_connections are busy.
  std::chrono::milliseconds blob_queue_timeout{600'000};
  // Trust rules (trust.h). CIDRs (or bare addresses) that count as internal
  // besides the built-in classes; ones redirects and token realms may go to
  // although internal; token realm hosts that may receive the credentials
  // besides the upstream's own domain.
  std::vector<std::string> internal_networks;
  std::vector<std::string> allowed_networks;
  std::vector<std::string> token_realm_hosts;
};

class TransportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A TransportError because connecting or awaiting bytes took longer than
// connect_timeout / read_timeout (counted apart in the upstream metrics).
class TimeoutError : public TransportError {
 public:
  using TransportError::TransportError;
};

class ExchangeObserver;

struct Response {
  int status = 0;
  std::string content_type;
  std::string docker_content_digest;  // empty when the upstream sent none
  std::optional<std::uint64_t> content_length;
  std::string retry_after;  // verbatim, empty when absent
  std::string link;             // Link header verbatim (paging of tag lists and referrers), empty when absent
  std::string filters_applied;  // OCI-Filters-Applied verbatim, empty when absent
  std::string content_range;    // Content-Range verbatim (a 206), empty when absent
};

struct BufferedResponse : Response {
  std::string body;
};

// An upstream response whose body has not been read yet. Destroying it before
// the body is fully read closes the connection (it is not returned to the pool).
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  virtual const Response& response() const = 0;
  // Reads up to `n` bytes of the body; returns 0 at its end. Throws
  // TransportError on a reset, a timeout or a body shorter than Content-Length.
  virtual std::size_t read(char* buf, std::size_t n) = 0;
  // True when read() has bytes (or the end) to give without blocking, or gets
  // them within `wait`; false when the upstream stays silent that long. A
  // caller holding bytes back uses it to hand them on before it blocks.
  virtual bool readable_within(std::chrono::milliseconds wait) = 0;
};

class Client {
 public:
  virtual ~Client() = default;
  virtual const UpstreamConfig& config() const = 0;

  // HEAD /v2/<repo>/manifests/<reference>, sending every value of `accept` as its own Accept line.
  virtual Response head_manifest(const std::string& repo, const std::string& reference,
                                 const std::vector<std::string>& accept) = 0;
  // GET of the same. A body longer than `max_bytes` throws TransportError.
  virtual BufferedResponse get_manifest(const std::string& repo, const std::string& reference,
                                        const std::vector<std::string>& accept, std::size_t max_bytes) = 0;
  // GET /v2/<repo>/blobs/<digest>, following redirects; the body is left unread.
  virtual std::unique_ptr<BodyStream> get_blob(const std::string& repo, const std::string& digest) = 0;
  // The same with "Range: bytes=<first>-" (sent on every hop, redirects too).
  // The upstream may ignore it: the caller checks for a 206 whose Content-Range
  // is what it asked for, or a 200 with the whole blob. The default asks for
  // the whole blob.
  virtual std::unique_ptr<BodyStream> get_blob_from(const std::string& repo, const std::string& digest,
                                                    std::uint64_t first) {
    (void)first;
    return get_blob(repo, digest);
  }
  // HEAD /v2/<repo>/blobs/<digest>, following redirects like get_blob (and
  // under the same trust rules); never transfers the blob.
  virtual Response head_blob(const std::string& repo, const std::string& digest) = 0;
  // GET /v2/<repo>/tags/list[?query]; `query` is passed verbatim without '?' (may be empty).
  virtual BufferedResponse get_tags(const std::string& repo, const std::string& query, std::size_t max_bytes) = 0;
  // GET /v2/<repo>/referrers/<digest>[?query] (OCI distribution v1.1).
  virtual BufferedResponse get_referrers(const std::string& repo, const std::string& digest, const std::string& query,
                                         std::size_t max_bytes) = 0;
};

// `observer` (may be null; must outlive the client) hears of every exchange
// with the upstream (observer.h).
std::unique_ptr<Client> make_client(UpstreamConfig config, ExchangeObserver* observer = nullptr);

}  // namespace regcache::upstream
