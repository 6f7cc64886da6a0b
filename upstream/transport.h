#pragma once
// One HTTP exchange over a pooled connection, and the BodyStream that hands
// out its body.
//
// Promises:
// - send_request() returns once the status line and headers arrived; the body is
//   left unread. When a reused idle connection fails as one the server closed
//   meanwhile would (reset, broken pipe, EOF before a response), the request
//   is repeated once on a new connection; callers send only GET and HEAD.
// - PooledBodyStream gives the connection back to its pool only after the body
//   was read to its end on a keep-alive connection; on an error, an early end
//   or destruction mid-body the connection is closed.
// - Every failure surfaces as TransportError naming host:port only.
#include <Poco/Net/HTTPResponse.h>

#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "upstream/client.h"
#include "upstream/connection_pool.h"

namespace regcache::upstream {

// Converts the exception being handled into TransportError
// "upstream <host:port>: <doing>: <detail>"; a TransportError passes unchanged.
// Call only from inside a catch block.
[[noreturn]] void rethrow_as_transport_error(const Endpoint& endpoint, std::string_view doing);

struct Request {
  std::string method;          // "GET" or "HEAD"
  std::string path_and_query;  // origin-form request target
  std::vector<std::pair<std::string, std::string>> headers;  // each sent as its own line, in order
  Priority priority = Priority::Metadata;                    // Blob for blob GETs (long transfers)
};

class PooledBodyStream final : public BodyStream {
 public:
  PooledBodyStream(Lease lease, Endpoint endpoint, std::unique_ptr<Poco::Net::HTTPResponse> http,
                   std::istream& body, bool head_request);

  const Response& response() const override { return response_; }
  std::size_t read(char* buf, std::size_t n) override;
  bool readable_within(std::chrono::milliseconds wait) override;

  // A response header verbatim, empty when absent.
  std::string header(const std::string& name) const { return http_->get(name, ""); }
  const Endpoint& endpoint() const { return endpoint_; }
  // Reads and discards the rest of a small body (at most `limit` bytes) so the
  // connection can be reused; gives up silently otherwise.
  void drain(std::size_t limit) noexcept;

 private:
  std::size_t read_some(char* buf, std::size_t n);
  void finish();  // the body ended: pool or close the connection

  std::optional<Lease> lease_;  // empty once the body ended or failed
  Endpoint endpoint_;
  std::unique_ptr<Poco::Net::HTTPResponse> http_;
  std::istream* body_;  // owned by the leased session
  SessionBodyReader* direct_ = nullptr;  // the leased session, when the body has a known length
  Response response_;
  std::optional<std::uint64_t> expected_;  // body bytes still to come are expected_ - received_
  std::uint64_t received_ = 0;
  std::optional<std::string> failure_;  // set once read() threw; later reads throw the same
};

// Sends `request` on a connection from `pool`.
std::unique_ptr<PooledBodyStream> send_request(ConnectionPool& pool, const Request& request);

// Reads the whole body; one longer than `max_bytes` throws TransportError("<what> too large ...").
std::string read_all(PooledBodyStream& stream, std::size_t max_bytes, std::string_view what);

}  // namespace regcache::upstream
