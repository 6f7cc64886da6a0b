#include "proxy/exchange.h"

#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/StreamSocket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>
#include <nlohmann/json.hpp>

namespace regcache::proxy {
namespace {

Poco::Net::StreamSocket& socket_of(Exchange& ex) {
  return static_cast<Poco::Net::HTTPServerRequestImpl&>(ex.request).socket();
}

}  // namespace

Exchange::Exchange(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp, bool tls_connection)
    : request(req), response(resp), tls(tls_connection) {
  const std::string& uri = req.getURI();
  auto q = uri.find('?');
  path = uri.substr(0, q);
  if (q != std::string::npos) query = uri.substr(q + 1);
}

std::vector<std::string> Exchange::header_values(const std::string& name) const {
  std::vector<std::string> out;
  for (auto it = request.find(name); it != request.end() && Poco::icompare(it->first, name) == 0; ++it)
    out.push_back(it->second);
  return out;
}

void send_error(Exchange& ex, const RegistryError& error) {
  const ErrorInfo& info = error_info(error.code());
  nlohmann::json entry = {{"code", info.wire_code}, {"message", error.what()}};
  if (!error.detail().empty()) entry["detail"] = error.detail();
  std::string body = nlohmann::json{{"errors", nlohmann::json::array({entry})}}.dump();
  ex.response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(info.http_status));
  if (error.retry_after) ex.response.set("Retry-After", *error.retry_after);
  send_body(ex, body, "application/json");
}

void send_body(Exchange& ex, std::string_view body, const std::string& content_type) {
  ex.response.setContentType(content_type);
  ex.response.setContentLength64(static_cast<Poco::Int64>(body.size()));
  if (ex.is_head()) {
    ex.response.send();
    return;
  }
  ex.response.sendBuffer(body.data(), body.size());
  ex.body_bytes += body.size();
}

void send_headers(Exchange& ex) {
  ex.body_stream = &ex.response.send();
  ex.body_stream->flush();
}

namespace {

// TLS: the bytes must go through the session's encryption.
void copy_through_stream(Exchange& ex, int fd, std::uint64_t offset, std::uint64_t count) {
  std::vector<char> buffer(256 << 10);
  while (count > 0) {
    std::size_t want = count < buffer.size() ? static_cast<std::size_t>(count) : buffer.size();
    ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw ClientGone("reading the blob file failed");
    ex.body_stream->write(buffer.data(), n);
    ex.body_stream->flush();
    if (!*ex.body_stream) throw ClientGone("sending to client failed");
    offset += static_cast<std::uint64_t>(n);
    count -= static_cast<std::uint64_t>(n);
    ex.body_bytes += static_cast<std::uint64_t>(n);
  }
}

}  // namespace

void send_file_range(Exchange& ex, int fd, std::uint64_t offset, std::uint64_t count) {
  if (ex.tls) return copy_through_stream(ex, fd, offset, count);
  int out = socket_of(ex).impl()->sockfd();
  // Corked, the kernel sends only full segments until the range is out (Poco
  // sets TCP_NODELAY, which would push every splice as it comes).
  int on = 1;
  ::setsockopt(out, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
  struct Uncork {
    int fd;
    ~Uncork() {
      int off = 0;
      ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    }
  } uncork{out};
  auto pos = static_cast<off_t>(offset);
  while (count > 0) {
    std::size_t chunk = count < (std::uint64_t{1} << 30) ? static_cast<std::size_t>(count) : std::size_t{1} << 30;
    ssize_t n = ::sendfile(out, fd, &pos, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ClientGone(std::string("sending to client failed: ") + std::strerror(errno));
    if (n == 0) throw ClientGone("blob file ended early");  // cannot happen for a verified blob
    count -= static_cast<std::uint64_t>(n);
    ex.body_bytes += static_cast<std::uint64_t>(n);
  }
}

void abort_connection(Exchange& ex) {
  ex.aborted = true;
  try {
    socket_of(ex).shutdown();
  } catch (const Poco::Exception&) {
    // already gone
  }
}

}  // namespace regcache::proxy
