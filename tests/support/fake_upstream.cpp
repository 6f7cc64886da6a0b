#include "support/fake_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <Poco/NumberParser.h>
#include <Poco/String.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include <random>

#include "support/files.h"

namespace regcache::test {
namespace {

// Writing to a socket the peer closed must be an error we can handle, not a signal.
const bool sigpipe_ignored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

bool send_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t sent = ::send(fd, data, n, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += sent;
    n -= static_cast<std::size_t>(sent);
  }
  return true;
}

const char* reason_of(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string error_code_for(int status, const std::string& path) {
  switch (status) {
    case 401: return "UNAUTHORIZED";
    case 403: return "DENIED";
    case 404:
      if (path.find("/blobs/") != std::string::npos) return "BLOB_UNKNOWN";
      if (path.find("/manifests/") != std::string::npos) return "MANIFEST_UNKNOWN";
      return "NOT_FOUND";
    case 429: return "TOOMANYREQUESTS";
    default: return "UNKNOWN";
  }
}

std::string hex_of(const unsigned char* md, unsigned len) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += digits[md[i] >> 4];
    out += digits[md[i] & 15];
  }
  return out;
}

}  // namespace

// --- Gate --------------------------------------------------------------------

void Gate::open() {
  {
    std::lock_guard lock(mutex_);
    open_ = true;
  }
  changed_.notify_all();
}

void Gate::close() {
  std::lock_guard lock(mutex_);
  open_ = false;
}

bool Gate::is_open() const {
  std::lock_guard lock(mutex_);
  return open_;
}

std::size_t Gate::waiting() const {
  std::lock_guard lock(mutex_);
  return waiting_;
}

std::size_t Gate::arrivals() const {
  std::lock_guard lock(mutex_);
  return arrivals_;
}

bool Gate::wait_for_waiting(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return waiting_ >= n; });
}

bool Gate::pass() {
  std::unique_lock lock(mutex_);
  if (cancelled_) return false;
  if (open_) return true;
  ++waiting_;
  ++arrivals_;
  changed_.notify_all();
  changed_.wait(lock, [&] { return open_ || cancelled_; });
  --waiting_;
  changed_.notify_all();
  return !cancelled_;
}

void Gate::cancel() {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    open_ = true;
  }
  changed_.notify_all();
}

// --- FakeUpstream ------------------------------------------------------------

FakeUpstream::FakeUpstream(std::string bind_ip) : bind_ip_(std::move(bind_ip)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(errno_text("FakeUpstream: socket"));
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (::inet_pton(AF_INET, bind_ip_.c_str(), &addr.sin_addr) != 1 || (ntohl(addr.sin_addr.s_addr) >> 24) != 127) {
    ::close(listen_fd_);
    throw std::runtime_error("FakeUpstream: " + bind_ip_ + " is not a 127.0.0.0/8 address");
  }
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 512) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string err = errno_text("FakeUpstream: bind/listen");
    ::close(listen_fd_);
    throw std::runtime_error(err);
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

FakeUpstream::~FakeUpstream() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  acceptor_.join();
  ::close(listen_fd_);
  std::list<std::unique_ptr<Connection>> conns;
  {
    std::lock_guard lock(mutex_);
    for (auto& gate : gates_) gate->cancel();
    conns.swap(conns_);
  }
  stop_cv_.notify_all();
  for (auto& conn : conns) {
    std::lock_guard lock(conn->mutex);
    if (!conn->closed) ::shutdown(conn->fd, SHUT_RDWR);  // wakes recv()/send()
  }
  for (auto& conn : conns) conn->thread.join();
}

std::string FakeUpstream::host() const { return bind_ip_ + ":" + std::to_string(port_); }
std::string FakeUpstream::url() const { return "http://" + host(); }

std::string FakeUpstream::blob_path(const std::string& repo, const std::string& digest) {
  return "/v2/" + repo + "/blobs/" + digest;
}

std::string FakeUpstream::manifest_path(const std::string& repo, const std::string& reference) {
  return "/v2/" + repo + "/manifests/" + reference;
}

std::string FakeUpstream::add_blob(const std::string& repo, std::string bytes) {
  std::string digest = sha256_digest(bytes);
  Object object{std::make_shared<const std::string>(std::move(bytes)), digest, "application/octet-stream"};
  std::lock_guard lock(mutex_);
  objects_[blob_path(repo, digest)] = object;
  return digest;
}

std::string FakeUpstream::add_manifest(const std::string& repo, const std::string& tag, std::string bytes,
                                       const std::string& media_type) {
  std::string digest = sha256_digest(bytes);
  Object object{std::make_shared<const std::string>(std::move(bytes)), digest, media_type};
  std::lock_guard lock(mutex_);
  objects_[manifest_path(repo, digest)] = object;
  if (!tag.empty()) objects_[manifest_path(repo, tag)] = object;
  return digest;
}

void FakeUpstream::add_document(const std::string& path, std::string body, const std::string& content_type) {
  std::string digest = sha256_digest(body);
  std::lock_guard lock(mutex_);
  objects_[path] = Object{std::make_shared<const std::string>(std::move(body)), digest, content_type};
}

std::vector<std::string> FakeUpstream::ranges(const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = ranges_.find(path);
  return it == ranges_.end() ? std::vector<std::string>() : it->second;
}

std::vector<std::string> FakeUpstream::authorizations(const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = authorizations_.find(path);
  return it == authorizations_.end() ? std::vector<std::string>() : it->second;
}

std::size_t FakeUpstream::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_now_;
}

std::size_t FakeUpstream::max_open_connections() const {
  std::lock_guard lock(mutex_);
  return open_max_;
}

std::size_t FakeUpstream::max_in_flight() const {
  std::lock_guard lock(mutex_);
  return in_flight_max_;
}

void FakeUpstream::set_behavior(const std::string& path, Behavior behavior) {
  std::lock_guard lock(mutex_);
  for (const GatePtr& gate : {behavior.headers_gate, behavior.body_gate}) {
    if (!gate) continue;
    if (stopping_) gate->cancel();
    gates_.push_back(gate);
  }
  behaviors_[path] = std::move(behavior);
}

std::size_t FakeUpstream::count(const std::string& method, const std::string& path) const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [key, value] : counts_)
    if ((method.empty() || key.first == method) && key.second == path) n += value;
  return n;
}

std::size_t FakeUpstream::total_requests() const {
  std::lock_guard lock(mutex_);
  return log_.size();
}

std::uint64_t FakeUpstream::body_bytes_sent(const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = body_bytes_.find(path);
  return it == body_bytes_.end() ? 0 : it->second;
}

std::size_t FakeUpstream::completed(const std::string& method, const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = completed_.find({method, path});
  return it == completed_.end() ? 0 : it->second;
}

std::string FakeUpstream::request_log() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& line : log_) out += "\n  " + line;
  return out.empty() ? std::string(" (none)") : out;
}

void FakeUpstream::accept_loop() {
  while (!stopping_) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // the listening socket is gone
    }
    ++connections_;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard lock(mutex_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    // Reap connections that ended, so that a long test does not pile up threads.
    for (auto it = conns_.begin(); it != conns_.end();) {
      if ((*it)->done) {
        (*it)->thread.join();
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
    open_max_ = std::max(open_max_, ++open_now_);
    auto conn = std::make_unique<Connection>();
    conn->fd = fd;
    Connection* raw = conn.get();
    conns_.push_back(std::move(conn));
    raw->thread = std::thread([this, raw] {
      serve(*raw);
      close_connection(*raw);
      raw->done = true;
    });
  }
}

void FakeUpstream::close_connection(Connection& conn) {
  {
    std::lock_guard lock(conn.mutex);
    if (conn.closed) return;
    ::shutdown(conn.fd, SHUT_WR);
    ::close(conn.fd);
    conn.closed = true;
  }
  std::lock_guard lock(mutex_);
  --open_now_;
}

void FakeUpstream::serve(Connection& conn) {
  std::string buffer;
  char chunk[16384];
  while (!stopping_) {
    std::size_t end;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(conn.fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      buffer.append(chunk, static_cast<std::size_t>(n));
      if (buffer.size() > (1 << 20)) return;  // no sane request head is this long
    }
    std::string head = buffer.substr(0, end + 2);
    buffer.erase(0, end + 4);

    std::istringstream lines(head);
    std::string request_line;
    std::getline(lines, request_line);
    std::istringstream parts(request_line);
    std::string method, target, version;
    if (!(parts >> method >> target >> version)) return;
    bool close_after = false;
    std::uint64_t request_body = 0;
    std::string authorization, range;
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = Poco::trim(line.substr(0, colon)), value = Poco::trim(line.substr(colon + 1));
      if (Poco::icompare(name, "Connection") == 0 && Poco::icompare(value, "close") == 0) close_after = true;
      if (Poco::icompare(name, "Content-Length") == 0) Poco::NumberParser::tryParseUnsigned64(value, request_body);
      if (Poco::icompare(name, "Authorization") == 0) authorization = value;
      if (Poco::icompare(name, "Range") == 0) range = value;
    }
    // Requests to a registry's pull side have no body; skip one if sent anyway.
    while (buffer.size() < request_body) {
      ssize_t n = ::recv(conn.fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
    buffer.erase(0, static_cast<std::size_t>(request_body));

    std::string path = target.substr(0, target.find('?'));
    {
      std::lock_guard lock(mutex_);
      authorizations_[path].push_back(authorization);
      ranges_[path].push_back(range);
      in_flight_max_ = std::max(in_flight_max_, ++in_flight_);
    }
    bool keep = respond(conn, method, path, range);
    {
      std::lock_guard lock(mutex_);
      --in_flight_;
    }
    if (!keep || close_after) return;
  }
}

bool FakeUpstream::respond(Connection& conn, const std::string& method, const std::string& path,
                           const std::string& range) {
  Behavior b;
  std::optional<Object> object;
  {
    std::lock_guard lock(mutex_);
    ++counts_[{method, path}];
    log_.push_back(method + " " + path);
    if (auto it = behaviors_.find(path); it != behaviors_.end()) b = it->second;
    if (auto it = objects_.find(path); it != objects_.end()) object = it->second;
  }
  auto done = [&] {
    std::lock_guard lock(mutex_);
    ++completed_[{method, path}];
  };
  if (b.headers_gate && !b.headers_gate->pass()) return false;
  const bool head = method == "HEAD";

  auto send_simple = [&](int status, const std::string& content_type, const std::string& body,
                         const std::string& extra_headers) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_of(status) + "\r\n" +
                      "Content-Type: " + content_type + "\r\n" + "Content-Length: " + std::to_string(body.size()) +
                      "\r\n" + "Docker-Distribution-API-Version: registry/2.0\r\n" + extra_headers + "\r\n";
    if (!head) out += body;
    bool ok = send_all(conn.fd, out.data(), out.size());
    if (ok) done();
    return ok;
  };
  auto send_error = [&](int status, const std::string& extra_headers) {
    std::string body = R"({"errors":[{"code":")" + error_code_for(status, path) +
                       R"(","message":"fake upstream answers )" + std::to_string(status) + R"("}]})";
    return send_simple(status, "application/json", body, extra_headers);
  };

  if (b.mode == Behavior::Mode::status) {
    std::string extra;
    if (!b.retry_after.empty()) extra += "Retry-After: " + b.retry_after + "\r\n";
    if (!b.www_authenticate.empty()) extra += "WWW-Authenticate: " + b.www_authenticate + "\r\n";
    if (!b.location.empty()) extra += "Location: " + b.location + "\r\n";
    return send_error(b.status, extra);
  }
  if (path == "/v2/" || path == "/v2") return send_simple(200, "application/json", "{}", "");
  if (b.mode == Behavior::Mode::drop && head) return false;
  if (!object || (method != "GET" && !head)) return send_error(404, "");

  std::string digest = object->digest;
  if (b.mode == Behavior::Mode::lying_digest) digest = sha256_digest(*object->bytes + "\nlie");
  // "Range: bytes=FIRST-" on a GET, as a registry serving blobs from a file
  // answers it (206 from FIRST to the end); anything else gets the whole object.
  const std::uint64_t size = object->bytes->size();
  std::uint64_t first = 0;
  const bool ranged = !head && !b.ignore_range && range.size() > 7 && range.rfind("bytes=", 0) == 0 &&
                      range.back() == '-' &&
                      Poco::NumberParser::tryParseUnsigned64(range.substr(6, range.size() - 7), first) && first < size;
  if (!ranged) first = 0;
  std::string status_line = first > 0 ? "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " +
                                            std::to_string(first) + "-" + std::to_string(size - 1) + "/" +
                                            std::to_string(size) + "\r\n"
                                      : "HTTP/1.1 200 OK\r\n";
  std::string out = status_line + "Content-Type: " + object->content_type + "\r\n" +
                    "Content-Length: " + std::to_string(size - first) + "\r\n" +
                    "Docker-Content-Digest: " + digest + "\r\n" +
                    "Docker-Distribution-API-Version: registry/2.0\r\n\r\n";
  if (!send_all(conn.fd, out.data(), out.size())) return false;
  if (head) {
    done();
    return true;
  }
  if (!send_body(conn, path, *object, b, first)) return false;
  if (b.mode == Behavior::Mode::drop) return false;  // the promised length was not sent: close
  done();
  return true;
}

bool FakeUpstream::send_body(Connection& conn, const std::string& path, const Object& object, const Behavior& b,
                             std::uint64_t first) {
  const std::string& bytes = *object.bytes;
  const std::uint64_t size = bytes.size();
  const std::uint64_t limit = b.mode == Behavior::Mode::drop ? std::min<std::uint64_t>(b.drop_after, size) : size;
  const std::uint64_t chunk = std::max<std::size_t>(1, b.chunk_bytes);
  bool gate_passed = !b.body_gate || b.body_gate_at >= limit;
  std::string flipped;
  std::uint64_t off = first;
  while (off < limit) {
    if (!gate_passed && off >= b.body_gate_at) {
      if (!b.body_gate->pass()) return false;
      gate_passed = true;
    }
    std::uint64_t end = std::min(limit, off + chunk);
    if (!gate_passed && b.body_gate_at > off && b.body_gate_at < end) end = b.body_gate_at;
    const char* data = bytes.data() + off;
    const auto n = static_cast<std::size_t>(end - off);
    if (b.mode == Behavior::Mode::wrong_bytes) {
      flipped.assign(data, n);
      for (char& c : flipped) c = static_cast<char>(~c);
      data = flipped.data();
    }
    if (!send_all(conn.fd, data, n)) return false;
    {
      std::lock_guard lock(mutex_);
      body_bytes_[path] += n;
    }
    off = end;
    if (b.chunk_pause.count() > 0 && off < limit && !pause(b.chunk_pause)) return false;
  }
  return true;
}

bool FakeUpstream::pause(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  stop_cv_.wait_for(lock, d, [&] { return stopping_.load(); });
  return !stopping_;
}

// --- client side ---------------------------------------------------------------

struct RawHttpGet::Hasher {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Hasher() {
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) throw std::runtime_error("EVP sha256 init");
  }
  ~Hasher() { EVP_MD_CTX_free(ctx); }
  void update(const char* data, std::size_t n) { EVP_DigestUpdate(ctx, data, n); }
  std::string digest() const {
    EVP_MD_CTX* copy = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_MD_CTX_copy_ex(copy, ctx);
    EVP_DigestFinal_ex(copy, md, &len);
    EVP_MD_CTX_free(copy);
    return "sha256:" + hex_of(md, len);
  }
};

std::string sha256_file(const std::filesystem::path& path) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buffer(1 << 20);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0)
    EVP_DigestUpdate(ctx, buffer.data(), static_cast<std::size_t>(in.gcount()));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return "sha256:" + hex_of(md, len);
}

RawHttpGet::RawHttpGet(int port, const std::string& target, const HttpHeaders& headers, const std::string& method)
    : head_request_(method == "HEAD"), hasher_(std::make_unique<Hasher>()) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error_ = errno_text("socket");
    return;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  int rc;
  do {
    rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    error_ = errno_text("connect");
    ::close(fd_);
    fd_ = -1;
    return;
  }
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nConnection: close\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  request += "\r\n";
  if (!send_all(fd_, request.data(), request.size())) {
    error_ = errno_text("send request");
    ::close(fd_);
    fd_ = -1;
  }
}

RawHttpGet::~RawHttpGet() {
  if (fd_ >= 0) ::close(fd_);
}

std::string RawHttpGet::header(const std::string& name) const {
  auto it = headers_.find(name);
  return it == headers_.end() ? std::string() : it->second;
}

std::string RawHttpGet::body_digest() const { return hasher_->digest(); }

bool RawHttpGet::fill(std::chrono::milliseconds timeout) {
  if (fd_ < 0 || eof_) return false;
  pollfd p{fd_, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    error_ = "timed out after " + std::to_string(timeout.count()) + " ms waiting for data";
    return false;
  }
  char chunk[256 * 1024];
  ssize_t n;
  do {
    n = ::recv(fd_, chunk, sizeof chunk, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    error_ = errno_text("recv");
    eof_ = true;
    return false;
  }
  if (n == 0) {
    eof_ = true;
    return false;
  }
  buffer_.append(chunk, static_cast<std::size_t>(n));
  error_.clear();  // an earlier timeout is history once data arrives
  return true;
}

void RawHttpGet::consume_body(const char* data, std::size_t n) {
  if (content_length_) n = static_cast<std::size_t>(std::min<std::uint64_t>(n, *content_length_ - body_bytes_));
  if (n == 0) return;
  hasher_->update(data, n);
  if (prefix_.size() < 65536) prefix_.append(data, std::min<std::size_t>(n, 65536 - prefix_.size()));
  body_bytes_ += n;
  if (counter_) *counter_ += n;
  if (content_length_ && body_bytes_ == *content_length_) complete_ = true;
}

bool RawHttpGet::read_head(std::chrono::milliseconds timeout) {
  if (head_done_) return true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !fill(std::max(left, std::chrono::milliseconds(1)))) {
      if (error_.empty()) error_ = eof_ ? "connection closed before the response head" : "timed out reading the head";
      return false;
    }
  }
  std::istringstream lines(buffer_.substr(0, end + 2));
  buffer_.erase(0, end + 4);
  std::string status_line;
  std::getline(lines, status_line);
  std::istringstream parts(status_line);
  std::string version;
  if (!(parts >> version >> status_) || version.rfind("HTTP/", 0) != 0) {
    error_ = "bad status line: " + status_line;
    return false;
  }
  bool chunked = false;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = Poco::trim(line.substr(0, colon)), value = Poco::trim(line.substr(colon + 1));
    headers_.emplace(name, value);
    if (Poco::icompare(name, "Content-Length") == 0) {
      Poco::UInt64 length = 0;
      if (Poco::NumberParser::tryParseUnsigned64(value, length)) content_length_ = length;
    }
    if (Poco::icompare(name, "Transfer-Encoding") == 0 && Poco::icompare(value, "chunked") == 0) chunked = true;
  }
  head_done_ = true;
  if (chunked) {
    error_ = "chunked bodies are not supported by RawHttpGet";
    ::close(fd_);
    fd_ = -1;
    return true;
  }
  if (head_request_ || status_ == 204 || status_ == 304 || (status_ >= 100 && status_ < 200)) {
    content_length_ = 0;
    complete_ = true;
    return true;
  }
  if (content_length_ && *content_length_ == 0) complete_ = true;
  std::string rest;
  rest.swap(buffer_);
  consume_body(rest.data(), rest.size());
  return true;
}

std::size_t RawHttpGet::read_some(std::chrono::milliseconds timeout) {
  if (!head_done_ && !read_head(timeout)) return 0;
  if (complete_ || fd_ < 0) return 0;
  const std::uint64_t before = body_bytes_;
  if (!fill(timeout)) {
    // Without a Content-Length the body ends with the connection.
    if (eof_ && !content_length_ && error_.empty()) complete_ = true;
    if (eof_ && content_length_ && !complete_ && error_.empty())
      error_ = "connection closed after " + std::to_string(body_bytes_) + " of " + std::to_string(*content_length_) +
               " body bytes";
    return 0;
  }
  std::string data;
  data.swap(buffer_);
  consume_body(data.data(), data.size());
  return static_cast<std::size_t>(body_bytes_ - before);
}

bool RawHttpGet::read_to_end(std::chrono::milliseconds idle_timeout) {
  if (!head_done_ && !read_head(idle_timeout)) return false;
  while (!complete_ && fd_ >= 0) {
    if (read_some(idle_timeout) == 0 && !complete_) {
      if (eof_ || !error_.empty()) break;
    }
  }
  return complete_;
}

std::string StreamedResponse::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string StreamedResponse::summary() const {
  std::string s = std::to_string(status) + ", " + std::to_string(body_bytes) + " body bytes";
  if (!complete) s += " (incomplete: " + error + ")";
  return s;
}

StreamedResponse stream_get(int port, const std::string& target, const HttpHeaders& headers,
                            std::chrono::milliseconds idle_timeout, std::atomic<std::uint64_t>* progress) {
  RawHttpGet get(port, target, headers);
  get.count_into(progress);
  get.read_to_end(idle_timeout);
  StreamedResponse r;
  r.status = get.status();
  r.headers = get.headers();
  r.body_bytes = get.body_bytes();
  r.body_digest = get.body_digest();
  r.body_prefix = get.body_prefix();
  r.complete = get.complete();
  r.error = get.error();
  return r;
}

// --- helpers ---------------------------------------------------------------------

std::string pseudo_random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (std::uint64_t v = rng(); i < n; ++i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
  return out;
}

OciError first_oci_error(const std::string& body) {
  OciError e;
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (!json.is_object()) return e;
  auto errors = json.find("errors");
  if (errors == json.end() || !errors->is_array() || errors->empty() || !(*errors)[0].is_object()) return e;
  const auto& first = (*errors)[0];
  if (auto it = first.find("code"); it != first.end() && it->is_string()) e.code = it->get<std::string>();
  if (auto it = first.find("message"); it != first.end() && it->is_string()) e.message = it->get<std::string>();
  e.valid = !e.code.empty();
  return e;
}

std::filesystem::path stored_blob_path(const std::filesystem::path& data_dir, const std::string& digest) {
  std::string hex = digest.substr(digest.find(':') + 1);
  return data_dir / "blobs" / "sha256" / hex.substr(0, 2) / hex;
}

std::vector<std::filesystem::path> files_under(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return out;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) out.push_back(it->path());
  }
  return out;
}

}  // namespace regcache::test
