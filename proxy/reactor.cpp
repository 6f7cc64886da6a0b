#include "proxy/reactor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "common/log.h"
#include "common/thread_name.h"

namespace regcache::proxy::http {
namespace {

std::string ssl_error_text() {
  char text[256] = "unknown error";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, text, sizeof text);
  return text;
}

// The kernel offers TLS offload (kTLS) when the "tls" upper-layer protocol
// is available.
bool kernel_tls_available() {
  std::ifstream in("/proc/sys/net/ipv4/tcp_available_ulp");
  std::string word;
  while (in >> word)
    if (word == "tls") return true;
  return false;
}

SSL_CTX* make_tls_context(const std::string& cert, const std::string& key) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) throw std::runtime_error("cannot create a TLS context: " + ssl_error_text());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    SSL_CTX_free(ctx);
    throw std::runtime_error("cannot load tls_cert '" + cert + "': " + ssl_error_text());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    SSL_CTX_free(ctx);
    throw std::runtime_error("cannot load tls_key '" + key + "': " + ssl_error_text());
  }
  // Writes may be retried from a moved buffer and return partly done.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  // Resumption: a server-side session cache and (OpenSSL's default) tickets.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  static const unsigned char kContext[] = "regcache";
  SSL_CTX_set_session_id_context(ctx, kContext, sizeof kContext - 1);
  SSL_CTX_sess_set_cache_size(ctx, 20000);
  if (kernel_tls_available()) {
    // OpenSSL hands the session keys to the kernel after each handshake when
    // the cipher allows; blob bodies then go out with SSL_sendfile.
    SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    log::info("TLS: the kernel offers kTLS: blob bodies go out with SSL_sendfile where the cipher allows, else SSL_write");
  } else {
    log::info("TLS: no kernel TLS (no 'tls' ULP): blob bodies are encrypted in user space with SSL_write");
  }
  return ctx;
}

int bind_listener(const std::string& host, std::uint16_t port, std::uint16_t& bound_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string where = host + ":" + std::to_string(port);
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    throw std::runtime_error("cannot listen on " + where + ": " + ::gai_strerror(rc));
  std::string failure = "no address";
  int fd = -1;
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      failure = std::strerror(errno);
      continue;
    }
    // SO_REUSEPORT is left off: a second regcache on the same port must fail, not share it.
    int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 4096) != 0) {
      failure = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) throw std::runtime_error("cannot listen on " + where + ": " + failure);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  bound_port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return fd;
}

// Every connection is a file descriptor: raise the soft limit to what
// max_connections needs (plus room for blob files, the database and upstream
// connections), up to the hard limit.
void raise_fd_limit(unsigned max_connections) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  rlim_t need = static_cast<rlim_t>(max_connections) + 2048;
  if (lim.rlim_cur >= need) return;
  rlim_t target = lim.rlim_max == RLIM_INFINITY ? need : std::min(need, lim.rlim_max);
  if (target > lim.rlim_cur) {
    lim.rlim_cur = target;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (target < need)
    log::warn("max_connections " + std::to_string(max_connections) + " needs " + std::to_string(need) +
              " file descriptors; the limit is " + std::to_string(target) + " (raise LimitNOFILE / ulimit -n)");
}

const std::string kTlsOnPlainBody = R"({"errors":[{"code":"UNSUPPORTED","message":"this port speaks plain HTTP, not TLS"}]})";

}  // namespace

HttpEngine::HttpEngine(EngineOptions options, Handler handler) : options_(std::move(options)), handler_(std::move(handler)) {
  raise_fd_limit(options_.max_connections);
  if (!options_.tls_cert.empty()) tls_ = make_tls_context(options_.tls_cert, options_.tls_key);
  try {
    listen_fd_ = bind_listener(options_.host, options_.port, port_);
  } catch (...) {
    if (tls_) SSL_CTX_free(tls_);
    throw;
  }
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.fd = wake_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);

  params_ = new Poco::Net::HTTPServerParams;
  params_->setKeepAlive(true);
  params_->setKeepAliveTimeout(Poco::Timespan(static_cast<long>(options_.limits.keep_alive_timeout.count() / 1000), 0));
  params_->setTimeout(Poco::Timespan(static_cast<long>(options_.limits.client_timeout.count() / 1000), 0));
  params_->setMaxThreads(static_cast<int>(options_.workers));
  params_->setSoftwareVersion(options_.limits.server_header);
  try {
    server_address_ = Poco::Net::SocketAddress(options_.host, port_);
  } catch (const Poco::Exception&) {
  }
}

HttpEngine::~HttpEngine() {
  stopping_ = true;
  abort_all();
  quit_ = true;
  wake();
  if (loop_thread_.joinable()) loop_thread_.join();
  {
    std::lock_guard lock(work_mutex_);
    work_ready_.notify_all();
  }
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  work_.clear();
  queued_ = 0;
  returned_.clear();
  parked_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  ::close(epoll_fd_);
  ::close(wake_fd_);
  if (tls_) SSL_CTX_free(tls_);
}

void HttpEngine::start() {
  loop_thread_ = std::thread([this] { loop(); });
  for (unsigned i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { work(); });
}

void HttpEngine::wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void HttpEngine::stop_accepting() {
  stopping_ = true;
  wake();
  // The loop closes the listener; wait for it so that no connection is
  // accepted once this returns.
  for (int i = 0; i < 2000 && !listener_closed_ && loop_thread_.joinable(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpEngine::abort_all() {
  std::lock_guard lock(active_mutex_);
  for (Connection* c : active_) ::shutdown(c->fd(), SHUT_RDWR);
}

void HttpEngine::loop() {
  name_this_thread("regcache-loop");
  std::vector<epoll_event> events(512);
  auto next_sweep = Clock::now() + std::chrono::milliseconds(250);
  while (!quit_) {
    int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 250);
    for (int i = 0; i < n; ++i) {
      int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == listen_fd_) {
        accept_all();
      } else if (fd == wake_fd_) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof count);
        take_returns();
      } else {
        on_ready(fd);
      }
    }
    if (stopping_ && listening_) {
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
      ::close(listen_fd_);
      listening_ = false;
      listen_fd_ = -1;
      listener_closed_ = true;
      // Waiting connections close now; a response still being sent is in
      // flight and finishes (then closes).
      std::vector<int> waiting;
      for (auto& [fd, p] : parked_)
        if (p.phase != Phase::Sending) waiting.push_back(fd);
      for (int fd : waiting) close_parked(fd);
    }
    if (Clock::now() >= next_sweep) {
      sweep();
      if (options_.on_tick) options_.on_tick();
      next_sweep = Clock::now() + std::chrono::milliseconds(250);
    }
  }
  parked_.clear();
}

void HttpEngine::accept_all() {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: leave the rest in the backlog until the sweep
        // frees some, rather than spin on a listener that stays readable.
        log::warn("accept: out of file descriptors with " + std::to_string(open_.load()) + " connections open");
        epoll_event ev{};
        ev.events = 0;
        ev.data.fd = listen_fd_;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
      }
      return;
    }
    if (open_ >= options_.max_connections) {
      log::debug("max_connections reached: closing a new connection");
      ::close(fd);
      continue;
    }
    int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    SSL* ssl = nullptr;
    if (tls_) {
      ssl = SSL_new(tls_);
      if (!ssl) {
        ::close(fd);
        continue;
      }
      SSL_set_fd(ssl, fd);
      SSL_set_accept_state(ssl);
    }
    auto c = std::make_unique<Connection>(fd, ssl, reinterpret_cast<sockaddr*>(&ss), len, &open_);
    c->sending_count = &sending_;
    park(std::move(c), tls_ ? Phase::Handshake : Phase::Fresh, Clock::now() + options_.limits.header_timeout);
  }
}

void HttpEngine::park(std::unique_ptr<Connection> c, Phase phase, Clock::time_point deadline) {
  int fd = c->fd();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return;  // destroyed: closed
  parked_.emplace(fd, Parked{std::move(c), phase, deadline, EPOLLIN});
}

void HttpEngine::set_interest(Parked& p, std::uint32_t events) {
  if (p.interest == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = p.connection->fd();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, ev.data.fd, &ev);
  p.interest = events;
}

void HttpEngine::close_parked(int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  auto it = parked_.find(fd);
  if (it == parked_.end()) return;
  if (it->second.phase == Phase::Sending) after_send(it->second, true);
  parked_.erase(it);
}

// Bookkeeping when a queued file body ends, sent or not.
void HttpEngine::after_send(Parked& p, bool client_gone) {
  PendingSend& s = *p.connection->pending;
  if (client_gone)
    log::debug("the client " + p.connection->peer() + " took " + std::to_string(s.sent) + " of the last " +
               std::to_string(s.total) + " bytes of a blob body; connection closed");
  s.finish();
}

// A connection whose file body the loop is sending: more of it, and once it
// is all out, what the worker would have done next.
void HttpEngine::on_writable(Parked& p) {
  Connection& c = *p.connection;
  int fd = c.fd();
  auto io = c.continue_send();
  if (io.n > 0) p.deadline = Clock::now() + options_.limits.client_timeout;  // the same rule as a worker's
  if (io.kind == Connection::Io::WantWrite) return set_interest(p, EPOLLOUT);
  if (io.kind == Connection::Io::WantRead) return set_interest(p, EPOLLIN);
  if (io.kind != Connection::Io::Data) return close_parked(fd);
  c.pending->finish();
  After then = c.pending->then;
  c.pending.reset();
  const EngineLimits& limits = options_.limits;
  if (then == After::Linger) {
    c.close_write();
    p.phase = Phase::Linger;
    p.deadline = Clock::now() + limits.linger_timeout;
    return set_interest(p, EPOLLIN);
  }
  if (stopping_) {  // as a worker would: our last answer, then a lingering close
    c.close_write();
    p.phase = Phase::Linger;
    p.deadline = Clock::now() + limits.linger_timeout;
    return set_interest(p, EPOLLIN);
  }
  // Keep-alive: a pipelined head may already be buffered.
  p.phase = c.in.empty() ? Phase::Idle : Phase::Head;
  p.deadline = Clock::now() + (c.in.empty() ? limits.keep_alive_timeout : limits.header_timeout);
  set_interest(p, EPOLLIN);
  on_ready(fd);
}

void HttpEngine::on_ready(int fd) {
  auto it = parked_.find(fd);
  if (it == parked_.end()) return;
  Parked& p = it->second;
  Connection& c = *p.connection;
  const EngineLimits& limits = options_.limits;

  if (p.phase == Phase::Sending) return on_writable(p);
  if (p.phase == Phase::Linger) {  // read and drop until the client closes
    char sink[16 << 10];
    for (int i = 0; i < 64; ++i) {
      ssize_t n = ::recv(fd, sink, sizeof sink, 0);
      if (n > 0) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      break;
    }
    close_parked(fd);
    return;
  }
  if (p.phase == Phase::Handshake) {
    ERR_clear_error();
    int r = SSL_do_handshake(c.ssl());
    if (r != 1) {
      int err = SSL_get_error(c.ssl(), r);
      if (err == SSL_ERROR_WANT_READ) return set_interest(p, EPOLLIN);
      if (err == SSL_ERROR_WANT_WRITE) return set_interest(p, EPOLLOUT);
      log::debug("TLS handshake with " + c.peer() + " failed: " + ssl_error_text());
      return close_parked(fd);
    }
    c.handshake_done = true;
    c.ktls_send = BIO_get_ktls_send(SSL_get_wbio(c.ssl()));
    log::debug("TLS with " + c.peer() + ": " + SSL_get_version(c.ssl()) + " " + SSL_get_cipher_name(c.ssl()) +
               (SSL_session_reused(c.ssl()) ? ", resumed" : "") + (c.ktls_send ? ", kTLS send" : ""));
    p.phase = Phase::Fresh;
    set_interest(p, EPOLLIN);
  }

  const std::size_t cap = limits.head.max_head + 4096;
  bool ended = false;
  while (c.in.size() < cap) {
    char buffer[16 << 10];
    auto io = c.read_some(buffer, std::min(sizeof buffer, cap - c.in.size()));
    if (io.kind == Connection::Io::Data) {
      if (!tls_ && c.requests == 0 && c.in.empty() && static_cast<unsigned char>(buffer[0]) == 0x16) {
        // A TLS ClientHello on the plain port (skopeo and podman try TLS
        // first, then fall back to HTTP when they get an HTTP answer).
        std::string answer = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(kTlsOnPlainBody.size()) + "\r\nConnection: close\r\n\r\n" + kTlsOnPlainBody;
        c.write_some(answer.data(), answer.size());
        log::info("TLS handshake from " + c.peer() + " on the plain-HTTP port: answered 400");
        c.close_write();
        p.phase = Phase::Linger;
        p.deadline = Clock::now() + limits.linger_timeout;
        return;
      }
      c.in.append(buffer, io.n);
      continue;
    }
    if (io.kind == Connection::Io::WantRead) {
      set_interest(p, EPOLLIN);
    } else if (io.kind == Connection::Io::WantWrite) {
      set_interest(p, EPOLLOUT);
    } else {
      ended = true;
    }
    break;
  }
  if (c.in.empty()) {
    if (ended) close_parked(fd);
    return;
  }
  if (p.phase == Phase::Idle) {  // the first byte of the next request: the head deadline starts
    p.phase = Phase::Head;
    p.deadline = Clock::now() + limits.header_timeout;
  }
  HeadParse verdict = parse_request_head(c.in, limits.head);
  if (verdict.state == HeadParse::State::Complete) return dispatch(fd);
  if (verdict.state == HeadParse::State::Invalid) {
    refuse_head(c, verdict, limits, false);
    c.close_write();
    c.in.clear();
    p.phase = Phase::Linger;
    p.deadline = Clock::now() + limits.linger_timeout;
    return;
  }
  if (ended) close_parked(fd);  // the client left with half a head
}

void HttpEngine::dispatch(int fd) {
  auto it = parked_.find(fd);
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  std::unique_ptr<Connection> c = std::move(it->second.connection);
  parked_.erase(it);
  {
    std::lock_guard lock(work_mutex_);
    work_.push_back(std::move(c));
    queued_ = work_.size();
  }
  work_ready_.notify_one();
}

void HttpEngine::sweep() {
  auto now = Clock::now();
  std::vector<int> expired;
  for (auto& [fd, p] : parked_)
    if (p.deadline <= now) expired.push_back(fd);
  for (int fd : expired) {
    Parked& p = parked_.at(fd);
    if (p.phase == Phase::Head || p.phase == Phase::Fresh || p.phase == Phase::Handshake)
      log::debug("closing the connection from " + p.connection->peer() + ": no complete request head in time");
    if (p.phase == Phase::Sending)
      log::debug("closing the connection from " + p.connection->peer() + ": client stalled while receiving");
    close_parked(fd);
  }
  if (listening_ && listen_fd_ >= 0) {  // re-arm a listener paused for lack of descriptors
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
  }
}

void HttpEngine::take_returns() {
  std::vector<std::pair<std::unique_ptr<Connection>, After>> batch;
  {
    std::lock_guard lock(return_mutex_);
    batch.swap(returned_);
  }
  const EngineLimits& limits = options_.limits;
  for (auto& [c, after] : batch) {
    if (after == After::Close || (stopping_ && after == After::Park)) continue;  // destroyed: closed
    int fd = c->fd();
    if (after == After::Send) {
      park(std::move(c), Phase::Sending, Clock::now() + limits.client_timeout);
      if (auto it = parked_.find(fd); it != parked_.end()) set_interest(it->second, EPOLLOUT);  // else closed
      continue;  // sent when the socket drains
    }
    if (after == After::Linger) {
      park(std::move(c), Phase::Linger, Clock::now() + limits.linger_timeout);
    } else if (c->in.empty()) {
      park(std::move(c), Phase::Idle, Clock::now() + limits.keep_alive_timeout);
    } else {
      park(std::move(c), Phase::Head, Clock::now() + limits.header_timeout);
    }
    on_ready(fd);  // bytes (or TLS records) may already be waiting
  }
}

void HttpEngine::work() {
  name_this_thread("regcache-conn");
  ServeContext ctx{options_.limits, handler_, stopping_, *params_, server_address_};
  // A worker waits for a keep-alive client's next request only if another
  // worker is idle and nothing is queued when it starts.
  ctx.may_wait_for_next = [this] {
    return idle_workers_.load(std::memory_order_relaxed) > 0 && queued_.load(std::memory_order_relaxed) == 0;
  };
  for (;;) {
    std::unique_ptr<Connection> c;
    {
      std::unique_lock lock(work_mutex_);
      ++idle_workers_;
      work_ready_.wait(lock, [&] { return quit_ || !work_.empty(); });
      --idle_workers_;
      if (work_.empty()) return;
      c = std::move(work_.front());
      work_.pop_front();
      queued_ = work_.size();
    }
    {
      std::lock_guard lock(active_mutex_);
      active_.insert(c.get());
    }
    After after = After::Close;
    try {
      after = serve_requests(*c, ctx);
    } catch (const std::exception& e) {
      log::debug(std::string("connection ended: ") + e.what());
    }
    {
      std::lock_guard lock(active_mutex_);
      active_.erase(c.get());
    }
    if (after == After::Close || quit_) continue;  // destroyed: closed
    {
      std::lock_guard lock(return_mutex_);
      returned_.emplace_back(std::move(c), after);
    }
    wake();
  }
}

}  // namespace regcache::proxy::http
