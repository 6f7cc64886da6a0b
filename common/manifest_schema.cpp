#include "common/manifest_schema.h"

#include <algorithm>
#include <cctype>

#include "common/digest.h"
#include "common/error.h"
#include "common/json_guard.h"

namespace regcache {
namespace {

using nlohmann::json;

[[noreturn]] void invalid(const std::string& why) { throw RegistryError(ErrorCode::ManifestInvalid, why); }

// A field that, when present, must be a string.
void optional_string(const json& object, const char* key, const std::string& where) {
  if (auto it = object.find(key); it != object.end() && !it->is_string())
    invalid(where + "." + key + " must be a string");
}

// A media type (RFC 6838 token): no control bytes, NUL above all, which one
// metadata store would cut the value at and another would keep.
bool has_control_byte(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

// A field that, when present, must be a string fit for a media type.
void optional_media_type(const json& object, const char* key, const std::string& where) {
  optional_string(object, key, where);
  if (auto it = object.find(key); it != object.end() && has_control_byte(it->get_ref<const std::string&>()))
    invalid(where + "." + key + " holds a control byte");
}

void check_annotations(const json& object, const std::string& where) {
  auto it = object.find("annotations");
  if (it == object.end()) return;
  if (!it->is_object()) invalid(where + ".annotations must be an object of strings");
  for (auto entry = it->begin(); entry != it->end(); ++entry)
    if (!entry->is_string()) invalid(where + ".annotations[\"" + entry.key() + "\"] must be a string");
}

void check_descriptor(const json& d, const std::string& where) {
  if (!d.is_object()) invalid(where + " must be a descriptor object");
  auto media_type = d.find("mediaType");
  if (media_type == d.end() || !media_type->is_string() || media_type->get_ref<const std::string&>().empty())
    invalid(where + ".mediaType must be a non-empty string");
  if (has_control_byte(media_type->get_ref<const std::string&>())) invalid(where + ".mediaType holds a control byte");
  auto digest = d.find("digest");
  if (digest == d.end() || !digest->is_string() || !Digest::parse(digest->get_ref<const std::string&>()))
    invalid(where + ".digest must be a valid digest");
  auto size = d.find("size");
  if (size == d.end() || !(size->is_number_unsigned() || (size->is_number_integer() && size->get<std::int64_t>() >= 0)))
    invalid(where + ".size must be a non-negative integer");
  if (auto urls = d.find("urls"); urls != d.end()) {
    if (!urls->is_array()) invalid(where + ".urls must be a list of strings");
    for (const auto& u : *urls)
      if (!u.is_string()) invalid(where + ".urls must be a list of strings");
  }
  optional_media_type(d, "artifactType", where);
  optional_string(d, "data", where);
  if (auto platform = d.find("platform"); platform != d.end()) {
    if (!platform->is_object()) invalid(where + ".platform must be an object");
    optional_string(*platform, "architecture", where + ".platform");
    optional_string(*platform, "os", where + ".platform");
    optional_string(*platform, "variant", where + ".platform");
    optional_string(*platform, "os.version", where + ".platform");
  }
  check_annotations(d, where);
}

void check_descriptor_list(const json& doc, const char* key, bool required) {
  auto it = doc.find(key);
  if (it == doc.end()) {
    if (required) invalid(std::string(key) + " is required");
    return;
  }
  if (!it->is_array()) invalid(std::string(key) + " must be a list of descriptors");
  std::size_t i = 0;
  for (const auto& entry : *it) check_descriptor(entry, std::string(key) + "[" + std::to_string(i++) + "]");
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string known_manifest_media_type(std::string_view text) {
  std::string wanted = lower(trim(text.substr(0, text.find(';'))));
  for (const char* known : kManifestMediaTypes)
    if (wanted == known) return known;
  return {};
}

bool is_servable_manifest_media_type(std::string_view media_type) {
  for (const char* known : kManifestMediaTypes)
    if (media_type == known) return true;
  constexpr std::string_view kVendor = "application/vnd.";
  if (!media_type.starts_with(kVendor) || media_type.size() == kVendor.size() || media_type.size() > 255) return false;
  return std::all_of(media_type.begin() + kVendor.size(), media_type.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || std::string_view("!#$&^_.+-").find(c) != std::string_view::npos;
  });
}

bool is_index_media_type(std::string_view media_type) {
  return media_type == kOciIndex || media_type == kDockerManifestList;
}

nlohmann::json parse_manifest_json(std::string_view body) {
  if (auto why = json_budget_violation(body)) invalid("manifest refused: " + *why);
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) invalid("manifest is not valid JSON");
  return doc;
}

std::string validate_manifest(const json& doc, std::string_view content_type) {
  if (!doc.is_object()) invalid("manifest is not a JSON object");
  if (auto v = doc.find("schemaVersion"); v == doc.end() || !v->is_number_integer() || v->get<std::int64_t>() != 2)
    invalid("manifest schemaVersion must be 2");

  // The media type: the Content-Type must name a manifest type, and the body's
  // own mediaType (when it has one) must be the same. A type the registry does
  // not know (text/html, schema 1, ...) is never stored, so never served back.
  std::string header(trim(content_type.substr(0, content_type.find(';'))));
  if (header.empty()) invalid("a manifest PUT needs a Content-Type naming the manifest's media type");
  std::string media_type = known_manifest_media_type(header);
  if (media_type.empty()) invalid("Content-Type " + header + " is not a manifest media type this registry accepts");
  if (auto declared = doc.find("mediaType"); declared != doc.end()) {
    if (!declared->is_string()) invalid("mediaType must be a string");
    if (declared->get_ref<const std::string&>() != media_type)
      invalid("Content-Type " + header + " does not match the manifest's mediaType " +
              declared->get_ref<const std::string&>());
  }

  optional_media_type(doc, "artifactType", "manifest");
  check_annotations(doc, "manifest");
  if (auto subject = doc.find("subject"); subject != doc.end()) check_descriptor(*subject, "subject");
  if (is_index_media_type(media_type)) {
    if (doc.contains("config") || doc.contains("layers")) invalid("an index has no config or layers");
    check_descriptor_list(doc, "manifests", true);
  } else {
    if (doc.contains("manifests")) invalid("an image manifest has no manifests list (is it an index?)");
    auto config = doc.find("config");
    if (config == doc.end()) invalid("manifest has no config");
    check_descriptor(*config, "config");
    check_descriptor_list(doc, "layers", false);
  }
  return media_type;
}

}  // namespace regcache
