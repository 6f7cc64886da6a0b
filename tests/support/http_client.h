#pragma once
// A plain HTTP/1.1 client for assertions: one connection per request, no redirects,
// no retries, repeated request headers allowed, every response header kept.
//
// It frames the body itself (Content-Length, chunked, or until close) so that a body
// cut short — fewer bytes than Content-Length, a chunked body without its last chunk,
// a reset connection, a timeout — is reported as `complete == false` with the bytes
// that did arrive, instead of looking like a shorter successful body. (Poco 1.11's
// HTTPClientSession returns a silent EOF for a truncated chunked body, so it is used
// here only for its message classes.)
#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace regcache::test {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using HttpHeaderMap = std::multimap<std::string, std::string, CaseInsensitiveLess>;

struct HttpResponse {
  int status = 0;         // 0 when no status line arrived (connect failure, reset, garbage)
  std::string reason;
  HttpHeaderMap headers;  // header names compare case-insensitively
  std::string body;       // what arrived, even when incomplete
  bool complete = false;  // status, headers and the whole framed body arrived
  std::string error;      // why it is incomplete

  // First value of the header, or "" when absent.
  std::string header(const std::string& name) const;
  bool has_header(const std::string& name) const { return headers.count(name) > 0; }
  std::size_t header_count(const std::string& name) const { return headers.count(name); }
  // "status reason, error" for failure messages.
  std::string summary() const;
};

// `url` is absolute: "http://127.0.0.1:PORT/v2/...". Never throws for network trouble.
HttpResponse http_request(const std::string& method, const std::string& url, const HttpHeaders& headers = {},
                          const std::string& body = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The Accept lines skopeo sends for manifests (OCI and Docker, image and index).
HttpHeaders manifest_accept_headers();

}  // namespace regcache::test
