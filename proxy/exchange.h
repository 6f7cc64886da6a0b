#pragma once
// One HTTP request and its response, plus what the access log line needs.
// Helpers here own the wire details every handler shares: the OCI error body,
// whole-body responses, zero-copy file sends and aborting a started response.
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/error.h"
#include "proxy/router.h"

namespace regcache::proxy {

// The client went away (or stalled past the send timeout) mid-response.
class ClientGone : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Exchange {
  // `tls`: the connection is TLS, so bodies cannot bypass the stream with sendfile.
  Exchange(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp, bool tls = false);

  Poco::Net::HTTPServerRequest& request;
  Poco::Net::HTTPServerResponse& response;
  std::string path;   // without the query
  std::string query;  // without '?'
  std::string cache_status = "-";
  std::uint64_t body_bytes = 0;
  bool aborted = false;
  bool tls = false;
  std::ostream* body_stream = nullptr;  // set by send_headers()
  // For metrics and the access log: the resource the path named (set by
  // RegistryApi::handle) and when the response head went out.
  Resource resource = Resource::Unknown;
  std::string repository;  // the repository name the path named, with `resource`
  std::optional<std::chrono::steady_clock::time_point> head_sent;
  void mark_head_sent() {
    if (!head_sent) head_sent = std::chrono::steady_clock::now();
  }

  bool is_head() const { return request.getMethod() == "HEAD"; }
  // Every value of a header that may repeat (Accept), in arrival order.
  std::vector<std::string> header_values(const std::string& name) const;
};

// Sends `error` as the spec's JSON body with its status (no body for HEAD).
void send_error(Exchange& ex, const RegistryError& error);
// Sends a complete in-memory body with Content-Length (headers only for HEAD).
void send_body(Exchange& ex, std::string_view body, const std::string& content_type);
// Sends the response headers now (Content-Length must be set), so that the
// body can follow with send_file_range().
void send_headers(Exchange& ex);
// Copies `count` bytes at `offset` of `fd` to the client: with sendfile(2) on a
// plain connection, through the TLS stream otherwise. Throws ClientGone when
// the client disconnects or stalls.
void send_file_range(Exchange& ex, int fd, std::uint64_t offset, std::uint64_t count);
// Sends `count` bytes from memory as part of the body (after send_headers()).
// Throws ClientGone when the client disconnects or stalls.
void send_bytes(Exchange& ex, const char* data, std::size_t count);
// After headers were sent, the only honest way to report a failure: cut the
// connection, so that the short body can never look complete.
void abort_connection(Exchange& ex);

}  // namespace regcache::proxy
