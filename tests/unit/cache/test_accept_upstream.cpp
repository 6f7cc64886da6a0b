#include <doctest/doctest.h>

#include <algorithm>

#include "cache/policy.h"

using regcache::cache::AcceptList;

namespace {
bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }
}  // namespace

TEST_CASE("upstream Accept: a client naming manifest types is forwarded as is") {
  AcceptList a;
  a.add_header("application/vnd.docker.distribution.manifest.v2+json");
  a.add_header("application/vnd.oci.image.manifest.v1+json, */*");
  auto v = a.upstream_values();
  CHECK(v == a.values());
  CHECK(v.size() == 3);
}

TEST_CASE("upstream Accept: no Accept or only wildcards asks for every manifest type") {
  AcceptList none;
  auto v = none.upstream_values();
  CHECK(has(v, "application/vnd.oci.image.index.v1+json"));
  CHECK(has(v, "application/vnd.oci.image.manifest.v1+json"));
  CHECK(has(v, "application/vnd.docker.distribution.manifest.list.v2+json"));
  CHECK(has(v, "application/vnd.docker.distribution.manifest.v2+json"));

  AcceptList star;
  star.add_header("*/*");
  auto w = star.upstream_values();
  CHECK(has(w, "application/vnd.oci.image.manifest.v1+json"));
  CHECK(has(w, "*/*"));
}
