#include "support/http_client.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/SocketStream.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/NumberParser.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <csignal>
#include <stdexcept>

namespace regcache::test {
namespace {

// Writing to a socket the peer closed must be an error we can report, not a signal.
const bool sigpipe_ignored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

struct Truncated : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads exactly n bytes or throws Truncated (keeping what arrived in `out`).
void read_exact(std::istream& in, std::size_t n, std::string& out) {
  char buffer[65536];
  while (n > 0) {
    std::size_t want = n < sizeof buffer ? n : sizeof buffer;
    in.read(buffer, static_cast<std::streamsize>(want));
    auto got = static_cast<std::size_t>(in.gcount());
    out.append(buffer, got);
    n -= got;
    if (got < want) throw Truncated("connection closed " + std::to_string(n) + " bytes before the end of the body");
  }
}

void read_to_eof(std::istream& in, std::string& out) {
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) out.append(buffer, static_cast<std::size_t>(in.gcount()));
}

std::string read_line(std::istream& in) {
  std::string line;
  if (!std::getline(in, line)) throw Truncated("connection closed inside the chunked framing");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

void read_chunked(std::istream& in, std::string& out) {
  for (;;) {
    std::string size_line = read_line(in);
    std::string hex = Poco::trim(size_line.substr(0, size_line.find(';')));
    Poco::UInt64 size = 0;
    if (hex.empty() || !Poco::NumberParser::tryParseHex64(hex, size))
      throw Truncated("bad chunk size line: '" + size_line + "'");
    if (size == 0) break;
    read_exact(in, static_cast<std::size_t>(size), out);
    if (!read_line(in).empty()) throw Truncated("chunk not followed by CRLF");
  }
  while (!read_line(in).empty()) {
  }  // trailers
}

bool has_no_body(const std::string& method, int status) {
  return method == "HEAD" || (status >= 100 && status < 200) || status == 204 || status == 304;
}

}  // namespace

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return Poco::icompare(a, b) < 0;
}

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string HttpResponse::summary() const {
  std::string s = std::to_string(status) + " " + reason;
  if (!complete) s += " (incomplete: " + error + ")";
  return s;
}

HttpResponse http_request(const std::string& method, const std::string& url, const HttpHeaders& headers,
                          const std::string& body, std::chrono::milliseconds timeout) {
  HttpResponse result;
  const Poco::Timespan poco_timeout(static_cast<Poco::Timespan::TimeDiff>(timeout.count()) * 1000);
  try {
    Poco::URI uri(url);
    Poco::Net::StreamSocket socket;
    socket.connect(Poco::Net::SocketAddress(uri.getHost(), uri.getPort()), poco_timeout);
    socket.setReceiveTimeout(poco_timeout);
    socket.setSendTimeout(poco_timeout);
    socket.setNoDelay(true);
    Poco::Net::SocketStream stream(socket);
    // Socket errors (reset, timeout) must surface as exceptions rather than a quiet EOF.
    stream.exceptions(std::ios::badbit);

    std::string target = uri.getPathEtc();
    Poco::Net::HTTPRequest request(method, target.empty() ? "/" : target, Poco::Net::HTTPMessage::HTTP_1_1);
    request.setHost(uri.getHost(), uri.getPort());
    for (const auto& [name, value] : headers) request.add(name, value);
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
      request.setContentLength64(static_cast<Poco::Int64>(body.size()));
    request.write(stream);
    stream.write(body.data(), static_cast<std::streamsize>(body.size()));
    stream.flush();

    Poco::Net::HTTPResponse response;
    response.read(stream);
    result.status = static_cast<int>(response.getStatus());
    result.reason = response.getReason();
    for (const auto& [name, value] : response) result.headers.emplace(name, value);

    try {
      if (has_no_body(method, result.status)) {
        // nothing to read
      } else if (Poco::icompare(response.get("Transfer-Encoding", ""), "chunked") == 0) {
        read_chunked(stream, result.body);
      } else if (response.has("Content-Length")) {
        read_exact(stream, static_cast<std::size_t>(response.getContentLength64()), result.body);
      } else {
        read_to_eof(stream, result.body);
      }
      result.complete = true;
    } catch (const Truncated& e) {
      result.error = e.what();
    }
  } catch (const Poco::Exception& e) {
    result.error = e.displayText();
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

HttpHeaders manifest_accept_headers() {
  return {{"Accept", "application/vnd.oci.image.manifest.v1+json"},
          {"Accept", "application/vnd.oci.image.index.v1+json"},
          {"Accept", "application/vnd.docker.distribution.manifest.v2+json"},
          {"Accept", "application/vnd.docker.distribution.manifest.list.v2+json"},
          {"Accept", "application/vnd.docker.distribution.manifest.v1+prettyjws"},
          {"Accept", "application/vnd.docker.distribution.manifest.v1+json"}};
}

}  // namespace regcache::test
