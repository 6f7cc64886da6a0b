#pragma once
// Registry error codes, registered once with their wire name and HTTP status
// (OCI distribution spec, "Error Codes"; plus UNAVAILABLE/UNKNOWN/TOOMANYREQUESTS
// as distribution uses them). Domain code throws RegistryError with a code; the
// HTTP layer turns it into the spec's JSON body and status.
#include <optional>
#include <stdexcept>
#include <string>

namespace regcache {

enum class ErrorCode {
  BlobUnknown,
  BlobUploadInvalid,
  BlobUploadUnknown,
  DigestInvalid,
  ManifestBlobUnknown,
  ManifestInvalid,
  ManifestUnknown,
  NameInvalid,
  NameUnknown,
  SizeInvalid,
  TagInvalid,
  Unauthorized,
  Denied,
  Unsupported,
  TooManyRequests,
  RangeNotSatisfiable,
  UploadRangeInvalid,  // a chunk that does not continue the upload (416)
  ManifestTooLarge,    // 413
  PaginationInvalid,   // a bad `n`
  NotFound,          // unknown route
  MethodNotAllowed,  // known route, wrong method
  UpstreamInvalid,   // upstream answered something we refuse to pass on (502)
  Unavailable,       // upstream unreachable and nothing cached (503)
  InsufficientStorage,  // the data directory's file system is full (507; ENOSPC, EDQUOT)
  Internal,
};

struct ErrorInfo {
  const char* wire_code;  // "BLOB_UNKNOWN"
  int http_status;
  const char* message;  // default human message
};

const ErrorInfo& error_info(ErrorCode code);

class RegistryError : public std::runtime_error {
 public:
  RegistryError(ErrorCode code, std::string message, std::string detail = {})
      : std::runtime_error(std::move(message)), code_(code), detail_(std::move(detail)) {}
  ErrorCode code() const { return code_; }
  const std::string& detail() const { return detail_; }
  // Passed on to the client as Retry-After (TOOMANYREQUESTS).
  std::optional<std::string> retry_after;

 private:
  ErrorCode code_;
  std::string detail_;
};

}  // namespace regcache
