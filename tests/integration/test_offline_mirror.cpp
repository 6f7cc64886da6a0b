// The offline lab mirror (issue 14) with the real binary, a real docker-registry
// upstream and skopeo: regcache warm (idempotent, per-reference failures, ':*'
// with --newest, platform selection), export to an OCI layout that skopeo reads,
// import into a fresh data dir served --offline with the same digests, import
// refusing a corrupted blob with nothing published, import twice changing
// nothing, a skopeo-made layout imported into a hosted repository, and the
// scheduled re-warm following a tag moved upstream.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/checks.h"
#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/htpasswd.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"
#include "support/upstream_registry.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t KiB = 1024;

struct Run {
  std::optional<int> exit_code;
  std::string out;
  std::string err;
};

// Runs `regcache ARGS...` to its end (bounded).
Run regcache_cli(const fs::path& dir, const std::string& name, std::vector<std::string> args,
                 std::chrono::seconds timeout = 120s) {
  args = with_test_metadata(std::move(args));  // under postgres: the regcache's database
  args.insert(args.begin(), REGCACHE_BINARY);
  fs::create_directories(dir);
  fs::remove(dir / (name + ".out"));
  fs::remove(dir / (name + ".err"));
  Process p({args, {}, dir / (name + ".out"), dir / (name + ".err")});
  Run r;
  r.exit_code = p.wait_for(timeout);
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;
}

#define REQUIRE_RUN_OK(run_expr)                                                                         \
  do {                                                                                                   \
    const Run& run_ = (run_expr);                                                                        \
    REQUIRE_MESSAGE(run_.exit_code == 0, "exit " << (run_.exit_code ? *run_.exit_code : -1) << "\n"    \
                                                 << run_.out << "\n" << run_.err);                       \
  } while (0)

bool stored(const fs::path& data_dir, const std::string& digest) {
  std::string hex = digest.substr(digest.find(':') + 1);
  return fs::exists(data_dir / "blobs" / "sha256" / hex.substr(0, 2) / hex);
}

std::size_t upstream_blob_gets(const UpstreamRegistry& upstream) {
  return upstream.count_requests("GET", "/v2/mirror/.*/blobs/.*");
}

// `regcache ls --json` rows of a data dir, as tag -> row ("ns/repo:tag").
std::map<std::string, nlohmann::json> ls(const fs::path& dir, const fs::path& data_dir) {
  Run r = regcache_cli(dir, "ls", {"ls", "--data-dir", data_dir.string(), "--json"});
  REQUIRE_RUN_OK(r);
  std::map<std::string, nlohmann::json> rows;
  for (const auto& row : nlohmann::json::parse(r.out))
    rows[row["namespace"].get<std::string>() + "/" + row["repository"].get<std::string>() + ":" +
         row["tag"].get<std::string>()] = row;
  return rows;
}

std::string manifest_digest(const std::string& url) {
  auto r = http_request("GET", url, manifest_accept_headers());
  return r.status == 200 ? r.header("Docker-Content-Digest") : "HTTP " + std::to_string(r.status) + " " + r.body;
}

}  // namespace

TEST_CASE("warm: an index and an image are warmed through the server and a second run fetches nothing from the upstream") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto app = make_oci_image(tmp / "app", "v1", {300 * KiB, 200 * KiB});
  auto multi = make_oci_index(tmp / "multi", "m1", {100 * KiB});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), app.oci_reference(), upstream.host(), "mirror/app:v1"));
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), multi.oci_reference(), upstream.host(), "mirror/multi:m1", {}, true));
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});

  const std::vector<std::string> refs = {"upstream/mirror/app:v1", "upstream/mirror/multi:m1"};
  std::vector<std::string> args = {"warm", "--server", regcache.url()};
  args.insert(args.end(), refs.begin(), refs.end());
  Run first = regcache_cli(tmp.path(), "warm1", args);
  REQUIRE_RUN_OK(first);
  CHECK(first.out.find("warmed upstream/mirror/app:v1 " + app.top.digest) != std::string::npos);
  CHECK(first.out.find("warmed upstream/mirror/multi:m1 " + multi.top.digest + " [linux/amd64,linux/arm64]") !=
        std::string::npos);
  for (const auto* image : {&app, &multi})
    for (const auto& digest : image->all_digests()) CHECK_MESSAGE(stored(regcache.data_dir(), digest), digest);
  const std::size_t blobs = app.blobs().size() + multi.blobs().size();
  CHECK(upstream_blob_gets(upstream) == blobs);  // each blob once: the HEAD's fill and the GET are one transfer

  Run second = regcache_cli(tmp.path(), "warm2", args);
  REQUIRE_RUN_OK(second);
  CHECK(upstream_blob_gets(upstream) == blobs);
  CHECK(upstream.count_requests("GET", "/v2/mirror/.*/manifests/.*") == 2 + multi.manifests.size());
  CHECK_MESSAGE(second.out.find("0 fetched from upstreams") != std::string::npos, second.out);
  CHECK(second.out.find(": nothing new") != std::string::npos);

  // ls, with the server running: both tags, their platforms, not pinned.
  auto rows = ls(tmp.path(), regcache.data_dir());
  REQUIRE(rows.count("upstream/mirror/multi:m1"));
  CHECK(rows["upstream/mirror/multi:m1"]["digest"] == multi.top.digest);
  CHECK(rows["upstream/mirror/multi:m1"]["platforms"] == nlohmann::json::array({"linux/amd64", "linux/arm64"}));
  CHECK(rows["upstream/mirror/app:v1"]["platforms"] == nlohmann::json::array({"linux/amd64"}));
  CHECK(rows["upstream/mirror/app:v1"]["pinned"] == false);
  CHECK(rows["upstream/mirror/app:v1"]["complete"] == true);
}

TEST_CASE("warm: a failing reference does not stop the others and the exit code is non-zero naming it") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto app = make_oci_image(tmp / "app", "v1", {100 * KiB});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), app.oci_reference(), upstream.host(), "mirror/app:v1"));
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});
  write_file(tmp / "list.txt", "# lab list\nupstream/mirror/missing:v1\n\nupstream/mirror/app:v1  # the good one\n"
                               "ghcr.io/not/configured:v1\n");

  Run r = regcache_cli(tmp.path(), "warm", {"warm", "--server", regcache.url(), "--file", (tmp / "list.txt").string()});
  REQUIRE(r.exit_code);
  CHECK(*r.exit_code == 1);
  CHECK_MESSAGE(r.err.find("2 of 3 references failed: upstream/mirror/missing:v1, ghcr.io/not/configured:v1") !=
                    std::string::npos,
                r.err);
  CHECK(r.out.find("FAILED upstream/mirror/missing:v1: manifest") != std::string::npos);
  CHECK(r.out.find("NAME_UNKNOWN") != std::string::npos);
  CHECK(r.out.find("warmed upstream/mirror/app:v1") != std::string::npos);
  for (const auto& digest : app.all_digests()) CHECK(stored(regcache.data_dir(), digest));

  // A malformed reference is refused before anything is fetched.
  Run bad = regcache_cli(tmp.path(), "warm-bad", {"warm", "--server", regcache.url(), "Upstream/x:1"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("Upstream/x") != std::string::npos);
}

TEST_CASE("warm: ':*' globs with --newest, and --platform stores only the chosen platforms' blobs") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto app = make_oci_image(tmp / "app", "v", {50 * KiB});
  for (const std::string tag : {"v1.2", "v1.9", "v1.10", "v2.0", "latest"})
    REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), app.oci_reference(), upstream.host(), "mirror/many:" + tag));
  auto multi = make_oci_index(tmp / "multi", "m1", {80 * KiB, 40 * KiB});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), multi.oci_reference(), upstream.host(), "mirror/multi:m1", {}, true));
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});

  Run r = regcache_cli(tmp.path(), "warm-glob",
                       {"warm", "--server", regcache.url(), "--newest", "2", "upstream/mirror/many:v1.*"});
  REQUIRE_RUN_OK(r);
  auto rows = ls(tmp.path(), regcache.data_dir());
  std::set<std::string> tags;
  for (const auto& [name, row] : rows)
    if (name.rfind("upstream/mirror/many:", 0) == 0) tags.insert(row["tag"].get<std::string>());
  CHECK(tags == std::set<std::string>{"v1.9", "v1.10"});  // version order: v1.10 is the newest

  Run all = regcache_cli(tmp.path(), "warm-all", {"warm", "--server", regcache.url(), "upstream/mirror/many:*"});
  REQUIRE_RUN_OK(all);
  CHECK(ls(tmp.path(), regcache.data_dir()).size() == 5);

  Run arm = regcache_cli(tmp.path(), "warm-arm",
                         {"warm", "--server", regcache.url(), "--platform", "linux/arm64", "upstream/mirror/multi:m1"});
  REQUIRE_RUN_OK(arm);
  for (const auto& m : multi.manifests) {
    CAPTURE(m.architecture);
    const bool wanted = m.architecture == "arm64";
    CHECK(stored(regcache.data_dir(), m.manifest.digest) == wanted);
    CHECK(stored(regcache.data_dir(), m.config.digest) == wanted);
    for (const auto& layer : m.layers) CHECK(stored(regcache.data_dir(), layer.digest) == wanted);
  }
  auto multi_row = ls(tmp.path(), regcache.data_dir())["upstream/mirror/multi:m1"];
  CHECK(multi_row["platforms"] == nlohmann::json::array({"linux/arm64"}));
  CHECK(multi_row["platforms_not_cached"] == 1);
}

TEST_CASE("export and import: skopeo reads the layout, a fresh --offline regcache serves the same digests, twice changes nothing") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto app = make_oci_image(tmp / "app", "v1", {200 * KiB, 100 * KiB});
  auto multi = make_oci_index(tmp / "multi", "m1", {100 * KiB});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), app.oci_reference(), upstream.host(), "mirror/app:v1"));
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), multi.oci_reference(), upstream.host(), "mirror/multi:m1", {}, true));
  fs::path online_data;
  {
    RegcacheServer online(tmp / "online", {upstream.url(), regcache_config(upstream.url()), {}});
    REQUIRE_RUN_OK(regcache_cli(tmp.path(), "warm",
                                {"warm", "--server", online.url(), "upstream/mirror/app:v1", "upstream/mirror/multi:m1"}));
    online_data = online.data_dir();
    // Exported while the server runs: a directory and a tar.
    REQUIRE_RUN_OK(regcache_cli(tmp.path(), "export-dir",
                                {"export", "--data-dir", online_data.string(), "--all", "--output", (tmp / "layout").string()}));
  }
  upstream.stop();
  Run tar = regcache_cli(tmp.path(), "export-tar",
                         {"export", "--data-dir", online_data.string(), "upstream/mirror/app:v1",
                          "upstream/mirror/multi:*", "--output", (tmp / "mirror.tar").string()});
  REQUIRE_RUN_OK(tar);
  CHECK(tar.out.find("export: 2 images") != std::string::npos);

  // Another tool reads it: skopeo copies each image out of the layout by its ref name.
  REQUIRE_SKOPEO_OK(skopeo_copy(tmp.path(), "oci:" + (tmp / "layout").string() + ":upstream/mirror/app:v1",
                                "oci:" + (tmp / "copied-app").string() + ":v1"));
  check_layout_matches(app, tmp / "copied-app", "v1");
  REQUIRE_SKOPEO_OK(skopeo_copy(tmp.path(), "oci:" + (tmp / "layout").string() + ":upstream/mirror/multi:m1",
                                "oci:" + (tmp / "copied-multi").string() + ":m1", {"--all"}));
  check_layout_matches(multi, tmp / "copied-multi", "m1");

  // The isolated machine: a fresh data dir, the tar imported, served offline.
  fs::path fresh = tmp / "offline" / "data";
  Run imported = regcache_cli(tmp.path(), "import", {"import", "--data-dir", fresh.string(), (tmp / "mirror.tar").string()});
  REQUIRE_RUN_OK(imported);
  CHECK(imported.out.find("2 tags set") != std::string::npos);
  std::set<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(fresh / "blobs")) files.insert(e.path().string());
  auto rows_before = ls(tmp.path(), fresh);

  Run again = regcache_cli(tmp.path(), "import2", {"import", "--data-dir", fresh.string(), (tmp / "mirror.tar").string()});
  REQUIRE_RUN_OK(again);
  CHECK_MESSAGE(again.out.find("0 objects stored (0 B)") != std::string::npos, again.out);
  CHECK(again.out.find("0 tags set, 2 unchanged: nothing new") != std::string::npos);
  std::set<std::string> files_after;
  for (const auto& e : fs::recursive_directory_iterator(fresh / "blobs")) files_after.insert(e.path().string());
  CHECK(files_after == files);
  CHECK(ls(tmp.path(), fresh) == rows_before);

  RegcacheServer offline(tmp / "offline", {upstream.url(), regcache_config(upstream.url()), {"--offline"}});
  CHECK(manifest_digest(offline.url() + "/v2/mirror/app/manifests/v1") == app.top.digest);
  CHECK(manifest_digest(offline.url() + "/v2/upstream/mirror/multi/manifests/m1") == multi.top.digest);
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), offline.host(), "mirror/multi:m1", tmp / "pulled-multi", "m1", {}, true));
  check_layout_matches(multi, tmp / "pulled-multi", "m1");
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), offline.host(), "mirror/app:v1", tmp / "pulled-app", "v1"));
  check_layout_matches(app, tmp / "pulled-app", "v1");
}

TEST_CASE("import: a corrupted blob is refused with a clear message and nothing is published") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto app = make_oci_image(tmp / "app", "v1", {100 * KiB, 50 * KiB});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), app.oci_reference(), upstream.host(), "mirror/app:v1"));
  {
    RegcacheServer online(tmp / "online", {upstream.url(), regcache_config(upstream.url()), {}});
    REQUIRE_RUN_OK(regcache_cli(tmp.path(), "warm", {"warm", "--server", online.url(), "upstream/mirror/app:v1"}));
    REQUIRE_RUN_OK(regcache_cli(tmp.path(), "export", {"export", "--data-dir", online.data_dir().string(), "--all",
                                                       "--output", (tmp / "layout").string()}));
  }
  const std::string bad = app.manifests[0].layers[1].digest;
  fs::path file = tmp / "layout" / "blobs" / "sha256" / bad.substr(7);
  std::string bytes = read_file(file);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x20);
  write_file(file, bytes);

  fs::path fresh = tmp / "fresh" / "data";
  Run r = regcache_cli(tmp.path(), "import", {"import", "--data-dir", fresh.string(), (tmp / "layout").string()});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find("corrupt blob in the layout: " + bad + " does not hash to its digest; nothing was imported") !=
                    std::string::npos,
                r.err);
  std::size_t files = 0;
  if (fs::exists(fresh / "blobs"))
    for (const auto& e : fs::recursive_directory_iterator(fresh / "blobs")) files += e.is_regular_file();
  CHECK(files == 0);
  CHECK(ls(tmp.path(), fresh).empty());
}

TEST_CASE("import: a layout made by skopeo goes into a hosted repository named with --into") {
  TempDir tmp;
  auto app = make_oci_image(tmp / "app", "v1", {60 * KiB});
  REQUIRE_SKOPEO_OK(skopeo_copy(tmp.path(), app.oci_reference(), "oci:" + (tmp / "skopeo-layout").string() + ":v1"));
  fs::path data = tmp / "hosted" / "data";
  Run plain = regcache_cli(tmp.path(), "import-plain", {"import", "--data-dir", data.string(), (tmp / "skopeo-layout").string()});
  CHECK(plain.exit_code == 1);
  CHECK(plain.err.find("--into") != std::string::npos);
  REQUIRE_RUN_OK(regcache_cli(tmp.path(), "import",
                              {"import", "--data-dir", data.string(), "--into", "local/app:v1", (tmp / "skopeo-layout").string()}));
  RegcacheServer hosted(tmp / "hosted", {"none", std::nullopt, {}});
  CHECK(manifest_digest(hosted.url() + "/v2/local/app/manifests/v1") == app.top.digest);
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), hosted.host(), "local/app:v1", tmp / "pulled", "v1"));
  check_layout_matches(app, tmp / "pulled", "v1");
}

TEST_CASE("scheduled warm: the warm config key re-warms and follows a tag moved upstream") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto first = make_oci_image(tmp / "first", "latest", {40 * KiB});
  auto second = make_oci_image(tmp / "second", "latest", {40 * KiB});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), first.oci_reference(), upstream.host(), "mirror/moving:latest"));
  auto config = regcache_config(upstream.url(), {}, {}, 1);
  config["warm"] = {{"references", {"upstream/mirror/moving:latest"}}, {"interval_s", 1}};
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), config, {}});

  auto tag_digest = [&] {
    auto rows = ls(tmp.path(), regcache.data_dir());
    auto it = rows.find("upstream/mirror/moving:latest");
    return it == rows.end() ? std::string() : it->second["digest"].get<std::string>();
  };
  auto all_stored = [&](const GeneratedImage& image) {
    for (const auto& digest : image.all_digests())
      if (!stored(regcache.data_dir(), digest)) return false;
    return true;
  };
  // Nothing but the scheduler asks regcache for this tag. The tag moves as soon
  // as its manifest is in; the blobs follow within the same run.
  REQUIRE_MESSAGE(wait_until([&] { return tag_digest() == first.top.digest && all_stored(first); }, 60s),
                  regcache.stderr_text());

  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), second.oci_reference(), upstream.host(), "mirror/moving:latest"));
  REQUIRE_MESSAGE(wait_until([&] { return tag_digest() == second.top.digest && all_stored(second); }, 60s),
                  regcache.stderr_text());
  CHECK(regcache.stderr_text().find("scheduled warm: 1 references") != std::string::npos);
  CHECK(regcache.stop() == 0);
}

TEST_CASE("scheduled warm: with anonymous pulls refused, warm.username and warm.password_file let it through") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto image = make_oci_image(tmp / "image", "v1", {40 * KiB});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "mirror/locked:v1"));
  auto users = make_htpasswd(tmp.path(), {{"warmer", "warmer-pw"}});
  write_file(tmp / "warm-password", "warmer-pw\n");
  fs::permissions(tmp / "warm-password", fs::perms::owner_read | fs::perms::owner_write);
  auto config = regcache_config(upstream.url(), {}, {}, 1);
  config["auth"] = {{"htpasswd", users.string()}};
  config["access"] = {{{"repositories", "**"}, {"users", {"authenticated"}}, {"actions", {"pull"}}}};
  config["warm"] = {{"references", {"upstream/mirror/locked:v1"}},
                    {"interval_s", 1},
                    {"username", "warmer"},
                    {"password_file", (tmp / "warm-password").string()}};
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), config, {}});
  // The rules do refuse an anonymous pull ...
  CHECK(http_request("GET", regcache.url() + "/v2/upstream/mirror/locked/manifests/v1").status == 401);
  // ... and the scheduler, logged in, fills the cache.
  REQUIRE_MESSAGE(wait_until(
                      [&] {
                        for (const auto& digest : image.all_digests())
                          if (!stored(regcache.data_dir(), digest)) return false;
                        return true;
                      },
                      60s),
                  regcache.stderr_text());
  CHECK(regcache.stderr_text().find("warmer-pw") == std::string::npos);  // the password is never logged
  CHECK(regcache.stop() == 0);
}

TEST_CASE("scheduled warm: SIGTERM breaks off a warm stalled in a blob and regcache exits 0") {
  TempDir tmp;
  FakeUpstream fake;
  const std::string repo = "mirror/stalled";
  const std::string config_bytes = R"({"architecture":"amd64","os":"linux"})";
  const std::string layer_bytes(1 << 20, 'x');
  const std::string config_digest = fake.add_blob(repo, config_bytes);
  const std::string layer_digest = fake.add_blob(repo, layer_bytes);
  const nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifestType},
      {"config", {{"mediaType", kOciConfigType}, {"digest", config_digest}, {"size", config_bytes.size()}}},
      {"layers", {{{"mediaType", kOciLayerGzipType}, {"digest", layer_digest}, {"size", layer_bytes.size()}}}}};
  fake.add_manifest(repo, "v1", manifest.dump(), kOciManifestType);
  auto gate = std::make_shared<Gate>();  // never opened: the layer stalls half-way
  Behavior stalled;
  stalled.body_gate = gate;
  stalled.body_gate_at = layer_bytes.size() / 2;
  fake.set_behavior(FakeUpstream::blob_path(repo, layer_digest), stalled);

  auto config = regcache_config(fake.url());
  config["shutdown_grace_s"] = 1;
  config["upstreams"][0]["read_timeout_ms"] = 120000;
  config["warm"] = {{"references", {"upstream/" + repo + ":v1"}}};
  RegcacheServer regcache(tmp / "regcache", {fake.url(), config, {}});
  REQUIRE(gate->wait_for_waiting(1, 30s));  // the scheduled warm is inside the layer
  // The warm client would wait minutes for the rest; stopping must not.
  CHECK_MESSAGE(regcache.stop(20s) == 0, regcache.stderr_text());
}
