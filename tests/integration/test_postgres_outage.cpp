// PostgreSQL as the metadata store going away while regcache serves (issue
// 17): requests that need the database get a clear 503 UNAVAILABLE, /readyz
// names the database, nothing is half-written, and service resumes when the
// server is back, without restarting regcache. Runs under the `postgres`
// label (REGCACHE_TEST_METADATA=postgres) with a cluster of its own, since it
// kills it.
#include <doctest/doctest.h>

#include <string>

#include "support/files.h"
#include "support/http_client.h"
#include "support/postgres_cluster.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;

namespace {

// A monolithic blob upload; returns the status.
int push_blob(const std::string& url, const std::string& repo, const std::string& bytes) {
  return http_request("POST", url + "/v2/" + repo + "/blobs/uploads/?digest=" + sha256_digest(bytes),
                      {{"Content-Type", "application/octet-stream"}}, bytes)
      .status;
}

std::string manifest_for(const std::string& config, const std::string& layer) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
         sha256_digest(config) + R"(","size":)" + std::to_string(config.size()) +
         R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + sha256_digest(layer) +
         R"(","size":)" + std::to_string(layer.size()) + "}]}";
}

HttpResponse put_manifest(const std::string& url, const std::string& repo, const std::string& ref,
                          const std::string& manifest) {
  return http_request("PUT", url + "/v2/" + repo + "/manifests/" + ref,
                      {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}, manifest);
}

}  // namespace

TEST_CASE("postgres outage: 503 UNAVAILABLE while the database is down, nothing half-written, service resumes") {
  if (!metadata_is_postgres()) {
    MESSAGE("skipped: runs under the postgres label (REGCACHE_TEST_METADATA=postgres)");
    return;
  }
  TempDir tmp("regcache-it-pg-outage");
  PostgresCluster pg;
  std::string database = pg.create_database("outage");
  nlohmann::json config = {{"metadata", {{"backend", "postgres"}, {"dsn", pg.dsn(database)}}}};
  // An upstream that must never be asked: the port has no listener; local/ is hosted.
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", config, {}});
  const std::string url = regcache.url();

  const std::string config1 = R"({"architecture":"amd64","os":"linux","n":1})", layer1 = "layer one";
  REQUIRE(push_blob(url, "local/app", config1) == 201);
  REQUIRE(push_blob(url, "local/app", layer1) == 201);
  REQUIRE(put_manifest(url, "local/app", "v1", manifest_for(config1, layer1)).status == 201);
  REQUIRE(http_request("GET", url + "/readyz").status == 200);

  pg.kill_server();

  // Writes and reads that need the database: a clear 503 with OCI error JSON.
  const std::string config2 = R"({"architecture":"amd64","os":"linux","n":2})", layer2 = "layer two";
  auto blob = http_request("POST", url + "/v2/local/app/blobs/uploads/?digest=" + sha256_digest(layer2),
                           {{"Content-Type", "application/octet-stream"}}, layer2);
  CHECK_MESSAGE(blob.status == 503, blob.summary() + " " + blob.body);
  CHECK(blob.body.find("\"UNAVAILABLE\"") != std::string::npos);
  auto put = put_manifest(url, "local/app", "v2", manifest_for(config1, layer1));
  CHECK_MESSAGE(put.status == 503, put.summary() + " " + put.body);
  CHECK(put.body.find("\"UNAVAILABLE\"") != std::string::npos);
  auto tags = http_request("GET", url + "/v2/local/app/tags/list");
  CHECK_MESSAGE(tags.status == 503, tags.summary() + " " + tags.body);
  auto start = http_request("POST", url + "/v2/local/app/blobs/uploads/");
  CHECK_MESSAGE(start.status == 503, start.summary() + " " + start.body);
  auto ready = http_request("GET", url + "/readyz");
  CHECK(ready.status == 503);
  CHECK(ready.body.find("database") != std::string::npos);
  CHECK(http_request("GET", url + "/healthz").status == 200);  // alive, just not ready
  CHECK(regcache.alive());

  pg.start();
  // Back without a restart of regcache.
  CHECK(wait_until([&] { return http_request("GET", url + "/readyz").status == 200; }, std::chrono::seconds(30)));
  // Nothing of the refused push is there.
  CHECK(http_request("GET", url + "/v2/local/app/manifests/v2", manifest_accept_headers()).status == 404);
  CHECK(http_request("HEAD", url + "/v2/local/app/blobs/" + sha256_digest(layer2)).status == 404);
  // And writes work again.
  REQUIRE(push_blob(url, "local/app", config2) == 201);
  REQUIRE(push_blob(url, "local/app", layer2) == 201);
  auto again = put_manifest(url, "local/app", "v2", manifest_for(config2, layer2));
  CHECK_MESSAGE(again.status == 201, again.summary() + " " + again.body);
  CHECK(http_request("GET", url + "/v2/local/app/manifests/v1", manifest_accept_headers()).status == 200);
  CHECK(http_request("GET", url + "/v2/local/app/manifests/v2", manifest_accept_headers()).status == 200);
  auto list = http_request("GET", url + "/v2/local/app/tags/list");
  CHECK(list.status == 200);
  CHECK(list.body == R"({"name":"local/app","tags":["v1","v2"]})");
  CHECK(regcache.alive());
}
