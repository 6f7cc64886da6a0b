#include "proxy/http_connection.h"

#include <Poco/DateTimeFormatter.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/Exception.h>
#include <Poco/Timestamp.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <istream>
#include <ostream>
#include <streambuf>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "proxy/exchange.h"

namespace regcache::proxy::http {

// ---------------------------------------------------------------- Connection

Connection::Connection(int fd, SSL* ssl, const sockaddr* peer, unsigned peer_len,
                       std::atomic<std::size_t>* open_count)
    : fd_(fd), ssl_(ssl), open_count_(open_count) {
  try {
    peer_ = Poco::Net::SocketAddress(peer, static_cast<poco_socklen_t>(peer_len));
    peer_text_ = peer_.toString();
  } catch (const Poco::Exception&) {
    peer_text_ = "a client";
  }
  if (open_count_) ++*open_count_;
}

Connection::~Connection() {
  if (ssl_) SSL_free(ssl_);
  ::close(fd_);
  if (open_count_) --*open_count_;
}

Connection::Io Connection::read_some(char* buffer, std::size_t size) {
  if (ssl_) {
    ERR_clear_error();
    int n = SSL_read(ssl_, buffer, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
    if (n > 0) return {Io::Data, static_cast<std::size_t>(n)};
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ) return {Io::WantRead};
    if (err == SSL_ERROR_WANT_WRITE) return {Io::WantWrite};
    if (err == SSL_ERROR_ZERO_RETURN) return {Io::Eof};
    broken = true;
    return {Io::Error};
  }
  for (;;) {
    ssize_t n = ::recv(fd_, buffer, size, 0);
    if (n > 0) return {Io::Data, static_cast<std::size_t>(n)};
    if (n == 0) return {Io::Eof};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {Io::WantRead};
    broken = true;
    return {Io::Error};
  }
}

Connection::Io Connection::write_some(const char* data, std::size_t size) {
  if (ssl_) {
    ERR_clear_error();
    int n = SSL_write(ssl_, data, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
    if (n > 0) {
      response_sent_ += static_cast<std::uint64_t>(n);
      return {Io::Data, static_cast<std::size_t>(n)};
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ) return {Io::WantRead};
    if (err == SSL_ERROR_WANT_WRITE) return {Io::WantWrite};
    broken = true;
    return {Io::Error};
  }
  for (;;) {
    ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
    if (n >= 0) {
      response_sent_ += static_cast<std::uint64_t>(n);
      return {Io::Data, static_cast<std::size_t>(n)};
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {Io::WantWrite};
    broken = true;
    return {Io::Error};
  }
}

namespace {

// Waits for `events` on `fd` until `deadline`; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
    if (r > 0) return true;  // readiness or an error condition: the next call tells which
    if (r < 0 && errno != EINTR) return false;
  }
}

}  // namespace

std::size_t Connection::read_wait(char* buffer, std::size_t size, Clock::time_point deadline) {
  for (;;) {
    Io io = read_some(buffer, size);
    switch (io.kind) {
      case Io::Data:
        return io.n;
      case Io::Eof:
        return 0;
      case Io::Error:
        throw ClientGone("reading from the client failed");
      case Io::WantRead:
      case Io::WantWrite:
        if (!wait_for(fd_, io.kind == Io::WantRead ? POLLIN : POLLOUT, deadline)) {
          broken = true;
          throw ClientGone("client sent nothing in time");
        }
    }
  }
}

void Connection::write_all(const char* data, std::size_t size, std::chrono::milliseconds timeout) {
  while (size > 0) {
    Io io = write_some(data, size);
    switch (io.kind) {
      case Io::Data:
        data += io.n;
        size -= io.n;
        break;
      case Io::Eof:
      case Io::Error:
        broken = true;
        throw ClientGone("sending to client failed");
      case Io::WantRead:
      case Io::WantWrite:
        if (!wait_for_client(io.kind == Io::WantRead ? POLLIN : POLLOUT, timeout)) {
          broken = true;
          throw ClientGone("client stalled while receiving");
        }
    }
  }
}

bool Connection::wait_for_client(short events, std::chrono::milliseconds timeout) {
  const auto now = Clock::now();
  auto deadline = now + timeout;
  if (pace_rate_ > 0) {
    auto allowed = pace_grace_ + std::chrono::milliseconds(
                                     std::min<std::uint64_t>(response_sent_, std::uint64_t{1} << 50) * 1000 / pace_rate_);
    deadline = std::min(deadline, now + (allowed - response_waited_));
  }
  bool ready = wait_for(fd_, events, deadline);
  response_waited_ += Clock::now() - now;
  return ready;
}

PendingSend::~PendingSend() {
  finish();
  if (file >= 0) ::close(file);
  if (counter) --*counter;
}

namespace {

void set_cork(int fd, bool on) {
  int value = on ? 1 : 0;
  ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value);
}

// A stored blob that cannot be read is the operator's business (a failing
// disk, a file cut short behind our back), not the client's: logged at warn
// with the file's path, whereas a client going away stays at debug (issue 15).
// `err` 0: the file ended before the range did.
void warn_blob_read_failed(int file, std::uint64_t offset, int err) {
  char path[512] = "?";
  std::string link = "/proc/self/fd/" + std::to_string(file);
  ssize_t n = ::readlink(link.c_str(), path, sizeof path - 1);
  path[n > 0 ? n : 1] = '\0';
  log::warn(std::string("disk read error on ") + path + " at offset " + std::to_string(offset) + ": " +
            (err ? std::strerror(err) : "the file ended early") + " (the response was cut)");
}

}  // namespace

void Connection::send_file(int file, std::uint64_t offset, std::uint64_t count, std::chrono::milliseconds timeout,
                           const std::function<void(std::uint64_t)>& progress, bool may_defer) {
  // The socket would block: with `may_defer`, the rest goes to the loop.
  // `tls_rest` is what SSL_write still has to take of the current buffer.
  auto defer = [&](std::string_view tls_rest, bool corked) {
    int own = ::fcntl(file, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return false;  // out of descriptors: this worker carries on
    pending = std::make_unique<PendingSend>();
    pending->file = own;
    pending->offset = offset;
    pending->count = count;
    pending->tls_bytes.assign(tls_rest);
    pending->total = count + tls_rest.size();
    pending->corked = corked;
    pending->counter = sending_count;
    if (sending_count) ++*sending_count;
    progress(pending->total);
    return true;
  };
  if (ssl_ && ktls_send) {
    // kTLS: the kernel encrypts; the file's pages go out without a copy to us.
    while (count > 0) {
      std::size_t chunk = count < (std::uint64_t{1} << 30) ? static_cast<std::size_t>(count) : std::size_t{1} << 30;
      ERR_clear_error();
      ossl_ssize_t n = SSL_sendfile(ssl_, file, static_cast<off_t>(offset), chunk, 0);
      if (n > 0) {
        offset += static_cast<std::uint64_t>(n);
        count -= static_cast<std::uint64_t>(n);
        response_sent_ += static_cast<std::uint64_t>(n);
        progress(static_cast<std::uint64_t>(n));
        continue;
      }
      int err = SSL_get_error(ssl_, static_cast<int>(n));
      if (err == SSL_ERROR_WANT_WRITE && may_defer && defer({}, false)) return;
      if ((err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) &&
          wait_for_client(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, timeout))
        continue;
      broken = true;
      throw ClientGone("sending to client failed (kTLS)");
    }
    return;
  }
  if (ssl_) {
    // TLS in user space: the bytes go through the session's encryption.
    std::vector<char> buffer(256 << 10);
    while (count > 0) {
      std::size_t want = count < buffer.size() ? static_cast<std::size_t>(count) : buffer.size();
      ssize_t n = ::pread(file, buffer.data(), want, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        warn_blob_read_failed(file, offset, n < 0 ? errno : 0);
        throw ClientGone("reading the blob file failed");
      }
      offset += static_cast<std::uint64_t>(n);
      count -= static_cast<std::uint64_t>(n);
      std::size_t pos = 0, size = static_cast<std::size_t>(n);
      while (pos < size) {
        Io io = write_some(buffer.data() + pos, size - pos);
        if (io.kind == Io::Data) {
          pos += io.n;
          progress(io.n);
          continue;
        }
        if (io.kind == Io::Eof || io.kind == Io::Error) {
          broken = true;
          throw ClientGone("sending to client failed");
        }
        if (io.kind == Io::WantWrite && may_defer && defer(std::string_view(buffer.data() + pos, size - pos), false))
          return;
        if (!wait_for_client(io.kind == Io::WantRead ? POLLIN : POLLOUT, timeout)) {
          broken = true;
          throw ClientGone("client stalled while receiving");
        }
      }
    }
    return;
  }
  // Corked, the kernel sends only full segments until the range is out
  // (TCP_NODELAY is on, which would push every splice as it comes). A range
  // handed to the loop stays corked until the loop has sent it.
  set_cork(fd_, true);
  struct Uncork {
    int fd;
    bool armed = true;
    ~Uncork() {
      if (armed) set_cork(fd, false);
    }
  } uncork{fd_};
  auto pos = static_cast<off_t>(offset);
  while (count > 0) {
    std::size_t chunk = count < (std::uint64_t{1} << 30) ? static_cast<std::size_t>(count) : std::size_t{1} << 30;
    ssize_t n = ::sendfile(fd_, file, &pos, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      offset = static_cast<std::uint64_t>(pos);
      if (may_defer && defer({}, true)) {
        uncork.armed = false;
        return;
      }
      if (!wait_for_client(POLLOUT, timeout)) {
        broken = true;
        throw ClientGone("client stalled while receiving");
      }
      continue;
    }
    if (n < 0) {
      broken = true;
      // sendfile reports the file's read errors as EIO; the socket's are others (EPIPE, ECONNRESET).
      if (errno == EIO) warn_blob_read_failed(file, static_cast<std::uint64_t>(pos), errno);
      throw ClientGone(std::string("sending to client failed: ") + std::strerror(errno));
    }
    if (n == 0) {  // a verified blob cut short on disk
      warn_blob_read_failed(file, static_cast<std::uint64_t>(pos), 0);
      throw ClientGone("blob file ended early");
    }
    count -= static_cast<std::uint64_t>(n);
    response_sent_ += static_cast<std::uint64_t>(n);
    progress(static_cast<std::uint64_t>(n));
  }
}

Connection::Io Connection::continue_send() {
  PendingSend& p = *pending;
  std::size_t sent = 0;
  auto done = [&](Io::Kind kind) {
    p.sent += sent;
    if (kind == Io::Data && p.corked) set_cork(fd_, false);
    if (kind == Io::Error) broken = true;
    return Io{kind, sent};
  };
  if (ssl_ && ktls_send) {
    while (p.count > 0) {
      std::size_t chunk = p.count < (std::uint64_t{1} << 30) ? static_cast<std::size_t>(p.count) : std::size_t{1} << 30;
      ERR_clear_error();
      ossl_ssize_t n = SSL_sendfile(ssl_, p.file, static_cast<off_t>(p.offset), chunk, 0);
      if (n > 0) {
        p.offset += static_cast<std::uint64_t>(n);
        p.count -= static_cast<std::uint64_t>(n);
        sent += static_cast<std::size_t>(n);
        continue;
      }
      int err = SSL_get_error(ssl_, static_cast<int>(n));
      if (err == SSL_ERROR_WANT_WRITE) return done(Io::WantWrite);
      if (err == SSL_ERROR_WANT_READ) return done(Io::WantRead);
      return done(Io::Error);
    }
    return done(Io::Data);
  }
  if (ssl_) {
    for (;;) {
      if (p.tls_pos == p.tls_bytes.size()) {
        if (p.count == 0) return done(Io::Data);
        // Refilled in 64 KiB steps: a slow TLS reader holds at most that
        // (or the worker's leftover, at most 256 KiB, once).
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(p.count, 64 << 10));
        p.tls_bytes.resize(want);
        ssize_t n;
        do n = ::pread(p.file, p.tls_bytes.data(), want, static_cast<off_t>(p.offset));
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
          warn_blob_read_failed(p.file, p.offset, n < 0 ? errno : 0);
          return done(Io::Error);
        }
        p.tls_bytes.resize(static_cast<std::size_t>(n));
        p.tls_pos = 0;
        p.offset += static_cast<std::uint64_t>(n);
        p.count -= static_cast<std::uint64_t>(n);
      }
      Io io = write_some(p.tls_bytes.data() + p.tls_pos, p.tls_bytes.size() - p.tls_pos);
      if (io.kind != Io::Data) return done(io.kind == Io::Eof ? Io::Error : io.kind);
      p.tls_pos += io.n;
      sent += io.n;
    }
  }
  auto pos = static_cast<off_t>(p.offset);
  while (p.count > 0) {
    std::size_t chunk = p.count < (std::uint64_t{1} << 30) ? static_cast<std::size_t>(p.count) : std::size_t{1} << 30;
    ssize_t n = ::sendfile(fd_, p.file, &pos, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return done(Io::WantWrite);
    if (n == 0 || (n < 0 && errno == EIO)) warn_blob_read_failed(p.file, static_cast<std::uint64_t>(pos), n < 0 ? errno : 0);
    if (n <= 0) return done(Io::Error);  // n == 0: the file ended early
    p.offset = static_cast<std::uint64_t>(pos);
    p.count -= static_cast<std::uint64_t>(n);
    sent += static_cast<std::size_t>(n);
  }
  return done(Io::Data);
}

void Connection::abort() {
  broken = true;
  ::shutdown(fd_, SHUT_RDWR);
}

void Connection::close_write() {
  if (ssl_ && handshake_done && !broken) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // one attempt at close_notify; no waiting for the client's
  }
  ::shutdown(fd_, SHUT_WR);
}

// ------------------------------------------------------ request and response

namespace {

class EngineResponse;

// 64 KiB allocated on first use, not zeroed: most requests have no body and
// most responses go out with sendBuffer(), so neither pays for one.
class LazyBuffer {
 public:
  static constexpr std::size_t kSize = 64 << 10;
  char* data() {
    if (!bytes_) bytes_.reset(new char[kSize]);
    return bytes_.get();
  }
  std::size_t size() const { return kSize; }
  bool allocated() const { return bytes_ != nullptr; }

 private:
  std::unique_ptr<char[]> bytes_;
};

// The request body as the handler reads it: exactly the framed bytes, never
// more. A broken or too slow body throws ClientGone out of the stream (the
// istream has badbit exceptions on), so a truncated body can never look whole.
class BodyBuffer final : public std::streambuf {
 public:
  BodyBuffer(Connection& c, const RequestHead& head, const EngineLimits& limits, std::function<void()> before_first_read)
      : c_(c), limits_(limits), framing_(head.framing), remaining_(head.content_length),
        before_first_read_(std::move(before_first_read)) {}

  bool complete() const { return framing_ == BodyFraming::None || (framing_ == BodyFraming::Length ? remaining_ == 0 : decoder_.done()); }
  bool chunked() const { return framing_ == BodyFraming::Chunked; }
  std::uint64_t remaining() const { return remaining_; }
  bool started() const { return started_; }

  // Reads and drops what is left, within `deadline`. True when the body ended.
  bool drain(Clock::time_point deadline, std::uint64_t limit) {
    std::uint64_t dropped = 0;
    while (!complete() && dropped <= limit) {
      std::size_t n = fill(deadline);
      if (n == 0) return false;
      dropped += n;
    }
    return complete();
  }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (complete()) return traits_type::eof();
    std::size_t n = fill(next_deadline());
    if (n == 0) return traits_type::eof();
    return traits_type::to_int_type(*gptr());
  }

 private:
  // Next chunk of body bytes into the get area; 0 at the body's end.
  std::size_t fill(Clock::time_point deadline) {
    if (!started_) {
      started_ = true;
      started_at_ = Clock::now();
      if (before_first_read_) before_first_read_();
    }
    for (;;) {
      if (complete()) return 0;
      if (framing_ == BodyFraming::Length) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, buffer_.size()));
        std::size_t n;
        if (!c_.in.empty()) {
          n = std::min(want, c_.in.size());
          std::memcpy(buffer_.data(), c_.in.data(), n);
          c_.in.erase(0, n);
        } else {
          n = c_.read_wait(buffer_.data(), want, deadline);
          if (n == 0) {
            c_.broken = true;
            throw ClientGone("client closed the connection mid-body");
          }
        }
        remaining_ -= n;
        received_ += n;
        setg(buffer_.data(), buffer_.data(), buffer_.data() + n);
        return n;
      }
      // Chunked: decode what is buffered, read more when that is not enough.
      if (!c_.in.empty()) {
        auto step = decoder_.decode(c_.in, buffer_.data(), buffer_.size());
        c_.in.erase(0, step.consumed);
        if (decoder_.failed()) {
          c_.broken = true;
          throw ClientGone("malformed chunked body: " + decoder_.error());
        }
        received_ += step.produced;
        if (step.produced > 0) {
          setg(buffer_.data(), buffer_.data(), buffer_.data() + step.produced);
          return step.produced;
        }
        if (decoder_.done()) return 0;
      }
      char raw[16 << 10];
      std::size_t n = c_.read_wait(raw, sizeof raw, deadline);
      if (n == 0) {
        c_.broken = true;
        throw ClientGone("client closed the connection mid-body");
      }
      c_.in.append(raw, n);
    }
  }

  // The client timeout for each read, and a minimum average rate once the
  // grace is over: a body trickled in to hold the connection is dropped.
  Clock::time_point next_deadline() const {
    auto deadline = Clock::now() + limits_.client_timeout;
    if (limits_.min_body_rate > 0 && started_) {
      auto allowed = limits_.body_rate_grace +
                     std::chrono::milliseconds((received_ + 1) * 1000 / limits_.min_body_rate);
      deadline = std::min(deadline, started_at_ + allowed);
    }
    return deadline;
  }

  Connection& c_;
  const EngineLimits& limits_;
  BodyFraming framing_;
  std::uint64_t remaining_;
  ChunkedDecoder decoder_;
  std::function<void()> before_first_read_;
  bool started_ = false;
  Clock::time_point started_at_;
  std::uint64_t received_ = 0;
  LazyBuffer buffer_;
};

// The response body: Content-Length bytes (the surplus is dropped), chunked,
// or up to the connection's close.
class OutputBuffer final : public std::streambuf {
 public:
  enum class Mode { Discard, Length, Chunked, UntilClose };
  OutputBuffer(Connection& c, const EngineLimits& limits) : c_(c), limits_(limits) {}
  void start(Mode mode, std::uint64_t length) {
    mode_ = mode;
    length_ = length;
  }
  // Bytes written directly to the socket (sendfile) count toward the length.
  void count_direct(std::uint64_t n) { written_ += n; }
  // Sends what is buffered; the chunked terminator when `last`.
  void flush_out(bool last) {
    std::size_t n = static_cast<std::size_t>(pptr() - pbase());
    if (mode_ == Mode::Length) n = static_cast<std::size_t>(std::min<std::uint64_t>(n, length_ - std::min(length_, written_)));
    if (mode_ == Mode::Discard) n = 0;
    if (mode_ == Mode::Chunked && n > 0) {
      char size_line[24];
      int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
      c_.write_all(size_line, static_cast<std::size_t>(len), limits_.client_timeout);
    }
    if (n > 0) c_.write_all(pbase(), n, limits_.client_timeout);
    if (mode_ == Mode::Chunked && n > 0) c_.write_all("\r\n", 2, limits_.client_timeout);
    written_ += n;
    if (buffer_.allocated()) setp(buffer_.data(), buffer_.data() + buffer_.size());
    if (last && mode_ == Mode::Chunked) c_.write_all("0\r\n\r\n", 5, limits_.client_timeout);
  }
  bool complete() const { return mode_ != Mode::Length || written_ == length_; }
  // Nothing is buffered and `n` more direct bytes end a Content-Length body.
  bool completed_by(std::uint64_t n) const { return mode_ == Mode::Length && pptr() == pbase() && written_ + n == length_; }
  Mode mode() const { return mode_; }

  // Raw bytes ahead of the body (the header block), through the same buffer.
  void raw(const std::string& bytes) {
    c_.write_all(bytes.data(), bytes.size(), limits_.client_timeout);
  }

 protected:
  int_type overflow(int_type ch) override {
    if (!buffer_.allocated()) setp(buffer_.data(), buffer_.data() + buffer_.size());
    flush_out(false);
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  int sync() override {
    flush_out(false);
    return 0;
  }

 private:
  Connection& c_;
  const EngineLimits& limits_;
  Mode mode_ = Mode::Discard;
  std::uint64_t length_ = 0;
  std::uint64_t written_ = 0;
  LazyBuffer buffer_;
};

class EngineRequest;

class EngineResponse final : public Poco::Net::HTTPServerResponse {
 public:
  EngineResponse(Connection& c, const EngineLimits& limits) : c_(c), limits_(limits), out_(c, limits), stream_(&out_) {
    stream_.exceptions(std::ios::goodbit);
  }

  void bind(EngineRequest* request) { request_ = request; }

  void sendContinue() override {
    if (continue_sent_ || sent_) return;
    continue_sent_ = true;
    c_.write_all("HTTP/1.1 100 Continue\r\n\r\n", 25, limits_.client_timeout);
  }
  std::ostream& send() override;
  void sendFile(const std::string&, const std::string&) override {
    throw Poco::NotImplementedException("sendFile");
  }
  void sendBuffer(const void* data, std::size_t length) override;
  void redirect(const std::string& uri, HTTPStatus status) override {
    setStatusAndReason(status);
    set("Location", uri);
    sendBuffer("", 0);
  }
  void requireAuthentication(const std::string& realm) override {
    setStatusAndReason(HTTP_UNAUTHORIZED);
    set("WWW-Authenticate", "Basic realm=\"" + realm + "\"");
    sendBuffer("", 0);
  }
  bool sent() const override { return sent_; }

  OutputBuffer& out() { return out_; }
  bool continue_sent() const { return continue_sent_; }
  bool keep_alive() const { return keep_alive_; }

 private:
  std::string header_block();

  Connection& c_;
  const EngineLimits& limits_;
  EngineRequest* request_ = nullptr;
  OutputBuffer out_;
  std::ostream stream_;
  bool sent_ = false;
  bool continue_sent_ = false;
  bool keep_alive_ = true;
};

class EngineRequest final : public Poco::Net::HTTPServerRequest {
 public:
  EngineRequest(Connection& c, RequestHead head, EngineResponse& response, const ServeContext& ctx)
      : c_(c), head_(std::move(head)), response_(response), ctx_(ctx),
        body_(c, head_, ctx.limits,
              [this] {
                if (head_.expect_continue) response_.sendContinue();
              }),
        stream_(&body_) {
    setMethod(head_.method);
    setURI(head_.target);
    setVersion(head_.minor_version == 0 ? HTTP_1_0 : HTTP_1_1);
    for (auto& [name, value] : head_.headers) add(name, value);
    stream_.exceptions(std::ios::badbit);
    response.bind(this);
  }

  std::istream& stream() override { return stream_; }
  const Poco::Net::SocketAddress& clientAddress() const override { return c_.peer_address(); }
  const Poco::Net::SocketAddress& serverAddress() const override { return ctx_.server_address; }
  const Poco::Net::HTTPServerParams& serverParams() const override { return ctx_.params; }
  Poco::Net::HTTPServerResponse& response() const override { return response_; }
  bool secure() const override { return c_.tls(); }

  Connection& connection() { return c_; }
  EngineResponse& engine_response() { return response_; }
  const RequestHead& head() const { return head_; }
  BodyBuffer& body() { return body_; }
  bool stopping() const { return ctx_.stopping.load(); }
  const EngineLimits& limits() const { return ctx_.limits; }

 private:
  Connection& c_;
  RequestHead head_;
  EngineResponse& response_;
  const ServeContext& ctx_;
  BodyBuffer body_;
  std::istream stream_;
};

std::string EngineResponse::header_block() {
  // The connection stays open only when nothing of the request can be left
  // behind: its body was read, or it is small enough to drain (and the
  // client was not waiting for a 100 Continue it never got).
  const RequestHead& head = request_->head();
  BodyBuffer& body = request_->body();
  bool drainable = !body.chunked() && body.remaining() <= limits_.drain_limit &&
                   (!head.expect_continue || continue_sent_ || body.complete());
  keep_alive_ = head.keep_alive && !request_->stopping() && (body.complete() || drainable);
  const bool no_body = request_->getMethod() == "HEAD" || getStatus() == HTTP_NO_CONTENT ||
                       getStatus() == HTTP_NOT_MODIFIED || (getStatus() >= 100 && getStatus() < 200);
  if (getChunkedTransferEncoding()) {
    if (head.minor_version == 0) {  // an HTTP/1.0 client cannot read chunks: the body ends at the close
      setChunkedTransferEncoding(false);
      keep_alive_ = false;
      out_.start(no_body ? OutputBuffer::Mode::Discard : OutputBuffer::Mode::UntilClose, 0);
    } else {
      out_.start(no_body ? OutputBuffer::Mode::Discard : OutputBuffer::Mode::Chunked, 0);
    }
  } else if (hasContentLength()) {
    out_.start(no_body ? OutputBuffer::Mode::Discard : OutputBuffer::Mode::Length,
               static_cast<std::uint64_t>(getContentLength64()));
  } else if (no_body) {
    out_.start(OutputBuffer::Mode::Discard, 0);
  } else {
    keep_alive_ = false;
    out_.start(OutputBuffer::Mode::UntilClose, 0);
  }
  if (keep_alive_)
    set("Connection", head.minor_version == 0 ? "Keep-Alive" : "keep-alive");  // Poco's spelling, as before
  else
    set("Connection", "close");

  std::string block = "HTTP/1.1 " + std::to_string(static_cast<int>(getStatus())) + " " + getReason() + "\r\n";
  for (const auto& [name, value] : *this) {
    // Defence in depth against response splitting: every value that reaches
    // here is checked where it enters (upstream media types, tokens, Links),
    // but a CR, LF or NUL that slipped through must never start a header of
    // its own. Such a header is left out and logged.
    if (name.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos ||
        value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      log::warn("response header " + name + " dropped: its value holds CR, LF or NUL");
      continue;
    }
    block += name;
    block += ": ";
    block += value;
    block += "\r\n";
  }
  block += "\r\n";
  return block;
}

std::ostream& EngineResponse::send() {
  if (sent_) throw Poco::IllegalStateException("response already sent");
  sent_ = true;
  out_.raw(header_block());
  return stream_;
}

void EngineResponse::sendBuffer(const void* data, std::size_t length) {
  if (sent_) throw Poco::IllegalStateException("response already sent");
  setContentLength64(static_cast<Poco::Int64>(length));
  setChunkedTransferEncoding(false);
  sent_ = true;
  std::string bytes = header_block();
  if (out_.mode() != OutputBuffer::Mode::Discard) bytes.append(static_cast<const char*>(data), length);
  out_.raw(bytes);
  out_.count_direct(out_.mode() == OutputBuffer::Mode::Discard ? 0 : length);
}

std::string error_json(const std::string& message) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return R"({"errors":[{"code":"UNSUPPORTED","message":")" + escaped + "\"}]}";
}

}  // namespace

void refuse_head(Connection& c, const HeadParse& verdict, const EngineLimits& limits, bool blocking) {
  std::string reason = verdict.status == 505 ? "HTTP Version Not Supported" : "Bad Request";
  std::string body = error_json("bad request: " + verdict.error);
  std::string answer = "HTTP/1.1 " + std::to_string(verdict.status) + " " + reason +
                       "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n" + body;
  // The start of what was sent, so that the operator sees what was refused;
  // the logger escapes control bytes (a hostile target cannot forge a line).
  std::string_view sent(c.in);
  sent = sent.substr(0, std::min<std::size_t>(sent.find('\n'), 200));
  log::info("refused a request from " + c.peer() + ": " + std::to_string(verdict.status) + " " + verdict.error +
            ": " + std::string(sent));
  try {
    if (blocking) {
      c.write_all(answer.data(), answer.size(), limits.client_timeout);
    } else {
      c.write_some(answer.data(), answer.size());  // small: fits the socket buffer of a fresh connection
    }
  } catch (const ClientGone&) {
  }
}

namespace {

// A keep-alive connection between requests, still on its worker: waits, if
// the engine can spare this worker now, up to the budget for the next bytes.
// True when some arrived (appended to c.in). Only at a request boundary
// (nothing buffered), and one read: a client trickling a head goes back to
// the loop, so this never holds a worker for a slow client. One poll for the
// whole budget (no shorter slices: 64 waiting workers re-checking every
// 250 us cost more wake-ups than the hand-off they save).
bool wait_for_next_request(Connection& c, const ServeContext& ctx) {
  const auto budget = ctx.limits.next_request_wait;
  if (budget.count() <= 0 || !ctx.may_wait_for_next || !c.in.empty() || c.broken || ctx.stopping ||
      !ctx.may_wait_for_next())
    return false;
  const auto deadline = Clock::now() + budget;
  for (;;) {
    if (!c.tls() || SSL_pending(c.ssl()) <= 0) {
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      timespec wait{0, static_cast<long>(left.count())};
      pollfd p{c.fd(), POLLIN, 0};
      int ready = ::ppoll(&p, 1, &wait, nullptr);
      if (ready < 0 && errno != EINTR) return false;
      if (ready <= 0) continue;
      if ((p.revents & POLLIN) == 0) return false;  // hang-up or error: the loop closes it
    }
    char buffer[16 << 10];
    Connection::Io io = c.read_some(buffer, sizeof buffer);
    if (io.kind == Connection::Io::Data) {
      c.in.append(buffer, io.n);
      return true;
    }
    if (io.kind != Connection::Io::WantRead) return false;  // EOF, error, renegotiation: the loop decides
  }
}

}  // namespace

After serve_requests(Connection& c, const ServeContext& ctx) {
  for (;;) {
    HeadParse parsed = parse_request_head(c.in, ctx.limits.head);
    if (parsed.state == HeadParse::State::Incomplete) {
      if (ctx.stopping) return After::Linger;
      if (!wait_for_next_request(c, ctx)) return After::Park;
      parsed = parse_request_head(c.in, ctx.limits.head);
      if (parsed.state == HeadParse::State::Incomplete) return After::Park;
    }
    if (parsed.state == HeadParse::State::Invalid) {
      refuse_head(c, parsed, ctx.limits, true);
      c.close_write();
      return c.broken ? After::Close : After::Linger;
    }
    c.in.erase(0, parsed.consumed);
    ++c.requests;

    c.pace_responses(ctx.limits.min_body_rate, ctx.limits.body_rate_grace);
    c.begin_response();
    EngineResponse response(c, ctx.limits);
    response.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
    response.setDate(Poco::Timestamp());
    if (!ctx.limits.server_header.empty()) response.set("Server", ctx.limits.server_header);
    EngineRequest request(c, std::move(parsed.head), response, ctx);
    try {
      ctx.handler(request, response);
      if (!response.sent() && !c.broken) response.sendBuffer("", 0);
      response.out().flush_out(true);
    } catch (const std::exception& e) {
      log::debug(std::string("client connection ended: ") + e.what());
      c.broken = true;
    }
    if (c.broken) return After::Close;
    if (!response.out().complete()) {  // a short body must never look whole
      c.abort();
      return After::Close;
    }
    // With the rest of a file body queued for the loop, what would happen
    // now (a close for writing, the next pipelined request) happens after it.
    auto finish = [&c](After then) {
      if (c.pending) {
        c.pending->then = then;
        return After::Send;
      }
      if (then == After::Linger) c.close_write();
      return then;
    };
    if (!response.keep_alive()) return finish(After::Linger);
    BodyBuffer& body = request.body();
    if (!body.complete()) {
      try {
        bool drained = body.drain(Clock::now() + ctx.limits.drain_timeout, ctx.limits.drain_limit);
        if (!drained) return finish(After::Linger);
      } catch (const std::exception&) {
        return After::Close;
      }
    }
    if (ctx.stopping) return finish(After::Linger);
    if (c.pending) return finish(After::Park);
  }
}

void send_file_to_client(Poco::Net::HTTPServerRequest& request, int file, std::uint64_t offset, std::uint64_t count,
                         std::uint64_t& body_bytes) {
  auto& r = dynamic_cast<EngineRequest&>(request);
  auto& out = r.engine_response().out();
  out.flush_out(false);
  // A range that ends the body may finish in the event loop (a slow reader
  // then holds no worker); one that does not (a blob still being filled is
  // sent piece by piece as it grows) stays with this worker.
  r.connection().send_file(
      file, offset, count, r.limits().client_timeout,
      [&](std::uint64_t n) {
        out.count_direct(n);
        body_bytes += n;
      },
      out.completed_by(count));
}

void send_bytes_to_client(Poco::Net::HTTPServerRequest& request, const char* data, std::size_t count,
                          std::uint64_t& body_bytes) {
  auto& r = dynamic_cast<EngineRequest&>(request);
  auto& out = r.engine_response().out();
  out.flush_out(false);
  r.connection().write_all(data, count, r.limits().client_timeout);
  out.count_direct(count);
  body_bytes += count;
}

void abort_client(Poco::Net::HTTPServerRequest& request) { dynamic_cast<EngineRequest&>(request).connection().abort(); }

bool when_body_sent(Poco::Net::HTTPServerRequest& request, std::function<void(std::uint64_t unsent)> done) {
  Connection& c = dynamic_cast<EngineRequest&>(request).connection();
  if (!c.pending) return false;
  c.pending->on_done = std::move(done);
  return true;
}

}  // namespace regcache::proxy::http
