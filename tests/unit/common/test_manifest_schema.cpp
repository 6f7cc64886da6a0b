// Unit tests for the hosted-manifest checks (common/manifest_schema.h).
#include <doctest/doctest.h>

#include <string>

#include "common/error.h"
#include "common/manifest_schema.h"

using namespace regcache;
using nlohmann::json;

namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');

json descriptor(const std::string& media_type = "application/vnd.oci.image.layer.v1.tar+gzip") {
  return {{"mediaType", media_type}, {"digest", kDigest}, {"size", 12}};
}

json image() {
  return {{"schemaVersion", 2},
          {"mediaType", kOciManifest},
          {"config", descriptor("application/vnd.oci.image.config.v1+json")},
          {"layers", json::array({descriptor()})}};
}

json index() {
  return {{"schemaVersion", 2}, {"mediaType", kOciIndex}, {"manifests", json::array({descriptor(kOciManifest)})}};
}

// The message of the ManifestInvalid that validating `doc` throws, or "(valid)".
std::string refusal(const json& doc, const std::string& content_type) {
  try {
    validate_manifest(doc, content_type);
  } catch (const RegistryError& e) {
    CHECK(e.code() == ErrorCode::ManifestInvalid);
    return e.what();
  }
  return "(valid)";
}

}  // namespace

TEST_CASE("manifest schema: the four known types are accepted with a matching Content-Type") {
  CHECK(validate_manifest(image(), kOciManifest) == kOciManifest);
  CHECK(validate_manifest(index(), kOciIndex) == kOciIndex);
  json docker = image();
  docker["mediaType"] = kDockerManifest;
  CHECK(validate_manifest(docker, kDockerManifest) == kDockerManifest);
  json list = index();
  list["mediaType"] = kDockerManifestList;
  CHECK(validate_manifest(list, kDockerManifestList) == kDockerManifestList);
}

TEST_CASE("manifest schema: Content-Type parameters, blanks and case are ignored") {
  CHECK(validate_manifest(image(), std::string(kOciManifest) + "; charset=utf-8") == kOciManifest);
  CHECK(validate_manifest(image(), " Application/VND.OCI.image.manifest.v1+JSON ") == kOciManifest);
}

TEST_CASE("manifest schema: without a body mediaType the Content-Type decides, and artifacts are manifests") {
  json doc = image();
  doc.erase("mediaType");
  doc["artifactType"] = "application/vnd.example+json";
  doc["layers"] = json::array();
  CHECK(validate_manifest(doc, kOciManifest) == kOciManifest);
  CHECK(refusal(doc, kOciIndex).find("no config or layers") != std::string::npos);
}

TEST_CASE("manifest schema: a missing, unknown or disagreeing Content-Type is refused") {
  CHECK(refusal(image(), "").find("needs a Content-Type") != std::string::npos);
  CHECK(refusal(image(), "text/html").find("not a manifest media type") != std::string::npos);
  CHECK(refusal(image(), "application/vnd.docker.distribution.manifest.v1+prettyjws") != "(valid)");
  CHECK(refusal(image(), kOciIndex).find("does not match") != std::string::npos);
  json html = image();
  html["mediaType"] = "text/html";
  CHECK(refusal(html, "text/html") != "(valid)");
}

TEST_CASE("manifest schema: schemaVersion must be the integer 2") {
  for (json v : {json(1), json("2"), json(2.5), json(nullptr)}) {
    json doc = image();
    doc["schemaVersion"] = v;
    CHECK(refusal(doc, kOciManifest).find("schemaVersion") != std::string::npos);
  }
  json doc = image();
  doc.erase("schemaVersion");
  CHECK(refusal(doc, kOciManifest) != "(valid)");
  CHECK(refusal(json::array(), kOciManifest).find("not a JSON object") != std::string::npos);
}

TEST_CASE("manifest schema: annotations must be string->string maps everywhere") {
  json nested = {{"k", {{"deeper", "x"}}}};
  json doc = image();
  doc["annotations"] = nested;
  CHECK(refusal(doc, kOciManifest).find("manifest.annotations") != std::string::npos);
  doc = image();
  doc["annotations"] = json::array({"a"});
  CHECK(refusal(doc, kOciManifest) != "(valid)");
  doc = image();
  doc["layers"][0]["annotations"] = {{"n", 1}};
  CHECK(refusal(doc, kOciManifest).find("layers[0].annotations") != std::string::npos);
  doc = image();
  doc["config"]["annotations"] = {{"n", nullptr}};
  CHECK(refusal(doc, kOciManifest).find("config.annotations") != std::string::npos);
  json idx = index();
  idx["manifests"][0]["annotations"] = {{"n", json::array()}};
  CHECK(refusal(idx, kOciIndex).find("manifests[0].annotations") != std::string::npos);
  doc = image();
  doc["subject"] = descriptor(kOciManifest);
  doc["subject"]["annotations"] = {{"n", true}};
  CHECK(refusal(doc, kOciManifest).find("subject.annotations") != std::string::npos);
  doc = image();
  doc["annotations"] = {{"org.opencontainers.image.title", "<script>"}};
  CHECK(refusal(doc, kOciManifest) == "(valid)");
}

TEST_CASE("manifest schema: descriptors need a string mediaType, a valid digest and a size >= 0") {
  auto with = [](const char* field, json value) {
    json doc = image();
    doc["layers"][0][field] = value;
    return refusal(doc, kOciManifest);
  };
  CHECK(with("digest", "sha256:short").find("digest") != std::string::npos);
  CHECK(with("digest", 5) != "(valid)");
  CHECK(with("digest", "sha256:../../etc/passwd") != "(valid)");
  CHECK(with("size", -1).find("size") != std::string::npos);
  CHECK(with("size", "12") != "(valid)");
  CHECK(with("size", 1.5) != "(valid)");
  CHECK(with("mediaType", 7).find("mediaType") != std::string::npos);
  CHECK(with("mediaType", "") != "(valid)");
  CHECK(with("urls", "http://x") != "(valid)");
  CHECK(with("urls", json::array({1})) != "(valid)");
  CHECK(with("urls", json::array({"http://127.0.0.1/x"})) == "(valid)");
  json doc = image();
  doc["layers"][0] = "sha256:" + std::string(64, 'a');
  CHECK(refusal(doc, kOciManifest).find("layers[0]") != std::string::npos);
  doc = image();
  doc.erase("config");
  CHECK(refusal(doc, kOciManifest).find("no config") != std::string::npos);
  doc = image();
  doc["layers"] = descriptor();
  CHECK(refusal(doc, kOciManifest).find("layers must be a list") != std::string::npos);
  json idx = index();
  idx["manifests"][0]["platform"] = "linux/amd64";
  CHECK(refusal(idx, kOciIndex).find("platform") != std::string::npos);
  idx = index();
  idx.erase("manifests");
  CHECK(refusal(idx, kOciIndex).find("manifests is required") != std::string::npos);
}

TEST_CASE("manifest schema: parse_manifest_json refuses text over budget and non-JSON") {
  std::string deep;
  for (int i = 0; i < 6000; ++i) deep += "{\"a\":";
  deep += "1" + std::string(6000, '}');
  CHECK_THROWS_AS(parse_manifest_json(R"({"schemaVersion":2,"annotations":)" + deep + "}"), RegistryError);
  CHECK_THROWS_AS(parse_manifest_json(std::string(2'000'000, '[') + std::string(2'000'000, ']')), RegistryError);
  CHECK_THROWS_AS(parse_manifest_json("{not json"), RegistryError);
  CHECK(parse_manifest_json(image().dump()) == image());
}

TEST_CASE("manifest schema: known_manifest_media_type") {
  CHECK(known_manifest_media_type("application/vnd.oci.image.index.v1+json;x=y") == kOciIndex);
  CHECK(known_manifest_media_type("application/json") == "");
  CHECK(known_manifest_media_type("") == "");
}

TEST_CASE("manifest schema: is_servable_manifest_media_type - vendor types only, no header-splitting bytes") {
  for (const char* known : kManifestMediaTypes) CHECK(is_servable_manifest_media_type(known));
  CHECK(is_servable_manifest_media_type("application/vnd.docker.distribution.manifest.v1+prettyjws"));
  CHECK(is_servable_manifest_media_type("application/vnd.example.artifact.v1+json"));
  for (const char* bad : {"text/html", "image/svg+xml", "application/xhtml+xml", "application/xml", "application/json",
                          "application/vnd.", "application/vnd.x\r\nSet-Cookie: a=1", "application/vnd.x; charset=utf-8",
                          "application/vnd.X", "", "application/vnd.x\n"})
    CHECK_MESSAGE(!is_servable_manifest_media_type(bad), bad);
}

// Media types are tokens (RFC 6838): a control byte, NUL above all (JSON's
// "\u0000"), is refused before it reaches a metadata store that would cut the
// value at the NUL (PostgreSQL text) while another keeps it (SQLite).
TEST_CASE("manifest schema: a media type or artifactType with a control byte is refused") {
  const std::string nul("application/vnd.example\0tail", 28);
  json doc = image();
  doc["artifactType"] = nul;
  CHECK(refusal(doc, kOciManifest).find("manifest.artifactType") != std::string::npos);
  doc = image();
  doc["config"]["mediaType"] = nul;
  CHECK(refusal(doc, kOciManifest).find("config.mediaType") != std::string::npos);
  doc = image();
  doc["layers"][0]["artifactType"] = "application/x\r\nX-Injected: 1";
  CHECK(refusal(doc, kOciManifest) != "(valid)");
  doc = image();
  doc["subject"] = descriptor(kOciManifest);
  doc["subject"]["mediaType"] = std::string("application/x\x7f", 14);
  CHECK(refusal(doc, kOciManifest) != "(valid)");
  doc = image();
  doc["artifactType"] = "application/vnd.example.sbom+json";
  CHECK(refusal(doc, kOciManifest) == "(valid)");
}
