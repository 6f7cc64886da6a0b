// Unit tests for the in-memory tag mappings of mirrored repositories (cache/tag_memo.h).
#include <doctest/doctest.h>

#include "cache/tag_memo.h"
#include "common/digest.h"

using regcache::sha256_of;
using regcache::cache::TagMemo;
using regcache::db::TagRecord;

TEST_CASE("tag memo: remembers per upstream, repository and tag, a later mapping replaces an earlier one") {
  TagMemo memo;
  CHECK_FALSE(memo.load("docker.io", "library/alpine", "3.19"));
  memo.remember("docker.io", "library/alpine", "3.19", {sha256_of("a"), 100});
  auto got = memo.load("docker.io", "library/alpine", "3.19");
  REQUIRE(got);
  CHECK(got->digest == sha256_of("a"));
  CHECK(got->confirmed_at == 100);
  CHECK_FALSE(memo.load("ghcr.io", "library/alpine", "3.19"));
  CHECK_FALSE(memo.load("docker.io", "library/alpine", "3.20"));
  // Names that would run together without a separator stay apart.
  memo.remember("docker.io", "a/b", "c", {sha256_of("x"), 1});
  CHECK_FALSE(memo.load("docker.io", "a", "b/c"));

  memo.remember("docker.io", "library/alpine", "3.19", {sha256_of("b"), 200});
  got = memo.load("docker.io", "library/alpine", "3.19");
  REQUIRE(got);
  CHECK(got->digest == sha256_of("b"));
  CHECK(got->confirmed_at == 200);
  CHECK(memo.size() == 2);
}

TEST_CASE("tag memo: stays within its bound by starting over, and keeps the newest mapping") {
  TagMemo memo(2);
  memo.remember("u", "r", "t1", {sha256_of("1"), 1});
  memo.remember("u", "r", "t2", {sha256_of("2"), 2});
  memo.remember("u", "r", "t2", {sha256_of("2b"), 3});  // a replacement does not count as growth
  CHECK(memo.size() == 2);
  memo.remember("u", "r", "t3", {sha256_of("3"), 4});
  CHECK(memo.size() == 1);
  CHECK(memo.load("u", "r", "t3"));
  CHECK_FALSE(memo.load("u", "r", "t1"));
}
