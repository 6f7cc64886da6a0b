#include "cache/pins.h"

#include <deque>
#include <nlohmann/json.hpp>

#include "common/json_guard.h"
#include "common/names.h"

namespace regcache::cache {

std::optional<PinPattern> parse_pin(const std::string& text, std::string& why) {
  PinPattern pin;
  pin.text = text;
  auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0) {
    why = "must start with an upstream's name and '/' (e.g. docker.io/library/alpine:3.19)";
    return std::nullopt;
  }
  pin.ns = text.substr(0, slash);
  std::string rest = text.substr(slash + 1);
  if (rest.empty() || rest.back() == '/') {
    pin.kind = PinPattern::Kind::Prefix;
    pin.repo = rest;
    if (!rest.empty() && !RepoName::parse(rest.substr(0, rest.size() - 1))) {
      why = "is not a repository-name prefix (lowercase components separated by '/', ending with '/')";
      return std::nullopt;
    }
    return pin;
  }
  if (auto at = rest.find('@'); at != std::string::npos) {
    pin.kind = PinPattern::Kind::Digest;
    pin.repo = rest.substr(0, at);
    pin.tag = rest.substr(at + 1);
    if (!Digest::parse(pin.tag)) {
      why = "has an invalid digest after '@'";
      return std::nullopt;
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    pin.repo = rest.substr(0, colon);
    pin.tag = rest.substr(colon + 1);
    if (pin.tag == "*") {
      pin.kind = PinPattern::Kind::AllTags;
    } else if (!valid_tag(pin.tag)) {
      why = "has an invalid tag after ':' (use ':*' for every tag)";
      return std::nullopt;
    }
  } else {
    why = "needs a tag (':3.19'), every tag (':*'), a digest ('@sha256:…') or a trailing '/' for a prefix";
    return std::nullopt;
  }
  if (!RepoName::parse(pin.repo)) {
    why = "names an invalid repository '" + pin.repo + "'";
    return std::nullopt;
  }
  return pin;
}

std::vector<Digest> manifest_children(const std::string& body) {
  std::vector<Digest> out;
  if (json_budget_violation(body)) return out;
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return out;
  auto add = [&](const nlohmann::json& descriptor) {
    if (!descriptor.is_object()) return;
    auto it = descriptor.find("digest");
    if (it == descriptor.end() || !it->is_string()) return;
    if (auto d = Digest::parse(it->get<std::string>())) out.push_back(*d);
  };
  for (const char* list : {"manifests", "layers", "blobs"})
    if (auto it = doc.find(list); it != doc.end() && it->is_array())
      for (const auto& d : *it) add(d);
  if (auto it = doc.find("config"); it != doc.end()) add(*it);
  return out;
}

std::unordered_set<std::string> pinned_digests(db::MetadataStore& meta, BlobStore& blobs,
                                               const std::vector<PinPattern>& pins, std::size_t max_manifest_bytes) {
  std::unordered_set<std::string> kept;
  std::deque<Digest> to_read;  // manifests whose references are still to be kept
  auto keep = [&](const Digest& d) {
    if (kept.insert(d.str()).second) to_read.push_back(d);
  };
  auto keep_tag = [&](const std::string& ns, const std::string& repo, const std::string& tag) {
    if (auto t = meta.find_tag(ns, repo, tag)) keep(t->digest);
  };
  for (const auto& pin : pins) {
    switch (pin.kind) {
      case PinPattern::Kind::Tag: keep_tag(pin.ns, pin.repo, pin.tag); break;
      case PinPattern::Kind::Digest:
        if (auto d = Digest::parse(pin.tag)) keep(*d);
        break;
      case PinPattern::Kind::AllTags:
        for (const auto& tag : meta.list_tags(pin.ns, pin.repo)) keep_tag(pin.ns, pin.repo, tag);
        break;
      case PinPattern::Kind::Prefix:
        for (const auto& repo : meta.list_repositories(pin.ns)) {
          // Whole components: "library/" matches library/alpine, and
          // "library/alpine/" matches library/alpine itself and below it.
          if (repo.compare(0, pin.repo.size(), pin.repo) != 0 && repo + "/" != pin.repo) continue;
          for (const auto& d : meta.list_links(pin.ns, repo)) keep(d);
          for (const auto& tag : meta.list_tags(pin.ns, repo)) keep_tag(pin.ns, repo, tag);
        }
        break;
    }
  }
  // Breadth first over what the kept manifests reference: an index's
  // platforms are manifests too. `kept` stops cycles; each object is read once.
  while (!to_read.empty()) {
    Digest d = to_read.front();
    to_read.pop_front();
    auto reader = blobs.open(d);
    if (!reader || reader->size() > max_manifest_bytes || reader->size() == 0) continue;
    // Layers are large and not JSON: only read what starts like a JSON object.
    char first = 0;
    if (reader->read_at(0, &first, 1) != 1 || first != '{') continue;
    std::string body(reader->size(), '\0');
    std::size_t got = 0;
    while (got < body.size()) {
      std::size_t n = reader->read_at(got, body.data() + got, body.size() - got);
      if (n == 0) break;
      got += n;
    }
    if (got != body.size()) continue;
    for (const auto& child : manifest_children(body)) keep(child);
  }
  return kept;
}

}  // namespace regcache::cache
