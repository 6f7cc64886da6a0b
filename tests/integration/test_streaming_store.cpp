// A blob store without native descriptors (`"sendfile": false` serves the local
// store that way): every blob body is read through read_at() and written by
// the worker — cached hits, ranges, HEAD, and a cold blob streamed from the
// growing spool of its fill before the fill ends (read-while-write).
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

TEST_CASE("streaming store: with sendfile off, cold, hit, range and HEAD answers carry the exact bytes") {
  TempDir tmp;
  FakeUpstream fake;
  const std::string repo = "stream/blob";
  const std::size_t size = 3 * 1024 * 1024 + 12345;  // several of the handler's 256 KiB reads
  const std::string bytes = pseudo_random_bytes(size, 17);
  const std::string digest = fake.add_blob(repo, bytes);
  const std::string path = FakeUpstream::blob_path(repo, digest);

  // The upstream holds the body half-way until the test opens the gate.
  auto half_way = std::make_shared<Gate>();
  Behavior held;
  held.body_gate = half_way;
  held.body_gate_at = size / 2;
  fake.set_behavior(path, held);
  struct OpenOnExit {
    std::shared_ptr<Gate> gate;
    ~OpenOnExit() { gate->open(); }
  } release_on_exit{half_way};

  nlohmann::json config = regcache_config(fake.url());
  config["upstreams"][0]["read_timeout_ms"] = 60000;
  config["sendfile"] = false;
  RegcacheServer regcache(tmp / "regcache", {fake.url(), config, {}});

  // Cold: the first bytes come from the fill's spool while the upstream is held.
  RawHttpGet cold(regcache.port(), path);
  REQUIRE_MESSAGE(cold.read_head(30s), cold.error());
  CHECK(cold.status() == 200);
  CHECK(cold.header("Content-Length") == std::to_string(size));
  REQUIRE_MESSAGE(half_way->wait_for_waiting(1, 30s), "the upstream never reached the half-way gate");
  CHECK(wait_until([&] { return cold.body_bytes() > 0 || cold.read_some(1s) > 0; }, 30s));
  CHECK(cold.body_bytes() <= size / 2);
  CHECK(half_way->waiting() == 1);  // the fill has not ended
  half_way->open();
  CHECK(cold.read_to_end(30s));
  CHECK(cold.complete());
  CHECK(cold.body_bytes() == size);
  CHECK(cold.body_digest() == digest);
  CHECK(fake.count("GET", path) == 1);

  // Hit: the whole blob, then ranges, then HEAD — all from the store, no upstream request.
  CHECK(wait_until([&] { return std::filesystem::exists(stored_blob_path(regcache.data_dir(), digest)); }, 10s));
  auto hit = stream_get(regcache.port(), path);
  CHECK(hit.status == 200);
  CHECK(hit.complete);
  CHECK(hit.body_bytes == size);
  CHECK(hit.body_digest == digest);
  CHECK(hit.header("X-Cache-Status") == "hit");

  const std::string url = regcache.url() + path;
  for (auto [range, first, last] : {std::tuple{std::string("bytes=0-0"), std::size_t{0}, std::size_t{0}},
                                    std::tuple{std::string("bytes=100-300099"), std::size_t{100}, std::size_t{300099}},
                                    std::tuple{std::string("bytes=-70000"), size - 70000, size - 1},
                                    std::tuple{"bytes=" + std::to_string(size / 2) + "-", size / 2, size - 1}}) {
    CAPTURE(range);
    auto got = http_request("GET", url, {{"Range", range}});
    REQUIRE_MESSAGE(got.status == 206, got.summary());
    CHECK(got.complete);
    CHECK(got.body == bytes.substr(first, last - first + 1));
    CHECK(got.header("Content-Range") ==
          "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size));
  }
  auto beyond = http_request("GET", url, {{"Range", "bytes=" + std::to_string(size) + "-"}});
  CHECK_MESSAGE(beyond.status == 416, beyond.summary());

  auto head = http_request("HEAD", url);
  CHECK(head.status == 200);
  CHECK(head.header("Content-Length") == std::to_string(size));
  CHECK(head.body.empty());
  CHECK(fake.count("GET", path) == 1);
}
