// SIGHUP re-reads the configuration: upstream credentials (here from a
// password_file) change without a restart; a bad file is refused.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include "support/checks.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"
#include "support/upstream_registry.h"
#include "support/wait.h"

using namespace regcache::test;

namespace {

nlohmann::json config_with_password_file(const std::string& url, const std::filesystem::path& file) {
  auto config = regcache_config(url);
  config["upstreams"][0].erase("password");
  config["upstreams"][0]["username"] = "user";
  config["upstreams"][0]["password_file"] = file.string();
  return config;
}

}  // namespace

TEST_CASE("reload: SIGHUP applies new upstream credentials from password_file") {
  TempDir dir("regcache-it-reload");
  UpstreamRegistry upstream(dir.subdir("upstream"), {UpstreamAuth::basic});
  auto image = make_oci_image(dir / "image", "v1", {256 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(dir / "skopeo", image.oci_reference(), upstream.host(), "app:v1",
                                upstream.credentials(), false));

  auto secret = dir / "password";
  write_file(secret, "wrong\n");
  ::chmod(secret.c_str(), 0600);
  RegcacheServer server(dir.path(), {upstream.url(), config_with_password_file(upstream.url(), secret), {}});
  std::string manifest_url = server.url() + "/v2/app/manifests/v1";

  auto before = http_request("GET", manifest_url, manifest_accept_headers());
  CHECK(before.status == 401);
  CHECK(before.body.find("UNAUTHORIZED") != std::string::npos);
  CHECK(server.stderr_text().find("wrong") == std::string::npos);  // never logged

  write_file(secret, "pass\n");
  REQUIRE(::kill(server.pid(), SIGHUP) == 0);
  bool applied = wait_until([&] { return http_request("GET", manifest_url, manifest_accept_headers()).status == 200; },
                            std::chrono::seconds(20));
  CHECK_MESSAGE(applied, server.stderr_text());
  CHECK(server.stderr_text().find("reload: upstreams, credentials") != std::string::npos);
  CHECK(server.stderr_text().find("pass\n") == std::string::npos);

  // A reload that fails validation leaves the running configuration alone.
  ::chmod(secret.c_str(), 0644);
  REQUIRE(::kill(server.pid(), SIGHUP) == 0);
  CHECK(wait_until([&] { return server.stderr_text().find("reload refused") != std::string::npos; },
                   std::chrono::seconds(20)));
  CHECK(http_request("GET", server.url() + "/v2/app/blobs/" + image.blobs().front().digest).status == 200);
  CHECK(server.alive());
  CHECK(server.stop() == 0);
}

TEST_CASE("reload: a password_file readable by others is refused at start with exit 2") {
  TempDir dir("regcache-it-secret");
  auto secret = dir / "password";
  write_file(secret, "pass\n");
  ::chmod(secret.c_str(), 0644);
  write_file(dir / "config.json", config_with_password_file("http://127.0.0.1:1", secret).dump());
  Process p({{REGCACHE_BINARY, "serve", "--config", (dir / "config.json").string(), "--data-dir",
              (dir / "data").string()},
             {}, dir / "out", dir / "err"});
  auto code = p.wait_for(std::chrono::seconds(20));
  REQUIRE(code.has_value());
  CHECK(*code == 2);
  CHECK(p.stderr_text().find("upstreams[0].password_file") != std::string::npos);
}
