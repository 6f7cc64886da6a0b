// Unit tests for repository names and tags (common/names.h).
#include <doctest/doctest.h>

#include <string>

#include "common/digest.h"
#include "common/names.h"

using regcache::Digest;
using regcache::Reference;
using regcache::RepoName;
using regcache::valid_tag;

TEST_CASE("names: RepoName::parse accepts names of the OCI grammar") {
  for (const std::string name : {"a", "0", "library/busybox", "a.b_c__d-e--f/g", "a-b", "a---b", "a__b", "a_b",
                                 "a.b", "a/b/c/d/e", "ghcr.io0/x", "9/8/7"}) {
    CAPTURE(name);
    auto parsed = RepoName::parse(name);
    REQUIRE(parsed.has_value());
    CHECK(parsed->str() == name);
  }
}

TEST_CASE("names: RepoName::parse accepts exactly 255 characters") {
  std::string single(255, 'a');
  REQUIRE(RepoName::parse(single));
  CHECK(RepoName::parse(single)->str() == single);

  // 127 * "ab/" is 381 chars; build a 255-char multi-component name instead.
  std::string multi;
  while (multi.size() + 2 <= 253) multi += "a/";  // 252 chars, ends in '/'
  multi += "bcd";                                   // 255
  REQUIRE(multi.size() == 255);
  CHECK(RepoName::parse(multi));
}

TEST_CASE("names: RepoName::parse rejects names outside the grammar") {
  for (const std::string name : {"", "A", "Library/busybox", "a/", "/a", "a//b", "a..b", "a___b", "-a", "a-",
                                 "_a", "a_", ".a", "a.", "../etc", "a/../b", "a/./b", "a.-b", "a-.b", "a_-b", "a b",
                                 "a:b", "a@b", "a\\b", "/", "a/-b", "a/b-"}) {
    CAPTURE(name);
    CHECK_FALSE(RepoName::parse(name));
  }
}

TEST_CASE("names: RepoName::parse rejects 256 characters") {
  CHECK_FALSE(RepoName::parse(std::string(256, 'a')));
  std::string multi(127, 'a');
  multi += "/" + std::string(128, 'b');  // 256 chars, each component fine
  REQUIRE(multi.size() == 256);
  CHECK_FALSE(RepoName::parse(multi));
}

TEST_CASE("names: valid_tag") {
  CHECK(valid_tag("latest"));
  CHECK(valid_tag("v1.0_rc-1"));
  CHECK(valid_tag("_private"));
  CHECK(valid_tag("UPPER-case.Tag"));
  CHECK(valid_tag("1"));
  CHECK(valid_tag(std::string(128, 'a')));
  CHECK(valid_tag("a" + std::string(127, '.')));

  CHECK_FALSE(valid_tag(""));
  CHECK_FALSE(valid_tag(std::string(129, 'a')));
  CHECK_FALSE(valid_tag(".hidden"));
  CHECK_FALSE(valid_tag("-flag"));
  CHECK_FALSE(valid_tag("a/b"));
  CHECK_FALSE(valid_tag("a:b"));
  CHECK_FALSE(valid_tag("a b"));
  CHECK_FALSE(valid_tag("a@b"));
  CHECK_FALSE(valid_tag("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

TEST_CASE("names: Reference holds a tag or a digest") {
  auto tag = Reference::tag("v1");
  CHECK_FALSE(tag.is_digest());
  CHECK(tag.as_tag() == "v1");
  CHECK(tag.str() == "v1");

  auto d = Digest::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  REQUIRE(d);
  auto dig = Reference::digest(*d);
  CHECK(dig.is_digest());
  CHECK(dig.as_digest() == *d);
  CHECK(dig.str() == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
