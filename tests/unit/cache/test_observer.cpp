// Fill failures by cause (cache/observer.h).
#include <doctest/doctest.h>

#include "cache/observer.h"
#include "cache/policy.h"
#include "upstream/client.h"
#include "upstream/connection_pool.h"
#include "upstream/transport.h"

#include <Poco/Exception.h>

using namespace regcache;
using regcache::cache::FillFailure;
using regcache::cache::fill_failure_cause;

TEST_CASE("fill failures: causes come from the error code - timeouts from the transport's and the fill's words") {
  CHECK(fill_failure_cause(RegistryError(ErrorCode::UpstreamInvalid, "upstream u sent wrong bytes")) ==
        FillFailure::DigestMismatch);
  CHECK(fill_failure_cause(RegistryError(ErrorCode::Internal, "database is locked")) == FillFailure::Disk);
  CHECK(fill_failure_cause(RegistryError(ErrorCode::Unavailable, "upstream u is unreachable: refused")) ==
        FillFailure::UpstreamError);
  CHECK(fill_failure_cause(RegistryError(ErrorCode::BlobUnknown, "blob unknown to upstream u")) ==
        FillFailure::UpstreamError);
  // Error statuses, as the cache turns them into errors: a 500 becomes
  // UpstreamInvalid too, but it is the upstream failing, not bad content.
  for (int status : {404, 429, 500, 502, 503, 418})
    CHECK_MESSAGE(fill_failure_cause(cache::upstream_status_error(status, cache::ObjectKind::Blob, "u", "")) ==
                      FillFailure::UpstreamError,
                  status);
  CHECK(fill_failure_cause(RegistryError(ErrorCode::Unavailable,
                                         "transfer of sha256:x from upstream u exceeded fill_timeout_s")) ==
        FillFailure::Timeout);
  // The words are the transport's own: a Poco timeout becomes a TimeoutError
  // whose message, wrapped as the cache wraps it, reads as a timeout.
  std::string message;
  try {
    try {
      throw Poco::TimeoutException("Timeout");
    } catch (...) {
      upstream::rethrow_as_transport_error(upstream::Endpoint{"http", "127.0.0.1", 5000}, "reading the response body");
    }
  } catch (const upstream::TimeoutError& e) {
    message = e.what();
  }
  REQUIRE(!message.empty());
  CHECK(fill_failure_cause(RegistryError(ErrorCode::Unavailable, "upstream u broke off sha256:x: " + message)) ==
        FillFailure::Timeout);
}
