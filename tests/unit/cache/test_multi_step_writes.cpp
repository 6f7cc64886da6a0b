// Multi-step metadata writes of cache/ code are units of work: a failure
// between two of their writes (injected by tests/support/faulty_metadata_store.h)
// leaves the metadata as before the operation, never half of it.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/blob_store.h"
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
