// regcache in front of upstreams that want credentials: htpasswd Basic auth, and the
// Docker token (Bearer) flow with a token server.
#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "support/checks.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"
#include "support/token_server.h"
#include "support/upstream_registry.h"

using namespace regcache::test;

namespace {

void check_oci_unauthorized(const HttpResponse& response) {
  CHECK_MESSAGE(response.status == 401, response.summary() << " " << response.body);
  auto body = nlohmann::json::parse(response.body, nullptr, false);
  REQUIRE_MESSAGE(body.is_object(), "not JSON: " << response.body);
  REQUIRE(body.contains("errors"));
  REQUIRE(body["errors"].is_array());
  REQUIRE_FALSE(body["errors"].empty());
  CHECK(body["errors"][0].value("code", "") == "UNAUTHORIZED");
}

}  // namespace

TEST_CASE("upstream auth: Basic (htpasswd) upstream works with configured credentials and gives 401 without") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"), {UpstreamAuth::basic, "alice", "s3cret", nullptr});
  auto image = make_oci_image(tmp / "image", "v1", {512 * 1024, 128 * 1024});
  REQUIRE_SKOPEO_OK(
      skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "test/basic:v1", upstream.credentials()));

  {
    RegcacheServer regcache(tmp / "with-creds",
                            {upstream.url(), regcache_config("http://placeholder.invalid", "alice", "s3cret"), {}});
    REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "test/basic:v1", tmp / "out", "v1"));
    check_layout_matches(image, tmp / "out", "v1");
  }

  RegcacheServer anonymous(tmp / "no-creds", {upstream.url(), regcache_config("http://placeholder.invalid"), {}});
  check_oci_unauthorized(
      http_request("GET", anonymous.url() + "/v2/test/basic/manifests/v1", manifest_accept_headers()));
  check_oci_unauthorized(http_request("GET", anonymous.url() + "/v2/test/basic/blobs/" + image.blobs()[0].digest));
  CHECK(skopeo_pull(tmp.path(), anonymous.host(), "test/basic:v1", tmp / "out-anon", "v1").exit_code != 0);
}

TEST_CASE("upstream auth: token (Bearer) upstream works with configured credentials and tokens are reused") {
  TempDir tmp;
  TokenServer tokens(tmp.subdir("token"), {"bob", "hunter2", true, "test-registry", "test-issuer"});
  UpstreamRegistry upstream(tmp.subdir("upstream"), {UpstreamAuth::token, "", "", &tokens});
  auto image = make_oci_image(tmp / "image", "v1", {512 * 1024, 256 * 1024, 128 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "test/token:v1", "bob:hunter2"));

  const std::size_t before = tokens.request_count();
  RegcacheServer regcache(tmp / "regcache",
                          {upstream.url(), regcache_config("http://placeholder.invalid", "bob", "hunter2"), {}});
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "test/token:v1", tmp / "out", "v1"));
  check_layout_matches(image, tmp / "out", "v1");

  // One repository was pulled (manifest + config + 3 layers = 5 upstream fetches): a token
  // per repository, plus at most one more (e.g. for the /v2/ ping), not one per request.
  const auto all = tokens.requests();
  const std::size_t used = all.size() - before;
  CHECK_MESSAGE(used >= 1, "regcache never asked the token server");
  CHECK_MESSAGE(used <= 2, "token requests during one pull: " << used);
  bool pull_scope = false;
  for (std::size_t i = before; i < all.size(); ++i) {
    CHECK_MESSAGE(all[i].status == 200, "token request answered " << all[i].status << " (account '"
                                                                   << all[i].account << "')");
    for (const auto& scope : all[i].scopes) pull_scope = pull_scope || scope.find("repository:test/token:") == 0;
  }
  CHECK(pull_scope);

  // Without credentials the token server refuses, and regcache says UNAUTHORIZED.
  RegcacheServer anonymous(tmp / "no-creds", {upstream.url(), regcache_config("http://placeholder.invalid"), {}});
  check_oci_unauthorized(
      http_request("GET", anonymous.url() + "/v2/test/token/manifests/v1", manifest_accept_headers()));
}
