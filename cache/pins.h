#pragma once
// Pins: references whose content eviction never removes (config `pins`).
//
//   docker.io/library/alpine:3.19     one tag of one repository
//   docker.io/library/alpine@sha256:… one manifest by digest
//   docker.io/library/debian:*        every tag of one repository
//   docker.io/library/                every repository under a prefix (ends with '/'; whole
//                                     components: library/alpine/ is library/alpine and below),
//   docker.io/                        or a whole upstream: everything its repositories link
//
// The first component names the upstream (the metadata namespace). What a pin
// keeps is the manifests it matches and, read from the stored manifests,
// everything they reference: every platform's manifest of an index, configs,
// layers. Hosted repositories are always kept and need no pin.
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "cache/blob_store.h"
#include "db/metadata_store.h"

namespace regcache::cache {

struct PinPattern {
  enum class Kind { Tag, Digest, AllTags, Prefix };
  Kind kind = Kind::Tag;
  std::string ns;        // the upstream's name
  std::string repo;      // the repository, or for Prefix the prefix ("" or ending with '/')
  std::string tag;       // Tag: the tag; Digest: the digest
  std::string text;      // as configured
};

// Parses one configured pin; nullopt with `why` filled in when it is not one.
std::optional<PinPattern> parse_pin(const std::string& text, std::string& why);

// The digests (as strings) the pins keep, with everything their stored
// manifests reference. Manifests larger than `max_manifest_bytes` or not
// stored are kept themselves but not read. Reads only; cost grows with the
// pinned content, not with the store.
std::unordered_set<std::string> pinned_digests(db::MetadataStore& meta, BlobStore& blobs,
                                               const std::vector<PinPattern>& pins, std::size_t max_manifest_bytes);

// The digests a manifest's JSON references (manifests[], config, layers,
// blobs[]); empty when it is not a JSON object. Pure.
std::vector<Digest> manifest_children(const std::string& body);

}  // namespace regcache::cache
