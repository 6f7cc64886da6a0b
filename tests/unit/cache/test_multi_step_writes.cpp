// Multi-step metadata writes of cache/ code are units of work: a failure
// between two of their writes (injected by tests/support/faulty_metadata_store.h)
// leaves the metadata as before the operation, never half of it.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/access_log.h"
#include "cache/blob_store.h"
#include "cache/eviction_worker.h"
#include "cache/hosted_registry.h"
#include "cache/manifest_memo.h"
#include "cache/offline_transfer.h"
#include "cache/oci_layout.h"
#include "common/digest.h"
#include "common/names.h"
#include "db/sqlite_metadata_store.h"
#include "temp_dir.h"
#include "tests/support/faulty_metadata_store.h"

using namespace regcache;
using namespace regcache::cache;
using nlohmann::json;
using regcache::testing::FaultyMetadataStore;
using regcache_test::TempDir;

namespace {

constexpr const char* kManifestType = "application/vnd.oci.image.manifest.v1+json";

json descriptor(const std::string& media_type, const std::string& bytes) {
  return {{"mediaType", media_type}, {"digest", sha256_of(bytes).str()}, {"size", bytes.size()}};
}

// A data dir whose metadata store fails on demand.
struct Target {
  TempDir dir;
  std::unique_ptr<db::MetadataStore> inner = db::open_sqlite_store((dir.path / "regcache.db").string());
  FaultyMetadataStore meta{*inner};
  LocalBlobStore blobs{dir.path};
};

}  // namespace

TEST_CASE("multi-step writes: an import that fails between a hosted manifest's link and its references keeps neither") {
  // A hosted manifest linked without its references would leave its layers
  // unreferenced: the next gc would unlink them under a served manifest.
  TempDir src;
  const std::string config = R"({"os":"linux","architecture":"amd64"})";
  const std::string layer = "layer bytes" + std::string(2000, 'l');
  const std::string manifest = json{{"schemaVersion", 2},
                                    {"mediaType", kManifestType},
                                    {"config", descriptor("application/vnd.oci.image.config.v1+json", config)},
                                    {"layers", json::array({descriptor("application/vnd.oci.image.layer.v1.tar", layer)})}}
                                   .dump();
  auto w = LayoutWriter::to_directory(src.path / "l");
  for (const auto* bytes : {&config, &layer, &manifest}) w->add_blob_bytes(sha256_of(*bytes), *bytes);
  Descriptor top;
  top.media_type = kManifestType;
  top.digest = sha256_of(manifest);
  top.size = manifest.size();
  w->add_ref(top);
  w->finish();
  auto layout = LayoutReader::open(src.path / "l");

  Target target;
  target.meta.fail_on("put_manifest_refs");
  CHECK_THROWS_WITH_AS(import_layout(target.blobs, target.meta, *layout, {{top, "", "local/app", "v1", 0}}, 1 << 20, 42),
                       "injected fault: put_manifest_refs", std::runtime_error);
  CHECK(target.meta.calls("put_manifest_refs") == 1);
  CHECK_FALSE(target.inner->find_link("", "local/app", top.digest));  // the manifest's rows went with the failure
  CHECK_FALSE(target.inner->find_tag("", "local/app", "v1"));

  // Imported again without the fault: complete.
  auto stats = import_layout(target.blobs, target.meta, *layout, {{top, "", "local/app", "v1", 0}}, 1 << 20, 43);
  CHECK(stats.tags_set == 1);
  REQUIRE(target.inner->find_link("", "local/app", top.digest));
  CHECK(target.inner->manifests_referencing("", "local/app", sha256_of(layer)) == std::vector<Digest>{top.digest});
}

TEST_CASE("multi-step writes: an upload completion that fails is not half done") {
  // Publishing the blob and closing the session are one unit: a failure leaves
  // the session open (the client may retry or cancel) and the blob unpublished,
  // never a published blob whose session still holds a slot.
  Target target;
  ManifestMemo memo(target.blobs, target.meta, 1 << 20, 1 << 20);
  HostedRegistry hosted(target.blobs, target.meta, memo, HostedOptions{});
  auto repo = *RepoName::parse("local/app");
  auto upload = hosted.start_upload(repo, "127.0.0.1");
  CHECK(hosted.upload_sessions() == 1);

  const std::string bytes = "blob bytes of an upload";
  const Digest digest = sha256_of(bytes);
  std::istringstream body(bytes);
  target.meta.fail_on("delete_upload");
  CHECK_THROWS_WITH_AS(hosted.finish_upload(repo, upload.id, Body{body, bytes.size()}, digest),
                       "injected fault: delete_upload", std::runtime_error);
  CHECK(target.meta.calls("delete_upload") == 1);
  CHECK_FALSE(target.inner->is_linked("", "local/app", digest));
  CHECK(target.inner->find_upload(upload.id));
  CHECK(hosted.upload_sessions() == 1);

  // A completion that succeeds closes it and frees its slot.
  auto again = hosted.start_upload(repo, "127.0.0.1");
  std::istringstream body2(bytes);
  hosted.finish_upload(repo, again.id, Body{body2, bytes.size()}, digest);
  CHECK(target.inner->is_linked("", "local/app", digest));
  CHECK_FALSE(target.inner->find_upload(again.id));
  CHECK(hosted.upload_sessions() == 1);  // the first one, still open
  hosted.cancel_upload(repo, upload.id);
  CHECK(hosted.upload_sessions() == 0);
}

TEST_CASE("multi-step writes: an eviction batch that fails midway leaves every row with its object") {
  Target target;
  ManifestMemo memo(target.blobs, target.meta, 1 << 20, 1 << 20);
  AccessLog accesses;
  EvictionSettings settings;
  settings.max_cache_bytes = 100;
  settings.min_free_bytes = 0;
  settings.high_watermark = 0.9;
  settings.low_watermark = 0.5;
  EvictionWorker worker(target.blobs, target.meta, memo, accesses, [] { return FsSpace{1ULL << 40, 1ULL << 41}; },
                        settings, 1 << 20);
  std::vector<Digest> stored;
  for (int i = 0; i < 3; ++i) {
    std::string body(300, static_cast<char>('a' + i));
    Digest d = sha256_of(body);
    auto w = target.blobs.create_writer();
    w->write(body.data(), body.size());
    w->commit(d);
    target.inner->put_blob({d, body.size(), "", i + 1, i + 1});
    target.inner->link("docker.io", "library/x", d);
    stored.push_back(d);
  }
  target.meta.fail_on("delete_blob", 2);  // the second victim of the batch
  CHECK_THROWS_WITH_AS(worker.run_pass(), "injected fault: delete_blob", std::runtime_error);
  for (const auto& d : stored) {
    CHECK(target.inner->find_blob(d));  // the batch's unit rolled back
    CHECK(target.blobs.exists(d));      // and no object went without its row
  }
  auto pass = worker.run_pass();  // without the fault: all three go, rows and objects
  CHECK(pass.evicted_objects == 3);
  for (const auto& d : stored) {
    CHECK_FALSE(target.inner->find_blob(d));
    CHECK_FALSE(target.blobs.exists(d));
  }
}
