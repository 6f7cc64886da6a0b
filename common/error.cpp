#include "common/error.h"

namespace regcache {

const ErrorInfo& error_info(ErrorCode code) {
  static const ErrorInfo table[] = {
      {"BLOB_UNKNOWN", 404, "blob unknown to registry"},
      {"BLOB_UPLOAD_INVALID", 400, "blob upload invalid"},
      {"BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"},
      {"DIGEST_INVALID", 400, "provided digest did not match uploaded content"},
      {"MANIFEST_BLOB_UNKNOWN", 400, "manifest references a manifest or blob unknown to registry"},
      {"MANIFEST_INVALID", 400, "manifest invalid"},
      {"MANIFEST_UNKNOWN", 404, "manifest unknown to registry"},
      {"NAME_INVALID", 400, "invalid repository name"},
      {"NAME_UNKNOWN", 404, "repository name not known to registry"},
      {"SIZE_INVALID", 400, "provided length did not match content length"},
      {"TAG_INVALID", 400, "invalid tag"},
      {"UNAUTHORIZED", 401, "authentication required"},
      {"DENIED", 403, "requested access to the resource is denied"},
      {"UNSUPPORTED", 405, "the operation is unsupported"},
      {"TOOMANYREQUESTS", 429, "too many requests"},
      {"RANGE_INVALID", 416, "requested range not satisfiable"},
      {"BLOB_UPLOAD_INVALID", 416, "the chunk does not continue the upload"},
      {"SIZE_INVALID", 413, "manifest too large"},
      {"PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested"},
      {"NOT_FOUND", 404, "no such endpoint"},
      {"UNSUPPORTED", 405, "method not allowed on this endpoint"},
      {"UNKNOWN", 502, "the upstream registry answered with invalid content"},
      {"UNAVAILABLE", 503, "the upstream registry is unavailable"},
      {"UNKNOWN", 507, "insufficient storage"},
      {"UNKNOWN", 500, "internal error"},
  };
  static_assert(sizeof(table) / sizeof(table[0]) == static_cast<std::size_t>(ErrorCode::Internal) + 1);
  return table[static_cast<std::size_t>(code)];
}

}  // namespace regcache
