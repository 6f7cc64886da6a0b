#pragma once
// Pooled HTTP(S) sessions, one pool per (scheme, host, port).
//
// Invariants of a ConnectionPool:
// - At most `max_connections` sessions exist at once, idle and leased together
//   (a hard cap on connections to the endpoint).
// - Blob leases (Priority::Blob: long transfers) hold at most blob_cap() =
//   max_connections - reserved_connections(max_connections) sessions, so the
//   reserve is always there for manifest, tag and list requests
//   (Priority::Metadata).
// - A freed slot goes to waiting metadata requests first, then to waiting blob
//   requests; within each priority strictly first come, first served (a slot
//   is handed to the waiter at the head of the queue, newcomers cannot
//   overtake it).
// - A session is only put back as idle by Lease::release(), which callers use
//   solely after a response was read to its end on a keep-alive connection;
//   every other session is destroyed (socket closed) when its Lease ends.
// - acquire() waits at most `connect_timeout` for a slot for a metadata
//   request and at most `blob_queue_timeout` for a blob request.
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/SocketAddress.h>

#include <chrono>
#include <compare>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace regcache::upstream {

struct Endpoint {
  std::string scheme;  // "http" or "https"
  std::string host;    // lowercased
  std::uint16_t port = 0;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
  // "host:port", for messages.
  std::string label() const { return host + ":" + std::to_string(port); }
};

// An absolute http(s) URL split into where to connect and what to request.
struct Target {
  Endpoint endpoint;
  std::string path_and_query;  // origin-form, bytes kept verbatim (signed URLs stay valid); "/" at least
};
// nullopt unless `url` is an absolute http:// or https:// URL with a host.
std::optional<Target> parse_target(const std::string& url);

// Picks the address a session connects to, given the endpoint and the address
// Poco resolved for it; throws (TransportError) to refuse the connection. Runs
// on every (re)connect, so what is checked is what is connected to.
using AddressChooser =
    std::function<Poco::Net::SocketAddress(const Endpoint& endpoint, const Poco::Net::SocketAddress& proposed)>;

struct SessionSettings {
  Poco::Net::Context::Ptr tls;  // for https endpoints; never null
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds read_timeout{30'000};
  AddressChooser choose_address;  // empty: connect where Poco resolved
  std::chrono::milliseconds blob_queue_timeout{600'000};
};

// What a connection is for: short metadata exchanges, or blob transfers that
// may hold the connection for minutes.
enum class Priority { Metadata, Blob };

// Of `max_connections`, how many blob transfers can never take: max/8,
// at least 1 and at most 4; none when there is only one connection.
std::size_t reserved_connections(std::size_t max_connections);

// Every session open_session() makes also is a SessionBodyReader: it reads
// response bodies straight into the caller's buffer (first what the session
// buffered with the headers, then from the socket, as much as the buffer
// holds), where Poco's body streams read 4 KiB per call.
class SessionBodyReader {
 public:
  // Like recv(2): up to `n` bytes, 0 at the end of the connection. Throws
  // Poco exceptions (timeout, reset) as the session's streams would.
  virtual int read_body(char* buffer, std::streamsize n) = 0;
  // True when read_body() would not block: bytes buffered here or in TLS,
  // or the socket becomes readable within `wait`.
  virtual bool readable_within(std::chrono::milliseconds wait) = 0;

 protected:
  ~SessionBodyReader() = default;
};

// A new, not yet connected keep-alive session with the timeouts applied.
std::unique_ptr<Poco::Net::HTTPClientSession> open_session(const Endpoint& endpoint, const SessionSettings& settings);

class ConnectionPool;

// Exclusive use of one pooled session. Ending a Lease without release()
// closes the session and frees its slot.
class Lease {
 public:
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  ~Lease();

  Poco::Net::HTTPClientSession& session() const { return *session_; }
  // True when the session was idle in the pool: the server may have closed it since.
  bool reused() const { return reused_; }
  // The last response was read to its end: the session goes back to the idle list.
  void release();
  // Replaces a dead session with a new, unconnected one in the same slot.
  void renew();

 private:
  friend class ConnectionPool;
  Lease(std::shared_ptr<ConnectionPool> pool, std::unique_ptr<Poco::Net::HTTPClientSession> session, bool reused,
        Priority priority)
      : pool_(std::move(pool)), session_(std::move(session)), reused_(reused), priority_(priority) {}

  std::shared_ptr<ConnectionPool> pool_;
  std::unique_ptr<Poco::Net::HTTPClientSession> session_;
  bool reused_;
  Priority priority_;
};

class ConnectionPool : public std::enable_shared_from_this<ConnectionPool> {
 public:
  ConnectionPool(Endpoint endpoint, SessionSettings settings, std::size_t max_connections);

  const Endpoint& endpoint() const { return endpoint_; }
  // An idle session (most recently used first) or a new one. Throws
  // TransportError("too many upstream connections ...") after waiting
  // `connect_timeout` (Metadata) or `blob_queue_timeout` (Blob) for a slot.
  Lease acquire(Priority priority = Priority::Metadata);

  std::size_t max_connections() const { return max_connections_; }
  std::size_t blob_cap() const { return blob_cap_; }
  struct Stats {
    std::size_t open = 0;  // idle + leased
    std::size_t idle = 0;
    std::size_t blob_leases = 0;
    std::size_t waiting_metadata = 0;
    std::size_t waiting_blobs = 0;
  };
  Stats stats() const;

 private:
  friend class Lease;
  // One acquire() waiting for a slot; granted (under mu_) by dispatch().
  struct Waiter {
    Priority priority = Priority::Metadata;
    bool granted = false;
    std::unique_ptr<Poco::Net::HTTPClientSession> idle;  // the idle session it was given, if any
    std::condition_variable cv;
  };

  std::unique_ptr<Poco::Net::HTTPClientSession> new_session() const { return open_session(endpoint_, settings_); }
  void put_back(std::unique_ptr<Poco::Net::HTTPClientSession> session, Priority priority);
  void drop(std::unique_ptr<Poco::Net::HTTPClientSession> session, Priority priority);
  // Requires mu_. Whether a request of `priority` could have a slot now.
  bool can_grant(Priority priority) const;
  // Requires mu_. Takes a slot for `waiter`: an idle session or room for a new one.
  void grant(Waiter& waiter);
  // Requires mu_. Hands free slots to the waiters, metadata first, each queue in order.
  void dispatch();
  Lease lease_for(Waiter& waiter, std::unique_lock<std::mutex>& lock);

  const Endpoint endpoint_;
  const SessionSettings settings_;
  const std::size_t max_connections_;
  const std::size_t blob_cap_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Poco::Net::HTTPClientSession>> idle_;  // guarded by mu_
  std::size_t open_ = 0;                                             // idle + leased; guarded by mu_
  std::size_t blob_leases_ = 0;                                      // guarded by mu_
  std::deque<Waiter*> waiting_metadata_;                             // guarded by mu_
  std::deque<Waiter*> waiting_blobs_;                                // guarded by mu_
};

// The pools of one client, created on first use of an endpoint.
class PoolSet {
 public:
  PoolSet(SessionSettings settings, std::size_t max_connections_per_endpoint)
      : settings_(std::move(settings)), max_connections_(max_connections_per_endpoint) {}

  std::shared_ptr<ConnectionPool> pool(const Endpoint& endpoint);

 private:
  const SessionSettings settings_;
  const std::size_t max_connections_;
  std::mutex mu_;
  std::map<Endpoint, std::shared_ptr<ConnectionPool>> pools_;  // guarded by mu_
};

}  // namespace regcache::upstream
