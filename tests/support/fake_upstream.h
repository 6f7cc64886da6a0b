#pragma once
// An in-process fake registry for what a real one will not do on demand: wrong
// bytes for a digest, a connection dropped mid-body, a trickle, error statuses, a
// lying Docker-Content-Digest, and a response held at a gate the test opens.
//
// FakeUpstream is a raw-socket HTTP/1.1 server (keep-alive, one thread per
// connection) on 127.0.0.1, port chosen by the kernel. It serves
//   GET  /v2/                                  200 {}
//   GET|HEAD /v2/<repo>/blobs/<digest>         the blob added with add_blob()
//   GET|HEAD /v2/<repo>/manifests/<tag|digest> the manifest added with add_manifest()
// and an OCI 404 for anything else. How one object is served is a Behavior,
// keyed by request path and switchable at any time; a request takes the
// behaviour in force when its request head arrived.
//
// Every request is counted per (method, path) before it is answered, so a test
// that got a response sees its request counted. The destructor opens every gate
// the fake was given, cuts every connection and joins every thread.
//
// The second half of this header is the client side: RawHttpGet, a GET on its own
// socket that the test reads step by step with timeouts (to see a first byte
// arrive while the upstream is still held), hashing the body as it streams so
// that large bodies are never kept.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/http_client.h"

namespace regcache::test {

// A barrier the test controls: server threads arriving at a closed gate wait
// until the test opens it (or the fake shuts down).
class Gate {
 public:
  explicit Gate(bool open = false) : open_(open) {}
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  void open();
  void close();
  bool is_open() const;
  // Threads waiting at the gate right now, and how many ever arrived while it was closed.
  std::size_t waiting() const;
  std::size_t arrivals() const;
  // Waits up to `timeout` until at least `n` threads wait at the gate.
  bool wait_for_waiting(std::size_t n, std::chrono::milliseconds timeout) const;

  // Server side: returns true once the gate is open, false when cancelled.
  bool pass();
  // Opens for good and makes every later pass() return false at once (shutdown).
  void cancel();

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  bool open_;
  bool cancelled_ = false;
  std::size_t waiting_ = 0;
  std::size_t arrivals_ = 0;
};
using GatePtr = std::shared_ptr<Gate>;

struct Behavior {
  enum class Mode {
    correct,       // the right bytes
    wrong_bytes,   // same length, every byte flipped (the digest no longer matches)
    drop,          // promise the full Content-Length, send `drop_after` body bytes, close
    status,        // answer `status` with an OCI error body (and Retry-After / WWW-Authenticate)
    lying_digest,  // right bytes, but Docker-Content-Digest names other content
  };
  Mode mode = Mode::correct;
  std::uint64_t drop_after = 0;
  int status = 500;
  std::string retry_after;       // sent with `status` when not empty
  std::string www_authenticate;  // sent with `status` when not empty
  std::string location;          // sent with `status` when not empty (a redirect)
  // GETs with "Range: bytes=N-" get a 206 from N on (as from a registry); true: the
  // whole object, 200, as from an upstream that ignores Range.
  bool ignore_range = false;
  // Pacing, for every mode that sends a body: chunks of `chunk_bytes`, and a pause of
  // `chunk_pause` after each chunk but the last (a trickle or a throttle).
  std::size_t chunk_bytes = 256 * 1024;
  std::chrono::milliseconds chunk_pause{0};
  // Held before the status line is sent (e.g. to keep a HEAD in flight).
  GatePtr headers_gate;
  // Held before body byte `body_gate_at` is sent (headers and earlier bytes already went out).
  GatePtr body_gate;
  std::uint64_t body_gate_at = 0;

  static Behavior correct() { return {}; }
  static Behavior wrong_bytes() { return with(Mode::wrong_bytes); }
  static Behavior drop_after_bytes(std::uint64_t n) {
    Behavior b = with(Mode::drop);
    b.drop_after = n;
    return b;
  }
  static Behavior trickle(std::size_t chunk_bytes, std::chrono::milliseconds pause) {
    Behavior b;
    b.chunk_bytes = chunk_bytes;
    b.chunk_pause = pause;
    return b;
  }
  static Behavior answer(int status, std::string retry_after = {}, std::string www_authenticate = {}) {
    Behavior b = with(Mode::status);
    b.status = status;
    b.retry_after = std::move(retry_after);
    b.www_authenticate = std::move(www_authenticate);
    return b;
  }
  static Behavior lying_digest() { return with(Mode::lying_digest); }
  static Behavior redirect(int status, std::string location) {
    Behavior b = with(Mode::status);
    b.status = status;
    b.location = std::move(location);
    return b;
  }

 private:
  static Behavior with(Mode m) {
    Behavior b;
    b.mode = m;
    return b;
  }
};

class FakeUpstream {
 public:
  // Listens on `bind_ip`, a loopback address (127.0.0.2 ... stand for other hosts).
  explicit FakeUpstream(std::string bind_ip = "127.0.0.1");
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  int port() const { return port_; }
  std::string host() const;  // "127.0.0.1:PORT"
  std::string url() const;   // "http://127.0.0.1:PORT"

  // Any document at `path` (GET and HEAD, any query): a token endpoint's JSON,
  // a tag list, a referrers index.
  void add_document(const std::string& path, std::string body, const std::string& content_type = "application/json");

  // Content. Returns the "sha256:..." digest.
  std::string add_blob(const std::string& repo, std::string bytes);
  // Served by digest, and by `tag` too when it is not empty.
  std::string add_manifest(const std::string& repo, const std::string& tag, std::string bytes,
                           const std::string& media_type);
  static std::string blob_path(const std::string& repo, const std::string& digest);
  static std::string manifest_path(const std::string& repo, const std::string& reference);

  // How requests for `path` (no query) are answered from now on.
  void set_behavior(const std::string& path, Behavior behavior);
  void clear_behavior(const std::string& path) { set_behavior(path, Behavior::correct()); }

  // Requests whose head arrived, per method and path (query stripped); "" method = any.
  std::size_t count(const std::string& method, const std::string& path) const;
  std::size_t total_requests() const;
  // TCP connections accepted since start.
  std::size_t connections() const { return connections_.load(); }
  // Body bytes sent for `path`, over all requests. Counted after each send(), so a
  // client may hold bytes a moment before they are counted here.
  std::uint64_t body_bytes_sent(const std::string& path) const;
  // Responses for `path` that sent their whole body (or whole head for HEAD); counted
  // just after the last byte went out.
  std::size_t completed(const std::string& method, const std::string& path) const;
  // "METHOD path" of every request so far, for failure messages.
  std::string request_log() const;
  // The Authorization header of each request for `path` so far, in order ("" when absent).
  std::vector<std::string> authorizations(const std::string& path) const;
  // The Range header of each request for `path` so far, in order ("" when absent).
  std::vector<std::string> ranges(const std::string& path) const;
  // TCP connections open right now, and the most that were ever open at once.
  std::size_t open_connections() const;
  std::size_t max_open_connections() const;
  // Requests being answered right now (head arrived, response not finished), and the most at once.
  std::size_t max_in_flight() const;

 private:
  struct Object {
    std::shared_ptr<const std::string> bytes;
    std::string digest;
    std::string content_type;
  };
  struct Connection {
    int fd = -1;
    std::mutex mutex;
    bool closed = false;
    std::atomic<bool> done{false};
    std::thread thread;
  };

  void accept_loop();
  void serve(Connection& conn);
  // Answers one request; false when the connection must be closed.
  bool respond(Connection& conn, const std::string& method, const std::string& path, const std::string& range);
  // Sends the body from byte `first` on.
  bool send_body(Connection& conn, const std::string& path, const Object& object, const Behavior& b,
                 std::uint64_t first = 0);
  bool pause(std::chrono::milliseconds d);
  void close_connection(Connection& conn);

  std::string bind_ip_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> connections_{0};
  std::thread acceptor_;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable stop_cv_;
  std::map<std::string, Object> objects_;  // by path
  std::map<std::string, Behavior> behaviors_;
  std::vector<GatePtr> gates_;
  std::map<std::pair<std::string, std::string>, std::size_t> counts_;
  std::map<std::pair<std::string, std::string>, std::size_t> completed_;
  std::map<std::string, std::uint64_t> body_bytes_;
  std::vector<std::string> log_;
  std::map<std::string, std::vector<std::string>> authorizations_;  // by path
  std::map<std::string, std::vector<std::string>> ranges_;          // by path
  std::size_t open_now_ = 0, open_max_ = 0;
  std::size_t in_flight_ = 0, in_flight_max_ = 0;
  std::list<std::unique_ptr<Connection>> conns_;
};

// --- client side -------------------------------------------------------------

// "sha256:<hex>" of a file's bytes, read in pieces.
std::string sha256_file(const std::filesystem::path& path);

// One GET (or HEAD) on its own connection, read under the test's control.
// Never throws for network trouble: failures end up in error().
class RawHttpGet {
 public:
  RawHttpGet(int port, const std::string& target, const HttpHeaders& headers = {}, const std::string& method = "GET");
  ~RawHttpGet();
  RawHttpGet(const RawHttpGet&) = delete;
  RawHttpGet& operator=(const RawHttpGet&) = delete;

  // Reads until the response head is complete. False on timeout, EOF or garbage.
  bool read_head(std::chrono::milliseconds timeout);
  // Reads whatever body bytes arrive within `timeout` (at least one, unless the
  // body ended, the connection broke or the time ran out). Returns the count.
  std::size_t read_some(std::chrono::milliseconds timeout);
  // Reads the rest of the body; each read may wait up to `idle_timeout`.
  // True when the whole framed body arrived.
  bool read_to_end(std::chrono::milliseconds idle_timeout);

  int status() const { return status_; }
  const HttpHeaderMap& headers() const { return headers_; }
  std::string header(const std::string& name) const;
  std::optional<std::uint64_t> content_length() const { return content_length_; }
  std::uint64_t body_bytes() const { return body_bytes_.load(); }
  // The first 64 KiB of the body (error bodies, manifests).
  const std::string& body_prefix() const { return prefix_; }
  bool complete() const { return complete_; }
  const std::string& error() const { return error_; }
  // "sha256:<hex>" of the body bytes read so far.
  std::string body_digest() const;
  // Every body byte read from now on is also added to `*counter` (may be shared).
  void count_into(std::atomic<std::uint64_t>* counter) { counter_ = counter; }

 private:
  bool fill(std::chrono::milliseconds timeout);  // more bytes into buffer_; false on EOF/timeout/error
  void consume_body(const char* data, std::size_t n);

  int fd_ = -1;
  bool head_request_ = false;
  std::string buffer_;  // received, not yet consumed
  bool eof_ = false;
  int status_ = 0;
  HttpHeaderMap headers_;
  std::optional<std::uint64_t> content_length_;
  bool head_done_ = false;
  bool complete_ = false;
  std::atomic<std::uint64_t> body_bytes_{0};
  std::string prefix_;
  std::string error_;
  std::atomic<std::uint64_t>* counter_ = nullptr;
  struct Hasher;
  std::unique_ptr<Hasher> hasher_;
};

// A whole GET read to its end with RawHttpGet.
struct StreamedResponse {
  int status = 0;
  HttpHeaderMap headers;
  std::uint64_t body_bytes = 0;
  std::string body_digest;  // sha256 of what arrived
  std::string body_prefix;
  bool complete = false;
  std::string error;
  std::string header(const std::string& name) const;
  std::string summary() const;
};
// `progress`, when given, is raised as body bytes arrive.
StreamedResponse stream_get(int port, const std::string& target, const HttpHeaders& headers = {},
                            std::chrono::milliseconds idle_timeout = std::chrono::seconds(60),
                            std::atomic<std::uint64_t>* progress = nullptr);

// --- small helpers for tests that inspect regcache's store and answers -------

// Deterministic bytes for blobs (fast; not cryptographic).
std::string pseudo_random_bytes(std::size_t n, std::uint64_t seed);

// The first entry of an OCI error body {"errors":[{"code":..,"message":..}]}.
struct OciError {
  bool valid = false;  // the body was such a JSON document with at least one entry
  std::string code;
  std::string message;
};
OciError first_oci_error(const std::string& body);

// DATA/blobs/sha256/<2 hex>/<64 hex> for "sha256:<64 hex>".
std::filesystem::path stored_blob_path(const std::filesystem::path& data_dir, const std::string& digest);
// Regular files below `dir`, recursively (empty when `dir` does not exist).
std::vector<std::filesystem::path> files_under(const std::filesystem::path& dir);

}  // namespace regcache::test
