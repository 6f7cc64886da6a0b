// Unit tests for the pull-through cache's pure decisions (cache/policy.h).
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "cache/policy.h"
#include "common/error.h"

using namespace regcache::cache;
using regcache::ErrorCode;
using regcache::RegistryError;
using std::chrono::seconds;

namespace {

constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";

}  // namespace

// --- AcceptList ----------------------------------------------------------------

TEST_CASE("policy: an empty AcceptList accepts everything") {
  AcceptList accept;
  CHECK(accept.values().empty());
  CHECK(accept.accepts(kOciManifest));
  CHECK(accept.accepts("text/plain"));
  CHECK(accept.key() == "");

  accept.add_header("");  // an empty Accept line adds nothing
  accept.add_header(" , ,");
  CHECK(accept.values().empty());
  CHECK(accept.accepts(kDockerManifest));
}

TEST_CASE("policy: AcceptList collects separate lines and comma lists and drops parameters") {
  AcceptList accept;
  accept.add_header(kOciManifest);
  accept.add_header(std::string(kDockerManifest) + "; q=0.9, " + kOciIndex + ";q=0.5");
  accept.add_header("  Application/VND.Docker.Distribution.Manifest.List.V2+JSON ;charset=x  ");

  CHECK(accept.values() == std::vector<std::string>{kOciManifest, kDockerManifest, kOciIndex, kDockerList});
  CHECK(accept.accepts(kOciManifest));
  CHECK(accept.accepts(kDockerManifest));
  CHECK(accept.accepts(kOciIndex));
  CHECK(accept.accepts(kDockerList));
  CHECK(accept.accepts("APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON"));          // media types are case-insensitive
  CHECK(accept.accepts(std::string(kOciManifest) + "; charset=utf-8"));      // parameters of the type are ignored
  CHECK_FALSE(accept.accepts("application/vnd.docker.distribution.manifest.v1+prettyjws"));
  CHECK_FALSE(accept.accepts("application/json"));
  CHECK_FALSE(accept.accepts(""));
}

TEST_CASE("policy: AcceptList wildcards") {
  AcceptList any;
  any.add_header("application/json, */*;q=0.1");
  CHECK(any.accepts("text/plain"));
  CHECK(any.accepts(kDockerManifest));

  AcceptList app;
  app.add_header("application/*");
  CHECK(app.accepts(kOciManifest));
  CHECK(app.accepts("application/json"));
  CHECK_FALSE(app.accepts("text/plain"));
  CHECK_FALSE(app.accepts("applicationx/json"));  // the type must match whole
  CHECK_FALSE(app.accepts("application"));
}

TEST_CASE("policy: AcceptList::key is independent of order and line splitting") {
  AcceptList a;
  a.add_header(kOciManifest);
  a.add_header(kDockerManifest);
  AcceptList b;
  b.add_header(std::string(kDockerManifest) + ", " + kOciManifest + ";q=1");
  AcceptList c;
  c.add_header(kOciIndex);

  CHECK(a.key() == b.key());
  CHECK_FALSE(a.key() == c.key());
  CHECK_FALSE(a.key() == AcceptList().key());
  // The values keep their arrival order; only the key is sorted.
  CHECK(a.values() == std::vector<std::string>{kOciManifest, kDockerManifest});
  CHECK(b.values() == std::vector<std::string>{kDockerManifest, kOciManifest});
}

// --- decide_tag ----------------------------------------------------------------

TEST_CASE("policy: decide_tag truth table") {
  const std::int64_t now = 1'000'000;
  const seconds ttl{60};

  // Unknown tag: fetch, whatever else holds.
  CHECK(decide_tag(std::nullopt, true, now, ttl) == TagAction::Fetch);
  CHECK(decide_tag(std::nullopt, false, now, ttl) == TagAction::Fetch);
  // Known but the content is missing or not acceptable: fetch, fresh or not.
  CHECK(decide_tag(now, false, now, ttl) == TagAction::Fetch);
  CHECK(decide_tag(now - 3600, false, now, ttl) == TagAction::Fetch);
  // Fresh: serve locally.
  CHECK(decide_tag(now, true, now, ttl) == TagAction::ServeLocal);
  CHECK(decide_tag(now - 59, true, now, ttl) == TagAction::ServeLocal);
  // Exactly the TTL old, or older: revalidate.
  CHECK(decide_tag(now - 60, true, now, ttl) == TagAction::Revalidate);
  CHECK(decide_tag(now - 61, true, now, ttl) == TagAction::Revalidate);
  CHECK(decide_tag(0, true, now, ttl) == TagAction::Revalidate);
}

TEST_CASE("policy: decide_tag with ttl 0 always revalidates") {
  const std::int64_t now = 1'000'000;
  CHECK(decide_tag(now, true, now, seconds{0}) == TagAction::Revalidate);
  CHECK(decide_tag(now - 1, true, now, seconds{0}) == TagAction::Revalidate);
  CHECK(decide_tag(now, false, now, seconds{0}) == TagAction::Fetch);
  CHECK(decide_tag(std::nullopt, true, now, seconds{0}) == TagAction::Fetch);
}

// confirmed_at comes from the wall clock (std::time). When the clock steps back,
// a confirmation can lie in the future; "0 = always revalidate" must still hold,
// and a TTL must not stretch by the size of the step.
TEST_CASE("policy: decide_tag does not treat a confirmation from the future as fresh") {
  const std::int64_t now = 1'000'000;
  CHECK(decide_tag(now + 5, true, now, seconds{0}) == TagAction::Revalidate);
  CHECK(decide_tag(now + 3600, true, now, seconds{60}) == TagAction::Revalidate);
}

// --- upstream_status_error ------------------------------------------------------

namespace {

void check_error(const RegistryError& e, ErrorCode code, int status) {
  CHECK(e.code() == code);
  CHECK(regcache::error_info(e.code()).http_status == status);
}

}  // namespace

TEST_CASE("policy: upstream 401 and 403 map to UNAUTHORIZED and DENIED") {
  for (auto kind : {ObjectKind::Manifest, ObjectKind::Blob, ObjectKind::TagList}) {
    check_error(upstream_status_error(401, kind, "hub", ""), ErrorCode::Unauthorized, 401);
    check_error(upstream_status_error(403, kind, "hub", ""), ErrorCode::Denied, 403);
  }
}

TEST_CASE("policy: upstream 404 maps per object kind") {
  check_error(upstream_status_error(404, ObjectKind::Manifest, "hub", ""), ErrorCode::ManifestUnknown, 404);
  check_error(upstream_status_error(404, ObjectKind::Blob, "hub", ""), ErrorCode::BlobUnknown, 404);
  check_error(upstream_status_error(404, ObjectKind::TagList, "hub", ""), ErrorCode::NameUnknown, 404);
}

TEST_CASE("policy: upstream 429 maps to TOOMANYREQUESTS and carries Retry-After") {
  auto with = upstream_status_error(429, ObjectKind::Blob, "hub", "30");
  check_error(with, ErrorCode::TooManyRequests, 429);
  REQUIRE(with.retry_after.has_value());
  CHECK(*with.retry_after == "30");

  auto without = upstream_status_error(429, ObjectKind::Manifest, "hub", "");
  check_error(without, ErrorCode::TooManyRequests, 429);
  CHECK_FALSE(without.retry_after.has_value());
}

TEST_CASE("policy: other upstream statuses map to a 502 naming the upstream and status") {
  for (int status : {500, 502, 503, 400, 418}) {
    CAPTURE(status);
    auto e = upstream_status_error(status, ObjectKind::Manifest, "quay", "");
    check_error(e, ErrorCode::UpstreamInvalid, 502);
    std::string what = e.what();
    CHECK(what.find("quay") != std::string::npos);
    CHECK(what.find(std::to_string(status)) != std::string::npos);
    CHECK_FALSE(e.retry_after.has_value());
  }
}

TEST_CASE("policy: upstream error messages name the upstream") {
  std::string what = upstream_status_error(404, ObjectKind::Blob, "my-upstream", "").what();
  CHECK(what.find("my-upstream") != std::string::npos);
  CHECK(what.find("404") != std::string::npos);
}

// --- may_serve_stale ------------------------------------------------------------

TEST_CASE("policy: may_serve_stale on overload and server errors only") {
  CHECK(may_serve_stale(429));
  CHECK(may_serve_stale(500));
  CHECK(may_serve_stale(502));
  CHECK(may_serve_stale(503));
  CHECK(may_serve_stale(504));
  CHECK_FALSE(may_serve_stale(200));
  CHECK_FALSE(may_serve_stale(401));
  CHECK_FALSE(may_serve_stale(403));
  CHECK_FALSE(may_serve_stale(404));
  CHECK_FALSE(may_serve_stale(400));
}

// --- sniff_manifest_media_type ----------------------------------------------------

TEST_CASE("policy: sniff_manifest_media_type") {
  CHECK(sniff_manifest_media_type(R"({"schemaVersion":2,"mediaType":")" + std::string(kDockerManifest) +
                                  R"(","config":{},"layers":[]})") == kDockerManifest);
  CHECK(sniff_manifest_media_type(R"({"schemaVersion":2,"mediaType":")" + std::string(kDockerList) +
                                  R"(","manifests":[]})") == kDockerList);
  // No mediaType: an index when it lists manifests, else an image manifest.
  CHECK(sniff_manifest_media_type(R"({"schemaVersion":2,"manifests":[]})") == kOciIndex);
  CHECK(sniff_manifest_media_type(R"({"schemaVersion":2,"config":{},"layers":[]})") == kOciManifest);
  // A mediaType that is not a string is ignored.
  CHECK(sniff_manifest_media_type(R"({"mediaType":5,"layers":[]})") == kOciManifest);
  CHECK(sniff_manifest_media_type(R"({"mediaType":null,"manifests":[]})") == kOciIndex);
  // A mediaType that must not become a Content-Type is ignored too.
  CHECK(sniff_manifest_media_type(R"({"mediaType":"text/html","manifests":[]})") == kOciIndex);
  CHECK(sniff_manifest_media_type(R"({"mediaType":"application/vnd.x
Set-Cookie: a=1","layers":[]})") ==
        kOciManifest);
  // Not JSON, or not an object.
  CHECK(sniff_manifest_media_type("not json") == kOciManifest);
  CHECK(sniff_manifest_media_type("") == kOciManifest);
  CHECK(sniff_manifest_media_type("[1,2]") == kOciManifest);
}

TEST_CASE("policy: next_page_query takes the query of the rel=next target of a Link header") {
  CHECK(next_page_query(R"(</v2/library/alpine/tags/list?last=3.19&n=2>; rel="next")") == "last=3.19&n=2");
  CHECK(next_page_query(R"(<https://ghcr.io/v2/o/r/tags/list?n=100&last=v1>;rel=next)") == "n=100&last=v1");
  CHECK(next_page_query(R"(</v2/x/tags/list?n=1&last=a>; rel="prev", </v2/x/tags/list?n=1&last=c>; REL="Next")") ==
        "n=1&last=c");
  CHECK(next_page_query(R"(</v2/x/tags/list?n=1&last=a,b>; title="x"; rel="next")") == "n=1&last=a,b");
  CHECK(next_page_query(R"(</v2/x/tags/list?n=1&last=a#frag>; rel="next")") == "n=1&last=a");
  CHECK(next_page_query("").empty());
  CHECK(next_page_query(R"(</v2/x/tags/list?n=1&last=a>; rel="prev")").empty());
  CHECK(next_page_query(R"(</v2/x/tags/list?n=1&last=a>; rel="nextpage")").empty());
  CHECK(next_page_query(R"(</v2/x/tags/list>; rel="next")").empty());  // nothing to page with
  CHECK(next_page_query(R"(</v2/x/tags/list?n=1; rel="next")").empty());  // unterminated
}
