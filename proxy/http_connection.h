#pragma once
// One client connection of the HTTP engine, and the Poco request/response
// objects handlers see (our own subclasses of Poco's abstract
// HTTPServerRequest/HTTPServerResponse, so Exchange and every handler work
// unchanged).
//
// Ownership: a Connection belongs to exactly one thread at a time — the event
// loop while it waits for a request head (proxy/reactor.h), then one worker
// while a request is served (serve_requests()), then the loop again. The
// socket is non-blocking throughout; workers wait with poll() and deadlines.
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SocketAddress.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "proxy/http_parser.h"

using SSL = struct ssl_st;

namespace regcache::proxy::http {

using Clock = std::chrono::steady_clock;

struct EngineLimits {
  HeadLimits head;
  std::chrono::milliseconds client_timeout{60'000};      // longest wait for one read or write of a request's exchange
  std::chrono::milliseconds keep_alive_timeout{15'000};  // idle between requests
  std::chrono::milliseconds header_timeout{20'000};      // a whole request head, from its first byte
  std::uint64_t min_body_rate = 1024;                    // bytes/s a body must average after the grace; 0: off
  std::chrono::milliseconds body_rate_grace{10'000};
  std::uint64_t drain_limit = 64 << 10;                  // unread body bytes drained to keep a connection
  std::chrono::milliseconds drain_timeout{2'000};
  std::chrono::milliseconds linger_timeout{2'000};       // reading and dropping after our side closed
  // After a keep-alive response, how long a worker waits for the client's
  // next request itself (when a worker is free for others) before handing the
  // connection back to the loop; 0: never. See serve_requests().
  std::chrono::microseconds next_request_wait{1'000};
  std::string server_header;                             // "regcache/x.y.z"
};

// What a worker does with a connection once serve_requests() returns.
enum class After {
  Park,    // keep-alive: back to the event loop to wait for the next head
  Linger,  // closed for writing: the loop reads and drops until EOF or its deadline
  Close,   // broken: close now
  Send,    // the rest of a file body is queued (Connection::pending): the loop
           // sends it as the socket drains, then does pending->then
};

// The rest of a response body that is a file range, handed from a worker to
// the event loop when the client reads slower than we send (so a slow reader
// holds a descriptor and a little memory, not a thread).
struct PendingSend {
  PendingSend() = default;
  PendingSend(const PendingSend&) = delete;
  PendingSend& operator=(const PendingSend&) = delete;
  ~PendingSend();

  int file = -1;               // our own dup(2) of the blob file: the handler closes its own
  std::uint64_t offset = 0;    // next file byte not yet read
  std::uint64_t count = 0;     // file bytes not yet read
  std::string tls_bytes;       // TLS in user space: bytes read from the file that SSL_write has not taken
  std::size_t tls_pos = 0;     //   (a retry after WANT_WRITE must offer the same bytes)
  std::uint64_t total = 0;     // what was queued, for the log
  std::uint64_t sent = 0;      // what the loop has sent of it
  bool corked = false;         // TCP_CORK was set by the worker: uncork when done
  After then = After::Park;    // once sent
  std::atomic<std::size_t>* counter = nullptr;  // the engine's count of these, held while this lives
  // Called once, on the loop thread, when the body is all out or the
  // connection ends first: the bytes of `total` never sent (0: complete).
  std::function<void(std::uint64_t unsent)> on_done;
  void finish() {
    if (on_done) std::exchange(on_done, nullptr)(total - sent);
  }
};

class Connection {
 public:
  // Takes ownership of `fd` (non-blocking) and of `ssl` (nullptr: plain).
  Connection(int fd, SSL* ssl, const sockaddr* peer, unsigned peer_len, std::atomic<std::size_t>* open_count);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  struct Io {
    enum Kind { Data, WantRead, WantWrite, Eof, Error } kind;
    std::size_t n = 0;
  };
  // One non-blocking attempt.
  Io read_some(char* buffer, std::size_t size);
  Io write_some(const char* data, std::size_t size);
  // Waits until `deadline` for bytes: returns how many (0 at end of stream).
  // Throws ClientGone on timeout or a broken connection.
  std::size_t read_wait(char* buffer, std::size_t size, Clock::time_point deadline);
  // Writes everything, waiting at most `timeout` for each bit of progress
  // and within the response's pace (pace_responses).
  void write_all(const char* data, std::size_t size, std::chrono::milliseconds timeout);
  // A worker writing a response waits for the client to take bytes; after
  // `grace` of such waiting, one response's waits may add up to at most
  // grace + sent / min_rate (bytes/s), or the client is dropped: a reader that
  // takes a few bytes now and then cannot hold a worker for a whole blob.
  // Time spent waiting for the body's source (a slow upstream) is not
  // counted. 0: only the per-wait timeout.
  void pace_responses(std::uint64_t min_rate, std::chrono::milliseconds grace) {
    pace_rate_ = min_rate;
    pace_grace_ = grace;
  }
  void begin_response() {
    response_sent_ = 0;
    response_waited_ = {};
  }
  // Copies `count` bytes at `offset` of `file` to the client: sendfile(2) with
  // TCP_CORK on plain connections, through the TLS session otherwise. With
  // `may_defer`, the first time the socket would block the rest goes into
  // `pending` (reported through `progress` as if sent) and this returns: the
  // caller must send nothing more on this connection before the loop has
  // sent it (the range completes the response body).
  void send_file(int file, std::uint64_t offset, std::uint64_t count, std::chrono::milliseconds timeout,
                 const std::function<void(std::uint64_t)>& progress, bool may_defer = false);
  // Sends what `pending` holds without blocking: Data when all of it is out
  // (`pending` then still holds `then`), WantRead/WantWrite when the socket
  // would block, Error when the client is gone or the file cannot be read.
  // `n` is the bytes sent by this call.
  Io continue_send();
  // Cuts the connection at once (both directions); the fd stays open until
  // the Connection is destroyed.
  void abort();
  // Our side is done: TLS close_notify, FIN; what the client still sends is
  // read and dropped (lingering close), so it gets our last answer, not a reset.
  void close_write();

  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }
  bool tls() const { return ssl_ != nullptr; }
  const std::string& peer() const { return peer_text_; }
  const Poco::Net::SocketAddress& peer_address() const { return peer_; }

  std::string in;                 // received and not yet consumed
  bool handshake_done = false;    // TLS
  bool ktls_send = false;         // TLS records are written by the kernel: SSL_sendfile works
  std::uint64_t requests = 0;     // served so far
  bool broken = false;            // an I/O error or abort: never reuse
  std::unique_ptr<PendingSend> pending;  // a file body's rest, for the loop (After::Send)
  std::atomic<std::size_t>* sending_count = nullptr;  // counts live `pending`s (graceful shutdown waits for them)

 private:
  // Waits for the client to be ready for `events`, at most `timeout` and
  // within the response's pace; counts the time waited.
  bool wait_for_client(short events, std::chrono::milliseconds timeout);
  std::uint64_t pace_rate_ = 0;
  std::chrono::milliseconds pace_grace_{0};
  std::uint64_t response_sent_ = 0;
  Clock::duration response_waited_{};
  int fd_;
  SSL* ssl_;
  Poco::Net::SocketAddress peer_;
  std::string peer_text_;
  std::atomic<std::size_t>* open_count_;
};

using Handler = std::function<void(Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse&)>;

struct ServeContext {
  const EngineLimits& limits;
  const Handler& handler;
  const std::atomic<bool>& stopping;
  const Poco::Net::HTTPServerParams& params;
  const Poco::Net::SocketAddress& server_address;
  // True when a worker may wait briefly for a keep-alive client's next
  // request (another worker is free for queued work); empty: never wait.
  std::function<bool()> may_wait_for_next = {};
};

// Serves the complete request head at the start of `c.in`, then every further
// complete (pipelined) head already buffered. A body the handler left unread
// is drained when small or the connection is closed: body bytes are never
// parsed as a request. After a keep-alive response with nothing buffered, it
// waits up to `limits.next_request_wait` for the next request if
// `may_wait_for_next()` holds then: a busy client's next request is then served by
// the same worker, without the hand-off to the loop and back (two epoll_ctl,
// a wake-up and two context switches per request).
After serve_requests(Connection& c, const ServeContext& ctx);

// The 400 (or 505) for a refused head, logged with the reason. One attempt to
// write when `blocking` is false (the event loop), else with the client timeout.
void refuse_head(Connection& c, const HeadParse& verdict, const EngineLimits& limits, bool blocking);

// Exchange's access to the connection behind a request served by this engine.
void send_file_to_client(Poco::Net::HTTPServerRequest& request, int file, std::uint64_t offset, std::uint64_t count,
                         std::uint64_t& body_bytes);
// Like send_file_to_client, for bytes in memory (a pass-through from the upstream).
void send_bytes_to_client(Poco::Net::HTTPServerRequest& request, const char* data, std::size_t count,
                          std::uint64_t& body_bytes);
void abort_client(Poco::Net::HTTPServerRequest& request);
// When the end of this request's body was handed to the event loop (a slow
// reader), keeps `done` to be called there once the body is out or the
// connection ended (with the bytes never sent) and returns true; false when
// the response is complete already (`done` is not kept).
bool when_body_sent(Poco::Net::HTTPServerRequest& request, std::function<void(std::uint64_t unsent)> done);

}  // namespace regcache::proxy::http
