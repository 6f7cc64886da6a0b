#include "cache/observer.h"

#include <string_view>

namespace regcache::cache {

FillFailure fill_failure_cause(const RegistryError& e) {
  switch (e.code()) {
    case ErrorCode::UpstreamInvalid: return FillFailure::DigestMismatch;
    case ErrorCode::Internal:
    case ErrorCode::InsufficientStorage: return FillFailure::Disk;
    default: break;
  }
  const std::string_view what = e.what();
  if (what.find("timed out") != std::string_view::npos || what.find("fill_timeout_s") != std::string_view::npos)
    return FillFailure::Timeout;
  return FillFailure::UpstreamError;
}

}  // namespace regcache::cache
