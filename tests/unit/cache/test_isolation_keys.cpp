// Unit tests for what keeps namespaces and repositories apart in the cache:
// fills keyed by (namespace, digest), remembered 404s by (kind, namespace,
// repository, reference), and the normalised queries kept list documents are
// keyed and fetched by (cache/blob_fill.h, cache/negative_cache.h, cache/policy.h).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>

#include "cache/blob_fill.h"
#include "cache/negative_cache.h"
#include "cache/policy.h"
#include "common/digest.h"
#include "common/error.h"
#include "sync_util.h"

using namespace regcache::cache;
using regcache::ErrorCode;
using regcache::RegistryError;
using regcache::sha256_of;
using regcache_test::eventually;
using regcache_test::Gate;
using regcache_test::OpenAtExit;
using namespace std::chrono_literals;

TEST_CASE("fills: the same digest from two upstream namespaces are two fills, the same namespace shares one") {
  Gate release;
  OpenAtExit guard{&release};
  std::atomic<int> transfers{0};
  auto held = [&](BlobFill& f) {
    ++transfers;
    release.wait();
    f.failed(RegistryError(ErrorCode::BlobUnknown, "done"));
  };
  FillCoordinator coordinator;
  const auto digest = sha256_of("shared layer");
  bool started = false;
  auto from_a = coordinator.join_or_start({"a.example", digest}, held, &started);
  CHECK(started);
  auto from_b = coordinator.join_or_start({"b.example", digest}, held, &started);
  CHECK(started);  // B's client never joins A's fill
  CHECK(from_b.get() != from_a.get());
  auto again_a = coordinator.join_or_start({"a.example", digest}, held, &started);
  CHECK_FALSE(started);
  CHECK(again_a.get() == from_a.get());
  CHECK(coordinator.running() == 2);
  release.open();
  REQUIRE(eventually([&] { return coordinator.running() == 0; }));
  CHECK(transfers == 2);
}

TEST_CASE("negative cache: a 404 is remembered for its namespace, repository and reference only") {
  NegativeCache missing;
  const std::string d = sha256_of("x").str();
  missing.add({MissingKey::Kind::Blob, "docker.io", "test/nope", d}, 60s);
  CHECK(missing.contains({MissingKey::Kind::Blob, "docker.io", "test/nope", d}));
  CHECK_FALSE(missing.contains({MissingKey::Kind::Blob, "docker.io", "test/img5", d}));  // issue 11 item 6
  CHECK_FALSE(missing.contains({MissingKey::Kind::Blob, "ghcr.io", "test/nope", d}));
  CHECK_FALSE(missing.contains({MissingKey::Kind::Manifest, "docker.io", "test/nope", d}));
  // Fields cannot run into each other: ("a", "b/c") is not ("a/b", "c") nor ("a|b", "c").
  missing.add({MissingKey::Kind::Tag, "a", "b|c", "t"}, 60s);
  CHECK_FALSE(missing.contains({MissingKey::Kind::Tag, "a|b", "c", "t"}));
  missing.erase({MissingKey::Kind::Blob, "docker.io", "test/nope", d});
  CHECK_FALSE(missing.contains({MissingKey::Kind::Blob, "docker.io", "test/nope", d}));
  missing.add({MissingKey::Kind::Blob, "docker.io", "r", d}, 0s);  // ttl 0: not remembered
  CHECK_FALSE(missing.contains({MissingKey::Kind::Blob, "docker.io", "r", d}));
}

TEST_CASE("list queries: tags/list keeps n (digits, clamped) and last, in a fixed order, drops the rest") {
  CHECK(normalized_tags_query("") == "");
  CHECK(normalized_tags_query("n=10&last=v1") == "n=10&last=v1");
  CHECK(normalized_tags_query("last=v1&n=10") == "n=10&last=v1");
  CHECK(normalized_tags_query("junk=1&n=10&x&last=v1&y=") == "n=10&last=v1");
  CHECK(normalized_tags_query("n=007") == "n=7");
  CHECK(normalized_tags_query("n=1000") == "n=1000");
  CHECK(normalized_tags_query("n=1001") == "n=1000");
  CHECK(normalized_tags_query("n=99999999999999999999") == "n=1000");
  CHECK(normalized_tags_query("n=0") == "");
  CHECK(normalized_tags_query("n=-1") == "");
  CHECK(normalized_tags_query("n=1e3") == "");
  CHECK(normalized_tags_query("n=") == "");
  CHECK(normalized_tags_query("n=5&n=6") == "n=5");  // first occurrence
  CHECK(normalized_tags_query("last=") == "");
  CHECK(normalized_tags_query("last=" + std::string(kMaxListLastBytes + 1, 'a')) == "");
  CHECK(normalized_tags_query("nn=5&xlast=a") == "");
  CHECK(normalized_tags_query("ns=docker.io&n=2") == "n=2");
}

TEST_CASE("list queries: referrers keep artifactType only") {
  CHECK(normalized_referrers_query("") == "");
  CHECK(normalized_referrers_query("artifactType=application%2Fx&n=5&junk") == "artifactType=application%2Fx");
  CHECK(normalized_referrers_query("junk=1&artifactType=a&artifactType=b") == "artifactType=a");
  CHECK(normalized_referrers_query("artifactType=") == "");
}
