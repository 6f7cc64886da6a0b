#include "cache/observer.h"

#include <string_view>

namespace regcache::cache {

FillFailure fill_failure_cause(const RegistryError& e) {
  if (e.code() == ErrorCode::Internal || e.code() == ErrorCode::InsufficientStorage) return FillFailure::Disk;
  const std::string_view what = e.what();
  if (what.find("timed out") != std::string_view::npos || what.find("fill_timeout_s") != std::string_view::npos)
    return FillFailure::Timeout;
  // UpstreamInvalid is also what an unexpected status becomes
  // (upstream_status_error: "unexpected answer: upstream U answered 500").
  if (e.code() == ErrorCode::UpstreamInvalid && what.find("unexpected answer: ") == std::string_view::npos)
    return FillFailure::DigestMismatch;
  return FillFailure::UpstreamError;
}

}  // namespace regcache::cache
