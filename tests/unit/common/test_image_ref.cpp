// Unit tests for the offline-mirror reference syntax (common/image_ref.h).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/image_ref.h"

using namespace regcache;

namespace {

ImageRef parse_ok(const std::string& text) {
  std::string error;
  auto ref = parse_image_ref(text, error);
  INFO(text << ": " << error);
  REQUIRE(ref.has_value());
  return *ref;
}

std::string parse_error(const std::string& text) {
  std::string error;
  auto ref = parse_image_ref(text, error);
  CHECK_FALSE(ref.has_value());
  return error;
}

const std::string kHex = "2d1e7e8a2ee49c0f4f7cbd5d4ee2ad7a91b1f7c2b7a49c5d3a4f2d1e7e8a2ee4";

}  // namespace

TEST_CASE("image_ref: a tag on a named registry") {
  auto r = parse_ok("docker.io/library/alpine:3.19");
  CHECK(r.registry == "docker.io");
  CHECK(r.repository == "library/alpine");
  CHECK(r.tag == "3.19");
  CHECK_FALSE(r.digest);
  CHECK_FALSE(r.expands());
  CHECK(r.str() == "docker.io/library/alpine:3.19");
}

TEST_CASE("image_ref: Docker Hub aliases and one-component names become docker.io/library/...") {
  CHECK(parse_ok("docker.io/alpine:3.19").repository == "library/alpine");
  CHECK(parse_ok("index.docker.io/alpine").registry == "docker.io");
  CHECK(parse_ok("registry-1.docker.io/org/app:1").repository == "org/app");
}

TEST_CASE("image_ref: a digest, with or without a tag before it") {
  auto r = parse_ok("ghcr.io/org/app@sha256:" + kHex);
  CHECK(r.registry == "ghcr.io");
  CHECK(r.repository == "org/app");
  REQUIRE(r.digest);
  CHECK(r.digest->hex() == kHex);
  CHECK(r.tag.empty());
  CHECK(parse_ok("ghcr.io/org/app:v1@sha256:" + kHex).digest);
  CHECK(r.str() == "ghcr.io/org/app@sha256:" + kHex);
}

TEST_CASE("image_ref: every tag and globs") {
  auto all = parse_ok("quay.io/org/app:*");
  CHECK(all.expands());
  CHECK(all.tag_pattern == "*");
  CHECK(all.str() == "quay.io/org/app:*");
  auto glob = parse_ok("quay.io/org/app:v1.*");
  CHECK(glob.tag_pattern == "v1.*");
  CHECK(parse_ok("quay.io/org/app:v?").tag_pattern == "v?");
}

TEST_CASE("image_ref: registry ports, localhost, names without a registry, default tag") {
  auto port = parse_ok("127.0.0.1:5001/test/app:v2");
  CHECK(port.registry == "127.0.0.1:5001");
  CHECK(port.repository == "test/app");
  CHECK(port.tag == "v2");
  CHECK(parse_ok("localhost/app").registry == "localhost");
  auto plain = parse_ok("upstream/test/app");
  CHECK(plain.registry.empty());
  CHECK(plain.repository == "upstream/test/app");
  CHECK(plain.tag == "latest");
  CHECK(parse_ok("  alpine:3  ").repository == "alpine");  // no registry: no library/ guess
}

TEST_CASE("image_ref: malformed references are refused with a reason") {
  CHECK(parse_error("").find("empty") != std::string::npos);
  CHECK(parse_error("docker.io/Library/alpine:1").find("repository") != std::string::npos);
  CHECK(parse_error("alpine@sha256:abc").find("digest") != std::string::npos);
  CHECK(parse_error("alpine:-bad").find("tag") != std::string::npos);
  CHECK(parse_error("alpine:v[1]*").find("pattern") != std::string::npos);
  CHECK(parse_error("docker.io/").find("repository") != std::string::npos);
}

TEST_CASE("image_ref: reference lists skip comments and blank lines") {
  auto lines = read_reference_lines("# lab images\n docker.io/library/alpine:3.19  # small\n\n\tquay.io/org/app:*\n#x\n");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "docker.io/library/alpine:3.19");
  CHECK(lines[1] == "quay.io/org/app:*");
}

TEST_CASE("image_ref: glob_match") {
  CHECK(glob_match("*", ""));
  CHECK(glob_match("*", "anything"));
  CHECK(glob_match("v1.*", "v1.2.3"));
  CHECK_FALSE(glob_match("v1.*", "v10.0"));
  CHECK(glob_match("v?.0", "v2.0"));
  CHECK_FALSE(glob_match("v?.0", "v10.0"));
  CHECK(glob_match("*-alpine", "3.19-alpine"));
  CHECK(glob_match("a*b*c", "aXbYbZc"));
  CHECK_FALSE(glob_match("a*b*c", "aXbYbZ"));
  CHECK(glob_match("docker.io/*", "docker.io/library/alpine"));
}

TEST_CASE("image_ref: version order puts v1.10 after v1.9 and newest keeps the last N") {
  CHECK(compare_tag_versions("v1.9", "v1.10") < 0);
  CHECK(compare_tag_versions("1.2.10", "1.2.9") > 0);
  CHECK(compare_tag_versions("v01", "v1") != 0);  // ties broken by bytes: a total order
  CHECK(compare_tag_versions("a", "a") == 0);
  std::vector<std::string> tags = {"v1.10", "latest", "v1.9", "v2.0", "v1.2", "other"};
  CHECK(select_tags(tags, "v*", 2) == std::vector<std::string>{"v1.10", "v2.0"});
  CHECK(select_tags(tags, "v1.*", 0) == std::vector<std::string>{"v1.2", "v1.9", "v1.10"});
  CHECK(select_tags(tags, "*", 0).size() == tags.size());
  CHECK(select_tags(tags, "nope*", 3).empty());
}

TEST_CASE("image_ref: platforms parse and match, variants included") {
  std::string error;
  auto list = parse_platforms("linux/amd64, linux/arm64/v8", error);
  REQUIRE(list);
  REQUIRE(list->size() == 2);
  CHECK((*list)[1] == Platform{"linux", "arm64", "v8"});
  CHECK_FALSE(parse_platforms("linux", error));
  CHECK(error.find("linux") != std::string::npos);
  CHECK_FALSE(parse_platforms("linux/amd64/v1/x", error));
  CHECK(parse_platforms("", error)->empty());

  CHECK(platform_wanted({"linux", "amd64", ""}, {}));
  CHECK(platform_wanted({"linux", "arm", "v7"}, {{"linux", "arm", ""}}));
  CHECK_FALSE(platform_wanted({"linux", "arm", "v6"}, {{"linux", "arm", "v7"}}));
  CHECK(platform_wanted({"linux", "arm64", ""}, {{"linux", "arm64", "v8"}}));
  CHECK_FALSE(platform_wanted({"windows", "amd64", ""}, {{"linux", "amd64", ""}}));
}
