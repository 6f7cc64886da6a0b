#pragma once
// The reference syntax of the offline-mirror commands (warm, export, import,
// ls): what a user types to name images, and the pure choices made over it.
//
//   docker.io/library/alpine:3.19        a tag on a named registry
//   ghcr.io/org/app@sha256:<64 hex>      a digest (a tag before '@' is ignored)
//   quay.io/org/app:*                    every tag (tags/list), optionally a glob:
//   quay.io/org/app:v1.*                 '*' any run of characters, '?' one
//   upstream/test/app                    no registry host: the first component may
//                                        still name an upstream (path-prefix routing)
//
// The first component names a registry when it has a '.' or ':' or is
// "localhost" (Docker's rule). Docker Hub's aliases become "docker.io", and a
// one-component Docker Hub name gets "library/", as engines send it.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/digest.h"

namespace regcache {

struct ImageRef {
  std::string registry;          // "docker.io", "" when the reference names none
  std::string repository;        // "library/alpine": valid RepoName
  std::string tag;               // "3.19"; empty for a digest or a pattern
  std::optional<Digest> digest;  // set for name@digest
  std::string tag_pattern;       // "*" or a glob: expand against the tag list

  bool expands() const { return !tag_pattern.empty(); }
  // registry/repository, or repository alone.
  std::string name() const;
  // The reference as it would be typed back: name:tag, name@digest, name:pattern.
  std::string str() const;
};

// Parses one reference. Returns nullopt and sets `error` to a message naming
// what is wrong. A name alone means ":latest".
std::optional<ImageRef> parse_image_ref(std::string_view text, std::string& error);

// References from a list file: one per line; '#' starts a comment; blank lines
// are skipped. Lines are returned trimmed and unparsed.
std::vector<std::string> read_reference_lines(std::string_view text);

// Shell-style match: '*' any run (also empty), '?' exactly one character.
bool glob_match(std::string_view pattern, std::string_view text);

// Tag order used for "newest": tags/list carries no dates, so "newest" means
// last in version order — runs of digits compare as numbers ("v1.10" after
// "v1.9"), everything else byte by byte; ties fall back to plain byte order.
// Negative, zero or positive like strcmp.
int compare_tag_versions(std::string_view a, std::string_view b);

// The tags matching `pattern`, in version order; with `newest` > 0 only the
// last `newest` of them.
std::vector<std::string> select_tags(std::vector<std::string> tags, std::string_view pattern, std::size_t newest);

// An image platform as "os/architecture[/variant]".
struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;  // "" = any
  std::string str() const;
  friend bool operator==(const Platform&, const Platform&) = default;
};

// Parses a comma-separated list ("linux/amd64,linux/arm64/v8"). nullopt and an
// error message on a malformed entry. An empty text is an empty list.
std::optional<std::vector<Platform>> parse_platforms(std::string_view text, std::string& error);

// Whether an image of platform `have` is one of `wanted` (an empty list wants
// every platform). A wanted entry without a variant takes any variant; one with
// a variant takes that variant, and "arm64/v8" also an arm64 without one.
bool platform_wanted(const Platform& have, const std::vector<Platform>& wanted);

}  // namespace regcache
