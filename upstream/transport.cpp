#include "upstream/transport.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>

#include <algorithm>

#include "common/log.h"

namespace regcache::upstream {
namespace {

std::string where(const Endpoint& endpoint) { return "upstream " + endpoint.label(); }

// Whether a failure on a reused idle connection may just mean the server had
// closed it meanwhile (reset, broken pipe, EOF before any response byte), so
// that the idempotent request can be repeated on a new connection. A timeout
// or a malformed response says something about the server instead.
bool maybe_closed_while_idle(const Poco::Exception& e) {
  return dynamic_cast<const Poco::TimeoutException*>(&e) == nullptr &&
         dynamic_cast<const Poco::Net::MessageException*>(&e) == nullptr;
}

}  // namespace

void rethrow_as_transport_error(const Endpoint& endpoint, std::string_view doing) {
  std::string prefix = where(endpoint) + ": " + std::string(doing) + ": ";
  try {
    throw;
  } catch (const TransportError&) {
    throw;
  } catch (const Poco::TimeoutException&) {
    throw TimeoutError(prefix + "timed out");
  } catch (const Poco::Net::SSLException& e) {
    throw TransportError(prefix + "TLS error: " + e.displayText());
  } catch (const Poco::Exception& e) {
    throw TransportError(prefix + e.displayText());
  } catch (const std::exception& e) {
    throw TransportError(prefix + e.what());
  }
}

PooledBodyStream::PooledBodyStream(Lease lease, Endpoint endpoint, std::unique_ptr<Poco::Net::HTTPResponse> http,
                                   std::istream& body, bool head_request)
    : lease_(std::move(lease)), endpoint_(std::move(endpoint)), http_(std::move(http)), body_(&body) {
  response_.status = static_cast<int>(http_->getStatus());
  response_.content_type = http_->get("Content-Type", "");
  response_.docker_content_digest = http_->get("Docker-Content-Digest", "");
  response_.retry_after = http_->get("Retry-After", "");
  response_.link = http_->get("Link", "");
  response_.filters_applied = http_->get("OCI-Filters-Applied", "");
  response_.content_range = http_->get("Content-Range", "");
  if (http_->hasContentLength() && http_->getContentLength64() >= 0) {
    response_.content_length = static_cast<std::uint64_t>(http_->getContentLength64());
  }
  bool has_body = !head_request && response_.status >= 200 && response_.status != 204 && response_.status != 304;
  expected_ = has_body ? response_.content_length : std::optional<std::uint64_t>(0);
  if (http_->getChunkedTransferEncoding() && has_body) expected_.reset();
  // A body of known length is read straight from the session, in the
  // caller's buffer size; chunked and close-delimited ones through Poco's stream.
  if (expected_) direct_ = dynamic_cast<SessionBodyReader*>(&lease_->session());
  if (expected_ == 0u) finish();
}

std::size_t PooledBodyStream::read(char* buf, std::size_t n) {
  if (failure_) throw TransportError(*failure_);
  if (!lease_ || n == 0) return 0;
  try {
    return read_some(buf, n);
  } catch (...) {
    lease_.reset();  // closes the connection: its state is unknown
    try {
      rethrow_as_transport_error(endpoint_, "reading the response body");
    } catch (const TransportError& e) {
      failure_ = e.what();
      throw;
    }
  }
}

std::size_t PooledBodyStream::read_some(char* buf, std::size_t n) {
  if (direct_) {
    auto want = static_cast<std::streamsize>(std::min<std::uint64_t>({n, *expected_ - received_, 1u << 30}));
    int got = direct_->read_body(buf, want);
    if (got <= 0) {
      throw TransportError("upstream body truncated: " + where(endpoint_) + " sent " + std::to_string(received_) +
                           " of " + std::to_string(*expected_) + " bytes");
    }
    received_ += static_cast<std::uint64_t>(got);
    if (received_ == *expected_) finish();
    return static_cast<std::size_t>(got);
  }
  using traits = std::istream::traits_type;
  std::streambuf* in = body_->rdbuf();
  if (expected_) n = static_cast<std::size_t>(std::min<std::uint64_t>(n, *expected_ - received_));
  // Hand out what is buffered; block for more only when nothing is.
  std::streamsize available = in->in_avail();
  if (available <= 0) {
    if (traits::eq_int_type(in->sgetc(), traits::eof())) {
      if (expected_ && received_ < *expected_) {
        throw TransportError("upstream body truncated: " + where(endpoint_) + " sent " + std::to_string(received_) +
                             " of " + std::to_string(*expected_) + " bytes");
      }
      finish();
      return 0;
    }
    available = in->in_avail();
  }
  std::streamsize want = std::min<std::streamsize>(available, static_cast<std::streamsize>(n));
  auto got = static_cast<std::size_t>(in->sgetn(buf, want));
  received_ += got;
  if (expected_ && received_ == *expected_) finish();
  return got;
}

bool PooledBodyStream::readable_within(std::chrono::milliseconds wait) {
  // Ended or failed: read() answers at once (0 or the failure).
  if (failure_ || !lease_) return true;
  if (!direct_ && body_->rdbuf()->in_avail() > 0) return true;
  auto* session = dynamic_cast<SessionBodyReader*>(&lease_->session());
  try {
    return !session || session->readable_within(wait);
  } catch (...) {
    return true;  // read() meets the same trouble and reports it
  }
}

void PooledBodyStream::finish() {
  direct_ = nullptr;
  // Without a length or chunking the body ended with the connection.
  bool reusable = http_->getKeepAlive() && (expected_ || http_->getChunkedTransferEncoding());
  if (reusable) lease_->release();
  lease_.reset();
}

void PooledBodyStream::drain(std::size_t limit) noexcept {
  if (!lease_ || (expected_ && *expected_ - received_ > limit)) return;
  char scratch[4096];
  std::size_t total = 0;
  try {
    while (total <= limit) {
      std::size_t got = read(scratch, sizeof scratch);
      if (got == 0) return;
      total += got;
    }
  } catch (const TransportError&) {
    // The connection is already closed; nothing to reuse.
  }
}

std::unique_ptr<PooledBodyStream> send_request(ConnectionPool& pool, const Request& request) {
  // Header values can carry bytes a peer chose (a token endpoint's token):
  // Poco writes them raw, so a CR or LF would add headers or a whole request.
  for (const auto& [name, value] : request.headers)
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      throw TransportError(where(pool.endpoint()) + ": refused to send a " + name +
                           " header holding a CR, LF or NUL byte");
  Lease lease = pool.acquire(request.priority);
  for (bool first_attempt = true;; first_attempt = false) {
    bool sent = false;
    try {
      Poco::Net::HTTPRequest http(request.method, request.path_and_query, Poco::Net::HTTPMessage::HTTP_1_1);
      for (const auto& [name, value] : request.headers) http.add(name, value);
      lease.session().sendRequest(http);
      sent = true;
      auto response = std::make_unique<Poco::Net::HTTPResponse>();
      std::istream& body = lease.session().receiveResponse(*response);
      return std::make_unique<PooledBodyStream>(std::move(lease), pool.endpoint(), std::move(response), body,
                                                request.method == Poco::Net::HTTPRequest::HTTP_HEAD);
    } catch (const Poco::Exception& e) {
      if (first_attempt && lease.reused() && maybe_closed_while_idle(e)) {
        log::debug(where(pool.endpoint()) + ": idle connection was closed (" + e.displayText() +
                   "); retrying on a new one");
        lease.renew();
        continue;
      }
      rethrow_as_transport_error(pool.endpoint(), sent ? "awaiting the response" : "sending the request");
    }
  }
}

std::string read_all(PooledBodyStream& stream, std::size_t max_bytes, std::string_view what) {
  auto too_large = [&] {
    return TransportError(std::string(what) + " too large: " + where(stream.endpoint()) + " sent more than " +
                          std::to_string(max_bytes) + " bytes");
  };
  const auto& length = stream.response().content_length;
  if (length && *length > max_bytes) throw too_large();
  std::string body;
  if (length) body.reserve(static_cast<std::size_t>(*length));
  char chunk[16384];
  while (std::size_t got = stream.read(chunk, sizeof chunk)) {
    if (body.size() + got > max_bytes) throw too_large();
    body.append(chunk, got);
  }
  return body;
}

}  // namespace regcache::upstream
