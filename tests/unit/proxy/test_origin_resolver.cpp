#include <doctest/doctest.h>

#include "proxy/origin_resolver.h"

using namespace regcache;
using proxy::OriginResolver;

namespace {

OriginResolver two_upstreams() {
  std::vector<cache::Origin> origins(2);
  origins[0].ns = "docker.io";
  origins[1].ns = "ghcr.io";
  return OriginResolver(origins, 0);
}

ErrorCode code_of(const OriginResolver& r, const std::string& name, const std::string& ns) {
  try {
    r.resolve(name, ns);
  } catch (const RegistryError& e) {
    return e.code();
  }
  FAIL("expected a RegistryError");
  return ErrorCode::Internal;
}

}  // namespace

TEST_CASE("plain names go to the default upstream") {
  auto r = two_upstreams();
  auto got = r.resolve("library/busybox", "");
  CHECK(got.origin->ns == "docker.io");
  CHECK(got.repo.str() == "library/busybox");
}

TEST_CASE("the ns parameter selects a configured upstream and keeps the whole name") {
  auto r = two_upstreams();
  auto got = r.resolve("org/app", "ghcr.io");
  CHECK(got.origin->ns == "ghcr.io");
  CHECK(got.repo.str() == "org/app");
  CHECK(r.resolve("library/busybox", "docker.io").origin->ns == "docker.io");
}

TEST_CASE("an ns naming no configured upstream is refused") {
  auto r = two_upstreams();
  CHECK(code_of(r, "org/app", "evil.example.com") == ErrorCode::NameUnknown);
  CHECK(code_of(r, "org/app", "127.0.0.1:5000") == ErrorCode::NameUnknown);
}

TEST_CASE("a path prefix naming an upstream selects it and is stripped") {
  auto r = two_upstreams();
  auto got = r.resolve("ghcr.io/org/app", "");
  CHECK(got.origin->ns == "ghcr.io");
  CHECK(got.repo.str() == "org/app");
  // A first component that looks like a registry host but is not configured
  // is refused: nothing is forwarded for it.
  CHECK(code_of(r, "quay.io/org/app", "") == ErrorCode::NameUnknown);
  CHECK(code_of(r, "localhost/app", "") == ErrorCode::NameUnknown);
  CHECK(code_of(r, "evil.example.com/org/app", "") == ErrorCode::NameUnknown);
  // Any other first component is part of the repository name.
  auto plain = r.resolve("org/app", "");
  CHECK(plain.origin->ns == "docker.io");
  CHECK(plain.repo.str() == "org/app");
}

TEST_CASE("ns matching ignores case and knows Docker Hub's other host names") {
  auto r = two_upstreams();
  CHECK(r.resolve("org/app", "GHCR.IO").origin->ns == "ghcr.io");
  CHECK(r.resolve("library/busybox", "index.docker.io").origin->ns == "docker.io");
  CHECK(r.resolve("library/busybox", "registry-1.docker.io").origin->ns == "docker.io");
}

TEST_CASE("invalid names are refused whichever way the upstream was chosen") {
  auto r = two_upstreams();
  CHECK(code_of(r, "Org/App", "") == ErrorCode::NameInvalid);
  CHECK(code_of(r, "ghcr.io/Org", "") == ErrorCode::NameInvalid);
  CHECK(code_of(r, "a//b", "ghcr.io") == ErrorCode::NameInvalid);
  CHECK(code_of(r, "ghcr.io/", "") == ErrorCode::NameInvalid);
}

TEST_CASE("query helpers read and strip one parameter") {
  CHECK(proxy::query_param("ns=docker.io", "ns") == "docker.io");
  CHECK(proxy::query_param("n=10&ns=ghcr.io&last=a", "ns") == "ghcr.io");
  CHECK(proxy::query_param("n=10", "ns").empty());
  CHECK(proxy::query_without("n=10&ns=ghcr.io&last=a", "ns") == "n=10&last=a");
  CHECK(proxy::query_without("ns=ghcr.io", "ns").empty());
  CHECK(proxy::query_without("", "ns").empty());
}

TEST_CASE("query parameters are percent-decoded") {
  CHECK(proxy::query_param("digest=sha256%3Aabc", "digest") == "sha256:abc");
  CHECK(proxy::query_param("artifactType=application%2Fvnd.example%2Bjson", "artifactType") ==
        "application/vnd.example+json");
}

TEST_CASE("hosted prefixes keep repositories here and never reach an upstream") {
  std::vector<cache::Origin> origins(1);
  origins[0].ns = "docker.io";
  OriginResolver r(origins, 0, {"local", "team/images"});
  CHECK(r.resolve("local", "").hosted());
  CHECK(r.resolve("local/app", "").hosted());
  CHECK(r.resolve("team/images/app", "").hosted());
  CHECK_FALSE(r.resolve("localapp", "").hosted());     // a prefix is whole components
  CHECK_FALSE(r.resolve("team/imagesx", "").hosted());
  CHECK(r.resolve("library/busybox", "").origin->ns == "docker.io");
  // containerd's ns names the registry explicitly: it wins over a hosted prefix.
  CHECK_FALSE(r.resolve("local/app", "docker.io").hosted());
}

TEST_CASE("with no upstream every repository is hosted") {
  OriginResolver r({}, 0, {});
  CHECK(r.resolve("anything/at/all", "").hosted());
  CHECK(code_of(r, "org/app", "docker.io") == ErrorCode::NameUnknown);
}
