#pragma once
// The checks a manifest pushed to a hosted repository passes before anything
// is stored: bounded parsing (common/json_guard.h) and the shape of the OCI
// image manifest / image index (OCI image-spec 1.1, artifacts included) and of
// Docker's schema 2 manifest / manifest list. Pure functions; every refusal is
// RegistryError(ManifestInvalid) saying what is wrong.
//
// What they promise once they return: the document is an object with
// schemaVersion 2; every descriptor (config, layers, manifests[], subject) is
// an object with a string mediaType, a valid digest and a non-negative integer
// size; every `annotations` (document and descriptors) is a string->string
// map; the media type is one of kManifestMediaTypes and agrees with both the
// Content-Type and the body's own mediaType.
#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace regcache {

inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::array<const char*, 4> kManifestMediaTypes = {kOciManifest, kOciIndex, kDockerManifest,
                                                                   kDockerManifestList};

// The known manifest media type `text` names (parameters, surrounding blanks
// and letter case ignored), in its canonical spelling; "" when it names none.
std::string known_manifest_media_type(std::string_view text);
bool is_index_media_type(std::string_view media_type);

// Whether a manifest media type an upstream gave us (its Content-Type, or the
// body's "mediaType") may become our response's Content-Type: a known type,
// or "application/vnd." and RFC 6838 restricted-name characters (lowercase)
// — schema 1, artifacts. Never a CR/LF or other byte that would split our
// response, never a type a browser renders (text/html, image/svg+xml, xml).
bool is_servable_manifest_media_type(std::string_view media_type);

// The DOM of a manifest body, parsed only when it fits the JSON budget (depth
// 64, 100 000 values). Throws ManifestInvalid for a body over budget or not JSON.
nlohmann::json parse_manifest_json(std::string_view body);

// Validates a parsed manifest pushed with `content_type` (the request header,
// possibly empty); returns the media type to store and serve it with.
std::string validate_manifest(const nlohmann::json& doc, std::string_view content_type);

}  // namespace regcache
