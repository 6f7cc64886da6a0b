#pragma once
// Repository names and manifest references, validated by the grammar of the
// OCI distribution spec ("Pulling manifests"). Values of these types are valid
// by construction: parse at the edge, pass typed values inward.
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/digest.h"

namespace regcache {

class RepoName {
 public:
  // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*, at most 255 chars.
  static std::optional<RepoName> parse(std::string_view text);
  const std::string& str() const { return value_; }
  friend bool operator==(const RepoName&, const RepoName&) = default;
  friend auto operator<=>(const RepoName&, const RepoName&) = default;

 private:
  explicit RepoName(std::string v) : value_(std::move(v)) {}
  std::string value_;
};

// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
bool valid_tag(std::string_view text);

// A manifest reference: a tag or a digest.
class Reference {
 public:
  static Reference tag(std::string t) { return Reference(std::move(t)); }
  static Reference digest(Digest d) { return Reference(std::move(d)); }
  bool is_digest() const { return std::holds_alternative<Digest>(v_); }
  const Digest& as_digest() const { return std::get<Digest>(v_); }
  const std::string& as_tag() const { return std::get<std::string>(v_); }
  std::string str() const { return is_digest() ? as_digest().str() : as_tag(); }

 private:
  explicit Reference(std::string t) : v_(std::move(t)) {}
  explicit Reference(Digest d) : v_(std::move(d)) {}
  std::variant<std::string, Digest> v_;
};

}  // namespace regcache
