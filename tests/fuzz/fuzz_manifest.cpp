// Manifests and indexes: the JSON budget (common/json_guard.h), the hosted
// PUT checks (common/manifest_schema.h) and the media-type sniffing of
// upstream bodies (cache/policy.h). The first byte picks the Content-Type.
#include "cache/policy.h"
#include "common/error.h"
#include "common/json_guard.h"
#include "common/manifest_schema.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const char* content_types[] = {
      regcache::kOciManifest, regcache::kOciIndex, regcache::kDockerManifest, regcache::kDockerManifestList,
      "", "text/html", "application/vnd.oci.image.manifest.v1+json; charset=utf-8", "application/json"};
  std::string_view content_type = content_types[size > 0 ? data[0] % 8 : 0];
  std::string_view body = size > 0 ? as_text(data + 1, size - 1) : std::string_view();

  bool within_budget = !regcache::json_budget_violation(body);
  try {
    auto doc = regcache::parse_manifest_json(body);
    FUZZ_CHECK(within_budget);  // nothing over budget is ever parsed
    std::string media_type = regcache::validate_manifest(doc, content_type);
    FUZZ_CHECK(!regcache::known_manifest_media_type(media_type).empty());
    FUZZ_CHECK(regcache::known_manifest_media_type(content_type) == media_type);
    if (auto a = doc.find("annotations"); a != doc.end())
      for (const auto& v : *a) FUZZ_CHECK(v.is_string());
    doc.dump();  // recursion bounded by the budget's depth
  } catch (const regcache::RegistryError& e) {
    FUZZ_CHECK(e.code() == regcache::ErrorCode::ManifestInvalid);
  }
  std::string sniffed = regcache::cache::sniff_manifest_media_type(body);
  FUZZ_CHECK(!sniffed.empty() || body.find("\"mediaType\"") != std::string_view::npos);
  return 0;
}
