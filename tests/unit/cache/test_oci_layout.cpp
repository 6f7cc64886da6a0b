// Unit tests for OCI layouts and the offline transfer (cache/oci_layout.h,
// cache/offline_transfer.h): platform choice over an index, the writer/reader
// round trip (directory and tar), export of stored images and import that
// refuses a corrupted blob and publishes nothing.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cache/blob_store.h"
#include "cache/offline_transfer.h"
#include "cache/oci_layout.h"
#include "common/digest.h"
#include "db/metadata_store.h"
#include "db/sqlite_metadata_store.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace regcache;
using namespace regcache::cache;
using nlohmann::json;
using regcache_test::files_below;
using regcache_test::read_file;
using regcache_test::TempDir;
using regcache_test::write_file;

namespace {

constexpr const char* kIndexType = "application/vnd.oci.image.index.v1+json";
constexpr const char* kManifestType = "application/vnd.oci.image.manifest.v1+json";

json descriptor(const std::string& media_type, const std::string& bytes) {
  return {{"mediaType", media_type}, {"digest", sha256_of(bytes).str()}, {"size", bytes.size()}};
}

// An image (config + one layer) for a platform, and its parts.
struct TestImage {
  std::string config, layer, manifest;
};

TestImage make_image(const std::string& os, const std::string& arch, const std::string& salt) {
  TestImage i;
  i.config = json{{"os", os}, {"architecture", arch}, {"salt", salt}}.dump();
  i.layer = "layer bytes of " + salt + std::string(3000, static_cast<char>('a' + salt.size() % 26));
  i.manifest = json{{"schemaVersion", 2},
                    {"mediaType", kManifestType},
                    {"config", descriptor("application/vnd.oci.image.config.v1+json", i.config)},
                    {"layers", json::array({descriptor("application/vnd.oci.image.layer.v1.tar+gzip", i.layer)})}}
                   .dump();
  return i;
}

std::string make_index(const std::vector<std::pair<TestImage, std::pair<std::string, std::string>>>& images) {
  json manifests = json::array();
  for (const auto& [image, platform] : images) {
    json d = descriptor(kManifestType, image.manifest);
    d["platform"] = {{"os", platform.first}, {"architecture", platform.second}};
    manifests.push_back(d);
  }
  return json{{"schemaVersion", 2}, {"mediaType", kIndexType}, {"manifests", manifests}}.dump();
}

// A data dir with its store and metadata.
struct Store {
  TempDir dir;
  std::unique_ptr<db::MetadataStore> meta = db::open_sqlite_store((dir.path / "regcache.db").string());
  LocalBlobStore blobs{dir.path};

  Digest put(const std::string& bytes, const std::string& media_type, const std::string& ns, const std::string& repo) {
    Digest d = sha256_of(bytes);
    auto w = blobs.create_writer();
    w->write(bytes.data(), bytes.size());
    w->commit(d);
    meta->put_blob({d, bytes.size(), media_type, 100, 100});
    meta->link(ns, repo, d);
    return d;
  }
  void put_image(const TestImage& i, const std::string& ns, const std::string& repo) {
    put(i.config, "", ns, repo);
    put(i.layer, "", ns, repo);
    put(i.manifest, kManifestType, ns, repo);
  }
};

std::unique_ptr<LayoutWriter> writer_for(const fs::path& out) {
  return out.extension() == ".tar" ? LayoutWriter::to_tar(out) : LayoutWriter::to_directory(out);
}

}  // namespace

TEST_CASE("oci_layout: parse_manifest_links reads an index and an image, skipping non-distributable layers") {
  auto amd = make_image("linux", "amd64", "a");
  auto index = parse_manifest_links(make_index({{amd, {"linux", "amd64"}}}));
  CHECK(index.is_index);
  REQUIRE(index.manifests.size() == 1);
  REQUIRE(index.manifests[0].platform);
  CHECK(index.manifests[0].platform->str() == "linux/amd64");

  json m = json::parse(amd.manifest);
  m["layers"].push_back({{"mediaType", "x"}, {"digest", sha256_of("far").str()}, {"size", 3}, {"urls", {"http://x"}}});
  auto image = parse_manifest_links(m.dump());
  CHECK_FALSE(image.is_index);
  REQUIRE(image.blobs.size() == 2);  // config and the one distributable layer
  CHECK(image.blobs[0].digest == sha256_of(amd.config));

  CHECK_THROWS(parse_manifest_links("[]"));
  CHECK_THROWS(parse_manifest_links(R"({"schemaVersion":2})"));
  CHECK_THROWS(parse_manifest_links(R"({"config":{"digest":"sha256:nothex","size":1}})"));
}

TEST_CASE("oci_layout: platform selection over an index") {
  std::vector<Descriptor> entries;
  auto add = [&](std::optional<Platform> p, const std::string& salt) {
    Descriptor d;
    d.media_type = kManifestType;
    d.digest = sha256_of(salt);
    d.platform = p;
    entries.push_back(d);
  };
  add(Platform{"linux", "amd64", ""}, "1");
  add(Platform{"linux", "arm64", "v8"}, "2");
  add(Platform{"linux", "arm", "v7"}, "3");
  add(Platform{"unknown", "unknown", ""}, "4");  // a build attestation
  add(std::nullopt, "5");

  CHECK(select_platforms(entries, {}).size() == 5);  // no filter: everything, as an engine could ask for any
  auto amd_arm64 = select_platforms(entries, {{"linux", "amd64", ""}, {"linux", "arm64", ""}});
  REQUIRE(amd_arm64.size() == 2);
  CHECK(amd_arm64[0].digest == sha256_of("1"));
  CHECK(amd_arm64[1].digest == sha256_of("2"));
  CHECK(select_platforms(entries, {{"linux", "arm", "v6"}}).empty());
  CHECK(select_platforms(entries, {{"linux", "s390x", ""}}).empty());
}

TEST_CASE("oci_layout: writer and reader round-trip, as a directory and as a tar") {
  for (const std::string name : {"layout", "layout.tar"}) {
    CAPTURE(name);
    TempDir tmp;
    fs::path out = tmp.path / name;
    auto image = make_image("linux", "amd64", "rt");
    {
      auto w = writer_for(out);
      w->add_blob_bytes(sha256_of(image.config), image.config);
      w->add_blob_bytes(sha256_of(image.layer), image.layer);
      w->add_blob_bytes(sha256_of(image.manifest), image.manifest);
      CHECK(w->has_blob(sha256_of(image.layer)));
      Descriptor top;
      top.media_type = kManifestType;
      top.digest = sha256_of(image.manifest);
      top.size = image.manifest.size();
      top.annotations[kAnnotationRefName] = "up/test/app:v1";
      top.annotations[kAnnotationConfirmedAt] = format_utc(1700000000);
      w->add_ref(top);
      w->finish();
    }
    CHECK_FALSE(fs::exists(fs::path(out.string() + ".part")));
    auto r = LayoutReader::open(out);
    REQUIRE(r->refs().size() == 1);
    CHECK(r->refs()[0].digest == sha256_of(image.manifest));
    CHECK(r->refs()[0].annotations.at(kAnnotationRefName) == "up/test/app:v1");
    CHECK(parse_utc(r->refs()[0].annotations.at(kAnnotationConfirmedAt)) == 1700000000);
    CHECK(r->read_small(sha256_of(image.manifest), 1 << 20) == image.manifest);
    CHECK(r->blob_size(sha256_of(image.layer)) == image.layer.size());
    CHECK(r->verify(sha256_of(image.layer)));
    CHECK_FALSE(r->blob_size(sha256_of("absent")));
    if (name == "layout") {
      CHECK(json::parse(read_file(out / "oci-layout"))["imageLayoutVersion"] == "1.0.0");
      CHECK(files_below(out).size() == 5);  // oci-layout, index.json, three blobs
    }
  }
}

TEST_CASE("oci_layout: a writer refuses bytes that do not hash to their digest and keeps nothing of them") {
  TempDir tmp;
  auto w = LayoutWriter::to_directory(tmp.path / "out");
  CHECK_THROWS_WITH_AS(w->add_blob_bytes(sha256_of("expected"), "something else"), doctest::Contains("hash to"),
                       std::runtime_error);
  CHECK_FALSE(w->has_blob(sha256_of("expected")));
  CHECK(files_below(tmp.path / "out").size() == 1);  // only oci-layout
}

TEST_CASE("oci_layout: a directory layout is added to - a ref with the same name replaces the old one") {
  TempDir tmp;
  auto a = make_image("linux", "amd64", "first"), b = make_image("linux", "amd64", "second");
  auto put = [&](const TestImage& i, const std::string& ref_name) {
    auto w = LayoutWriter::to_directory(tmp.path / "l");
    for (const auto* bytes : {&i.config, &i.layer, &i.manifest}) w->add_blob_bytes(sha256_of(*bytes), *bytes);
    Descriptor top;
    top.media_type = kManifestType;
    top.digest = sha256_of(i.manifest);
    top.size = i.manifest.size();
    top.annotations[kAnnotationRefName] = ref_name;
    w->add_ref(top);
    w->finish();
  };
  put(a, "x:1");
  put(b, "x:2");
  put(b, "x:1");
  auto r = LayoutReader::open(tmp.path / "l");
  REQUIRE(r->refs().size() == 2);
  for (const auto& ref : r->refs()) CHECK(ref.digest == sha256_of(b.manifest));
}

TEST_CASE("offline_transfer: export of a stored index keeps only the cached platforms and its origin") {
  Store store;
  auto amd = make_image("linux", "amd64", "amd"), arm = make_image("linux", "arm64", "arm");
  std::string index = make_index({{amd, {"linux", "amd64"}}, {arm, {"linux", "arm64"}}});
  store.put_image(amd, "up", "test/multi");  // arm64 was never pulled
  Digest top = store.put(index, kIndexType, "up", "test/multi");
  store.meta->put_tag("up", "test/multi", "v1", top, 1700000000);

  auto stored = walk_stored_image(store.blobs, *store.meta, "up", "test/multi", top, 1 << 20);
  CHECK(stored.manifests.size() == 2);
  CHECK(stored.missing_manifests == std::vector<Digest>{sha256_of(arm.manifest)});
  REQUIRE(stored.platforms.size() == 1);
  CHECK(stored.platforms[0].str() == "linux/amd64");

  TempDir out;
  auto w = LayoutWriter::to_directory(out.path / "l");
  auto stats = export_images(store.blobs, *store.meta, {{"up", "test/multi", "v1", top, 1700000000}}, *w, 1 << 20);
  w->finish();
  CHECK(stats.objects_copied == 4);  // index, amd64 manifest, config, layer
  CHECK(stats.notes.size() == 1);
  auto r = LayoutReader::open(out.path / "l");
  REQUIRE(r->refs().size() == 1);
  const auto& a = r->refs()[0].annotations;
  CHECK(a.at(kAnnotationNamespace) == "up");
  CHECK(a.at(kAnnotationRepository) == "test/multi");
  CHECK(a.at(kAnnotationTag) == "v1");
  CHECK(a.at(kAnnotationRefName) == "up/test/multi:v1");
  CHECK(a.at(kAnnotationConfirmedAt) == "2023-11-14T22:13:20Z");
  CHECK_FALSE(r->blob_size(sha256_of(arm.manifest)));
}

TEST_CASE("offline_transfer: a hosted manifest (media type on its link only) is exported with that type") {
  // Hosted pushes leave the blob row's media type empty; the link carries it.
  Store store;
  auto img = make_image("linux", "amd64", "hosted");
  store.put(img.config, "", "", "local/app");
  store.put(img.layer, "", "", "local/app");
  Digest top = store.put(img.manifest, "", "", "local/app");
  store.meta->link("", "local/app", top, kManifestType);
  auto stored = walk_stored_image(store.blobs, *store.meta, "", "local/app", top, 1 << 20);
  CHECK(stored.media_type == kManifestType);
  CHECK(stored.blobs.size() == 2);
  TempDir out;
  auto w = LayoutWriter::to_directory(out.path / "l");
  export_images(store.blobs, *store.meta, {{"", "local/app", "v1", top, 0}}, *w, 1 << 20);
  w->finish();
  auto r = LayoutReader::open(out.path / "l");
  REQUIRE(r->refs().size() == 1);
  CHECK(r->refs()[0].media_type == kManifestType);
}

TEST_CASE("offline_transfer: export refuses an image whose layer is not cached") {
  Store store;
  auto img = make_image("linux", "amd64", "partial");
  store.put(img.config, "", "up", "a");
  Digest top = store.put(img.manifest, kManifestType, "up", "a");
  TempDir out;
  auto w = LayoutWriter::to_directory(out.path / "l");
  CHECK_THROWS_WITH_AS(export_images(store.blobs, *store.meta, {{"up", "a", "v1", top, 0}}, *w, 1 << 20),
                       doctest::Contains("is not cached"), std::runtime_error);
}

TEST_CASE("offline_transfer: import restores tags into their namespaces - a second import changes nothing") {
  Store source;
  auto img = make_image("linux", "amd64", "roundtrip");
  source.put_image(img, "docker.io", "library/alpine");
  Digest top = sha256_of(img.manifest);
  source.meta->put_tag("docker.io", "library/alpine", "3.19", top, 1700000000);
  TempDir out;
  {
    auto w = LayoutWriter::to_tar(out.path / "l.tar");
    export_images(source.blobs, *source.meta, {{"docker.io", "library/alpine", "3.19", top, 1700000000}}, *w, 1 << 20);
    w->finish();
  }
  Store target;
  auto layout = LayoutReader::open(out.path / "l.tar");
  auto items = items_from_annotations(*layout);
  auto first = import_layout(target.blobs, *target.meta, *layout, items, 1 << 20, 1800000000);
  CHECK(first.objects_copied == 3);
  CHECK(first.tags_set == 1);
  auto tag = target.meta->find_tag("docker.io", "library/alpine", "3.19");
  REQUIRE(tag);
  CHECK(tag->digest == top);
  CHECK(tag->confirmed_at == 1700000000);  // as confirmed upstream, not the import time
  CHECK(target.meta->find_blob(top)->media_type == kManifestType);
  // What the repository serves the manifest as is its link's media type.
  REQUIRE(target.meta->find_link("docker.io", "library/alpine", top));
  CHECK(target.meta->find_link("docker.io", "library/alpine", top)->media_type == kManifestType);
  CHECK(target.meta->is_linked("docker.io", "library/alpine", sha256_of(img.layer)));
  auto files = files_below(target.dir.path / "blobs");
  auto blob_rows = target.meta->list_blobs();

  auto second = import_layout(target.blobs, *target.meta, *layout, items, 1 << 20, 1900000000);
  CHECK(second.objects_copied == 0);
  CHECK(second.objects_present == 3);
  CHECK(second.tags_set == 0);
  CHECK(second.tags_unchanged == 1);
  CHECK(files_below(target.dir.path / "blobs") == files);
  auto rows_after = target.meta->list_blobs();
  REQUIRE(rows_after.size() == blob_rows.size());
  for (std::size_t i = 0; i < rows_after.size(); ++i) CHECK(rows_after[i].last_access == blob_rows[i].last_access);
}

TEST_CASE("offline_transfer: import refuses a corrupted blob and publishes nothing") {
  Store source;
  auto img = make_image("linux", "amd64", "corrupt");
  source.put_image(img, "up", "test/app");
  Digest top = sha256_of(img.manifest);
  source.meta->put_tag("up", "test/app", "v1", top, 1700000000);
  TempDir out;
  {
    auto w = LayoutWriter::to_directory(out.path / "l");
    export_images(source.blobs, *source.meta, {{"up", "test/app", "v1", top, 1700000000}}, *w, 1 << 20);
    w->finish();
  }
  // One flipped byte in the layer, same size.
  fs::path layer = out.path / "l" / "blobs" / "sha256" / sha256_of(img.layer).hex();
  std::string bytes = read_file(layer);
  bytes[bytes.size() / 2] ^= 0x01;
  write_file(layer, bytes);

  Store target;
  auto layout = LayoutReader::open(out.path / "l");
  const std::string expected = sha256_of(img.layer).str() + " does not hash to its digest";
  CHECK_THROWS_WITH_AS(import_layout(target.blobs, *target.meta, *layout, items_from_annotations(*layout), 1 << 20, 1),
                       doctest::Contains(expected.c_str()), ImportError);
  CHECK(target.blobs.list().empty());
  CHECK(target.meta->list_blobs().empty());
  CHECK_FALSE(target.meta->find_tag("up", "test/app", "v1"));
  CHECK(target.meta->list_namespaces().empty());
}

TEST_CASE("offline_transfer: a layout without regcache annotations needs a target") {
  TempDir tmp;
  auto img = make_image("linux", "amd64", "foreign");
  auto w = LayoutWriter::to_directory(tmp.path / "l");
  for (const auto* bytes : {&img.config, &img.layer, &img.manifest}) w->add_blob_bytes(sha256_of(*bytes), *bytes);
  Descriptor top;
  top.media_type = kManifestType;
  top.digest = sha256_of(img.manifest);
  top.size = img.manifest.size();
  top.annotations[kAnnotationRefName] = "v1";
  w->add_ref(top);
  w->finish();
  auto layout = LayoutReader::open(tmp.path / "l");
  CHECK_THROWS_WITH_AS(items_from_annotations(*layout), doctest::Contains("--into"), ImportError);

  // Into a hosted repository: manifest references are recorded, as for a push.
  Store target;
  Descriptor plain = layout->refs()[0];
  plain.annotations.clear();
  auto stats = import_layout(target.blobs, *target.meta, *layout, {{plain, "", "local/app", "v1", 0}}, 1 << 20, 42);
  CHECK(stats.tags_set == 1);
  CHECK(target.meta->find_tag("", "local/app", "v1")->confirmed_at == 42);
  CHECK(target.meta->manifests_referencing("", "local/app", sha256_of(img.layer)) ==
        std::vector<Digest>{sha256_of(img.manifest)});
}
