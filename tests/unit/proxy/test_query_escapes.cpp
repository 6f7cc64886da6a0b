// Unit tests: a bad percent-escape in a query parameter is a 400 with the
// code of what the parameter names (proxy/origin_resolver.h query_param,
// proxy/pagination.h), never an exception that becomes a 500.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "proxy/origin_resolver.h"
#include "proxy/pagination.h"

using namespace regcache;
using namespace regcache::proxy;

namespace {

ErrorCode code_of(std::string_view query, std::string_view key) {
  try {
    query_param(query, key);
  } catch (const RegistryError& e) {
    return e.code();
  }
  FAIL("no RegistryError for " << query);
  return ErrorCode::Internal;
}

}  // namespace

TEST_CASE("query escapes: each parameter's bad escape maps to its OCI code with status 400") {
  CHECK(code_of("ns=%zz", "ns") == ErrorCode::NameInvalid);
  CHECK(code_of("from=a%2", "from") == ErrorCode::NameInvalid);
  CHECK(code_of("digest=%zz", "digest") == ErrorCode::DigestInvalid);
  CHECK(code_of("mount=sha256%3", "mount") == ErrorCode::DigestInvalid);
  CHECK(code_of("n=%zz", "n") == ErrorCode::PaginationInvalid);
  CHECK(code_of("last=%g0", "last") == ErrorCode::PaginationInvalid);
  CHECK(code_of("artifactType=%", "artifactType") == ErrorCode::ManifestInvalid);
  for (auto code : {ErrorCode::NameInvalid, ErrorCode::DigestInvalid, ErrorCode::PaginationInvalid,
                    ErrorCode::ManifestInvalid})
    CHECK(error_info(code).http_status == 400);
}

TEST_CASE("query escapes: only the asked-for parameter is decoded") {
  CHECK(query_param("junk=%zz&ns=docker.io", "ns") == "docker.io");
  CHECK(query_param("ns=a%2Fb", "ns") == "a/b");
  CHECK(query_param("ns=&ns=x%41", "ns") == "xA");
}

TEST_CASE("query escapes: paginate refuses a bad escape in n or last") {
  std::vector<std::string> names = {"a", "b"};
  CHECK_THROWS_AS(paginate(names, "n=%zz"), RegistryError);
  try {
    paginate(names, "last=%g0");
    FAIL("no error");
  } catch (const RegistryError& e) {
    CHECK(e.code() == ErrorCode::PaginationInvalid);
  }
}
