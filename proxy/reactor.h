#pragma once
// The HTTP engine: one epoll event loop owns every connection that waits —
// for its first bytes, for the rest of a request head, between keep-alive
// requests, in a lingering close — in a small per-connection buffer, and hands
// a connection to a bounded pool of workers only once a complete request head
// is in (nginx's shape). An idle or slowloris connection costs a file
// descriptor and a few KiB, never a thread. See proxy/HTTP_ENGINE.md.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proxy/http_connection.h"

using SSL_CTX = struct ssl_ctx_st;

namespace regcache::proxy::http {

struct EngineOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  unsigned max_connections = 10000;  // open client connections; more are closed at accept
  unsigned workers = 64;             // threads running handlers
  std::string tls_cert, tls_key;     // both set: the listener speaks TLS
  EngineLimits limits;
  // Called by the event loop itself about every 250 ms, however busy or idle
  // (the systemd watchdog's heartbeat: a wedged loop stops calling it). Must
  // be quick and must not throw. Empty: nothing.
  std::function<void()> on_tick;
};

class HttpEngine {
 public:
  // Binds the listening socket (throws std::runtime_error naming the address)
  // and, for TLS, loads the certificate and key.
  HttpEngine(EngineOptions options, Handler handler);
  ~HttpEngine();  // stops and joins every thread; closes every connection
  HttpEngine(const HttpEngine&) = delete;
  HttpEngine& operator=(const HttpEngine&) = delete;

  void start();
  std::uint16_t port() const { return port_; }
  // Stops accepting and closes every connection that is not being served;
  // connections being served close after their current response.
  void stop_accepting();
  // Cuts every connection still being served.
  void abort_all();

  std::size_t open_connections() const { return open_; }
  // Responses whose file body the loop is still sending (graceful shutdown
  // waits for them as for in-flight requests).
  std::size_t sending() const { return sending_; }

 private:
  enum class Phase { Fresh, Idle, Head, Handshake, Linger, Sending };
  struct Parked {
    std::unique_ptr<Connection> connection;
    Phase phase;
    Clock::time_point deadline;
    std::uint32_t interest;  // EPOLLIN or EPOLLOUT
  };

  void loop();
  void accept_all();
  void on_ready(int fd);
  void on_writable(Parked& p);
  void after_send(Parked& p, bool client_gone);
  void park(std::unique_ptr<Connection> c, Phase phase, Clock::time_point deadline);
  void set_interest(Parked& p, std::uint32_t events);
  void close_parked(int fd);
  void dispatch(int fd);
  void sweep();
  void take_returns();
  void work();
  void wake();

  EngineOptions options_;
  Handler handler_;
  SSL_CTX* tls_ = nullptr;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::uint16_t port_ = 0;
  Poco::AutoPtr<Poco::Net::HTTPServerParams> params_;
  Poco::Net::SocketAddress server_address_;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> quit_{false};
  std::atomic<bool> listener_closed_{false};
  std::atomic<std::size_t> open_{0};
  std::atomic<std::size_t> sending_{0};
  std::thread loop_thread_;
  std::vector<std::thread> workers_;

  // The loop's own: parked connections by fd.
  std::unordered_map<int, Parked> parked_;
  bool listening_ = true;

  // Loop -> workers.
  std::mutex work_mutex_;
  std::condition_variable work_ready_;
  std::deque<std::unique_ptr<Connection>> work_;
  std::atomic<unsigned> idle_workers_{0};  // waiting for work (changed under work_mutex_)
  std::atomic<std::size_t> queued_{0};     // work_.size(), readable without the lock

  // Workers -> loop.
  std::mutex return_mutex_;
  std::vector<std::pair<std::unique_ptr<Connection>, After>> returned_;

  // Connections being served, for abort_all().
  std::mutex active_mutex_;
  std::unordered_set<Connection*> active_;
};

}  // namespace regcache::proxy::http
