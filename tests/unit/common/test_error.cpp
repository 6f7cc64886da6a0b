// Unit tests for registry error codes (common/error.h).
#include <doctest/doctest.h>

#include <string>

#include "common/error.h"

using regcache::error_info;
using regcache::ErrorCode;
using regcache::RegistryError;

namespace {

void check_code(ErrorCode code, const std::string& wire, int status) {
  const auto& info = error_info(code);
  CHECK(std::string(info.wire_code) == wire);
  CHECK(info.http_status == status);
  REQUIRE(info.message != nullptr);
  CHECK_FALSE(std::string(info.message).empty());
}

}  // namespace

TEST_CASE("error: error_info wire codes and statuses") {
  check_code(ErrorCode::BlobUnknown, "BLOB_UNKNOWN", 404);
  check_code(ErrorCode::BlobUploadInvalid, "BLOB_UPLOAD_INVALID", 400);
  check_code(ErrorCode::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404);
  check_code(ErrorCode::DigestInvalid, "DIGEST_INVALID", 400);
  check_code(ErrorCode::ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", 400);
  check_code(ErrorCode::ManifestInvalid, "MANIFEST_INVALID", 400);
  check_code(ErrorCode::ManifestUnknown, "MANIFEST_UNKNOWN", 404);
  check_code(ErrorCode::NameInvalid, "NAME_INVALID", 400);
  check_code(ErrorCode::NameUnknown, "NAME_UNKNOWN", 404);
  check_code(ErrorCode::SizeInvalid, "SIZE_INVALID", 400);
  check_code(ErrorCode::TagInvalid, "TAG_INVALID", 400);
  check_code(ErrorCode::Unauthorized, "UNAUTHORIZED", 401);
  check_code(ErrorCode::Denied, "DENIED", 403);
  check_code(ErrorCode::Unsupported, "UNSUPPORTED", 405);
  check_code(ErrorCode::TooManyRequests, "TOOMANYREQUESTS", 429);
  check_code(ErrorCode::RangeNotSatisfiable, "RANGE_INVALID", 416);
  check_code(ErrorCode::NotFound, "NOT_FOUND", 404);
  check_code(ErrorCode::MethodNotAllowed, "UNSUPPORTED", 405);
  check_code(ErrorCode::UpstreamInvalid, "UNKNOWN", 502);
  check_code(ErrorCode::Unavailable, "UNAVAILABLE", 503);
  check_code(ErrorCode::InsufficientStorage, "UNKNOWN", 507);
  check_code(ErrorCode::Internal, "UNKNOWN", 500);
}

TEST_CASE("error: RegistryError carries code and message and detail and retry_after") {
  RegistryError e(ErrorCode::TooManyRequests, "slow down", "detail text");
  CHECK(e.code() == ErrorCode::TooManyRequests);
  CHECK(std::string(e.what()) == "slow down");
  CHECK(e.detail() == "detail text");
  CHECK_FALSE(e.retry_after.has_value());
  e.retry_after = "30";
  RegistryError copy = e;
  REQUIRE(copy.retry_after.has_value());
  CHECK(*copy.retry_after == "30");

  RegistryError plain(ErrorCode::BlobUnknown, "nope");
  CHECK(plain.detail().empty());
}
