// Paged lists through the cache: an upstream that pages tags/list with Link
// headers (here another regcache serving a hosted repository, as ghcr.io or a
// private registry would; Debian's docker-registry ignores n and last) is
// mirrored with its paging intact, rewritten to the client's own path and routing.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "support/checks.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"

using namespace regcache::test;

namespace {

// Tags a, b, c, d and v1 of local/app on `upstream`, all naming one small image.
void fill_upstream(const TempDir& tmp, const RegcacheServer& upstream) {
  auto image = make_oci_image(tmp / "image", "v1", {64 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "local/app:v1"));
  auto manifest = http_request("GET", upstream.url() + "/v2/local/app/manifests/v1", manifest_accept_headers());
  REQUIRE(manifest.status == 200);
  for (const char* tag : {"a", "b", "c", "d"}) {
    auto put = http_request("PUT", upstream.url() + "/v2/local/app/manifests/" + tag,
                            {{"Content-Type", manifest.header("Content-Type")}}, manifest.body);
    REQUIRE(put.status == 201);
  }
}

// Pushes to `upstream` an artifact (a manifest with `subject`) of `artifact_type`; returns its digest.
std::string push_referrer(const RegcacheServer& upstream, const std::string& subject_digest, std::size_t subject_size,
                          const std::string& subject_type, const std::string& artifact_type) {
  const std::string config = "{}";
  const std::string config_digest = sha256_digest(config);
  auto blob = http_request("POST", upstream.url() + "/v2/local/app/blobs/uploads/?digest=" + config_digest,
                           {{"Content-Type", "application/octet-stream"}}, config);
  REQUIRE(blob.status == 201);
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"artifactType", artifact_type},
      {"config", {{"mediaType", "application/vnd.oci.empty.v1+json"}, {"digest", config_digest}, {"size", 2}}},
      {"layers", {{{"mediaType", "application/vnd.oci.empty.v1+json"}, {"digest", config_digest}, {"size", 2}}}},
      {"subject", {{"mediaType", subject_type}, {"digest", subject_digest}, {"size", subject_size}}}};
  std::string body = manifest.dump();
  std::string digest = sha256_digest(body);
  auto put = http_request("PUT", upstream.url() + "/v2/local/app/manifests/" + digest,
                          {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}, body);
  REQUIRE(put.status == 201);
  return digest;
}

// The URL a Link header value points to, on `base`.
std::string link_target(const std::string& base, const std::string& link) {
  auto open = link.find('<'), close = link.find('>');
  REQUIRE(open != std::string::npos);
  REQUIRE(close != std::string::npos);
  return base + link.substr(open + 1, close - open - 1);
}

}  // namespace

TEST_CASE("mirrored lists: a paged upstream tag list keeps its Link pages through the cache, by default, ns and path routing") {
  TempDir tmp("regcache-it-paging");
  RegcacheServer upstream(tmp / "upstream", {"none", std::nullopt, {}});
  fill_upstream(tmp, upstream);

  nlohmann::json config = {{"upstreams", {{{"name", "teamreg"}, {"url", upstream.url()}, {"tag_ttl_s", 3600}}}},
                           {"default_upstream", "teamreg"},
                           {"hosted", nlohmann::json::array()}};
  RegcacheServer mirror(tmp / "mirror", {upstream.url(), config, {}});

  struct Route {
    std::string first;   // path and query of the first page
    std::string suffix;  // what every next link must carry beyond n and last
    std::string path;    // the path every page link must keep
  };
  for (const Route& route : {Route{"/v2/local/app/tags/list?n=2", "", "/v2/local/app/tags/list"},
                             Route{"/v2/local/app/tags/list?n=2&ns=teamreg", "&ns=teamreg", "/v2/local/app/tags/list"},
                             Route{"/v2/teamreg/local/app/tags/list?n=2", "", "/v2/teamreg/local/app/tags/list"}}) {
    CAPTURE(route.first);
    // Twice: the first time from the upstream, the second from what the mirror kept.
    for (std::string expected_status : {"miss", "hit"}) {
      CAPTURE(expected_status);
      std::string url = mirror.url() + route.first;
      std::vector<std::string> pages;
      for (int i = 0; i < 5 && !url.empty(); ++i) {
        auto page = http_request("GET", url);
        REQUIRE(page.status == 200);
        if (route.first.find("ns=") == std::string::npos && route.first.find("/teamreg/") == std::string::npos)
          CHECK(page.header("X-Cache-Status") == expected_status);
        auto tags = nlohmann::json::parse(page.body)["tags"];
        pages.push_back(tags.dump());
        std::string link = page.header("Link");
        if (link.empty()) {
          url.clear();
          break;
        }
        CHECK(link.find("; rel=\"next\"") != std::string::npos);
        CHECK(link.find("<" + route.path + "?") == 0);
        CHECK(link.find("n=2") != std::string::npos);
        if (!route.suffix.empty()) CHECK(link.find(route.suffix) != std::string::npos);
        url = link_target(mirror.url(), link);
      }
      CHECK(url.empty());  // the last page had no Link
      CHECK(pages == std::vector<std::string>{R"(["a","b"])", R"(["c","d"])", R"(["v1"])"});
    }
  }
  // Without n the upstream sends everything and no Link.
  auto all = http_request("GET", mirror.url() + "/v2/local/app/tags/list");
  REQUIRE(all.status == 200);
  CHECK(nlohmann::json::parse(all.body)["tags"].size() == 5);
  CHECK_FALSE(all.has_header("Link"));
}

TEST_CASE("mirrored lists: an upstream's referrers filter is reported through the cache, and kept with the index") {
  TempDir tmp("regcache-it-referrers");
  RegcacheServer upstream(tmp / "upstream", {"none", std::nullopt, {}});
  fill_upstream(tmp, upstream);
  auto subject = http_request("GET", upstream.url() + "/v2/local/app/manifests/v1", manifest_accept_headers());
  REQUIRE(subject.status == 200);
  const std::string subject_digest = sha256_digest(subject.body);
  const std::string sig = push_referrer(upstream, subject_digest, subject.body.size(), subject.header("Content-Type"),
                                        "application/vnd.example.signature");
  const std::string sbom = push_referrer(upstream, subject_digest, subject.body.size(), subject.header("Content-Type"),
                                         "application/vnd.example.sbom");

  nlohmann::json config = {{"upstreams", {{{"name", "teamreg"}, {"url", upstream.url()}, {"tag_ttl_s", 3600}}}},
                           {"default_upstream", "teamreg"},
                           {"hosted", nlohmann::json::array()}};
  RegcacheServer mirror(tmp / "mirror", {upstream.url(), config, {}});
  const std::string base = mirror.url() + "/v2/local/app/referrers/" + subject_digest;
  for (std::string expected_status : {"miss", "hit"}) {
    CAPTURE(expected_status);
    auto filtered = http_request("GET", base + "?artifactType=application/vnd.example.signature");
    REQUIRE(filtered.status == 200);
    CHECK(filtered.header("X-Cache-Status") == expected_status);
    CHECK(filtered.header("OCI-Filters-Applied") == "artifactType");
    auto manifests = nlohmann::json::parse(filtered.body)["manifests"];
    REQUIRE(manifests.size() == 1);
    CHECK(manifests[0]["digest"] == sig);

    auto all = http_request("GET", base);
    REQUIRE(all.status == 200);
    CHECK(all.header("X-Cache-Status") == expected_status);
    CHECK_FALSE(all.has_header("OCI-Filters-Applied"));
    std::set<std::string> digests;
    auto index = nlohmann::json::parse(all.body);
    for (const auto& m : index["manifests"]) digests.insert(m["digest"].get<std::string>());
    CHECK(digests == std::set<std::string>{sig, sbom});
  }
}
