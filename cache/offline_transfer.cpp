#include "cache/offline_transfer.h"

#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "cache/policy.h"
#include "common/names.h"

namespace regcache::cache {
namespace {

constexpr int kMaxDepth = 4;                 // index -> index -> manifest is already unusual
constexpr std::size_t kMaxConfigBytes = 1 << 20;

std::string read_stored(BlobStore& blobs, const Digest& digest, std::size_t max_bytes) {
  auto reader = blobs.open(digest);
  if (!reader) throw std::runtime_error(digest.str() + " is not stored");
  if (reader->size() > max_bytes)
    throw std::runtime_error(digest.str() + " has " + std::to_string(reader->size()) + " bytes, over the limit of " +
                             std::to_string(max_bytes));
  std::string body(static_cast<std::size_t>(reader->size()), '\0');
  std::size_t got = 0;
  while (got < body.size()) {
    std::size_t n = reader->read_at(got, body.data() + got, body.size() - got);
    if (n == 0) throw std::runtime_error(digest.str() + " is shorter than its size");
    got += n;
  }
  return body;
}

std::optional<Platform> platform_of_config(std::string_view config) {
  auto doc = nlohmann::json::parse(config, nullptr, false);
  if (!doc.is_object() || !doc.contains("os") || !doc.contains("architecture") || !doc["os"].is_string() ||
      !doc["architecture"].is_string())
    return std::nullopt;
  std::string variant = doc.contains("variant") && doc["variant"].is_string() ? doc["variant"].get<std::string>() : "";
  return Platform{doc["os"].get<std::string>(), doc["architecture"].get<std::string>(), variant};
}

class StoreWalker {
 public:
  StoreWalker(BlobStore& blobs, db::MetadataStore& meta, std::string ns, std::string repo,
              std::size_t max_manifest_bytes, StoredImage& out)
      : blobs_(blobs), meta_(meta), ns_(std::move(ns)), repo_(std::move(repo)), max_(max_manifest_bytes), out_(out) {}

  void walk(const Digest& digest, std::string media_type, std::optional<Platform> platform, int depth) {
    if (depth > kMaxDepth) throw std::runtime_error("manifests nested deeper than " + std::to_string(kMaxDepth));
    if (!seen_.insert(digest.str()).second) return;
    auto row = meta_.find_blob(digest);
    if (!row) throw std::runtime_error("manifest " + digest.str() + " is not stored");
    std::string body = read_stored(blobs_, digest, max_);
    // What this repository serves the manifest as (its link), else the hint
    // the first fetch left on the blob row, else what the body says it is.
    if (media_type.empty())
      if (auto link = meta_.find_link(ns_, repo_, digest)) media_type = link->media_type;
    if (media_type.empty()) media_type = row->media_type;
    if (media_type.empty() || !is_manifest_media_type(media_type)) media_type = sniff_manifest_media_type(body);
    out_.manifests.push_back({media_type, digest, body.size(), platform, {}, {}});
    out_.stored_bytes += body.size();
    ManifestLinks links;
    try {
      links = parse_manifest_links(body);
    } catch (const std::exception& e) {
      throw std::runtime_error("manifest " + digest.str() + ": " + e.what());
    }
    if (links.is_index) {
      for (const auto& child : links.manifests) {
        auto child_row = meta_.find_blob(child.digest);
        if (!child_row || !blobs_.exists(child.digest)) {
          out_.missing_manifests.push_back(child.digest);
          continue;
        }
        walk(child.digest, child.media_type, child.platform, depth + 1);
      }
      return;
    }
    for (std::size_t i = 0; i < links.blobs.size(); ++i) {
      const auto& blob = links.blobs[i];
      bool stored = blobs_.exists(blob.digest);
      if (!stored) out_.missing_blobs.push_back(blob.digest);
      if (i == 0 && !platform && stored && blob.size <= kMaxConfigBytes) {
        try {
          platform = platform_of_config(read_stored(blobs_, blob.digest, kMaxConfigBytes));
        } catch (const std::exception&) {
        }
      }
      if (stored && blob_seen_.insert(blob.digest.str()).second) {
        out_.blobs.push_back(blob);
        out_.stored_bytes += blob.size;
      }
    }
    if (platform && platform->os != "unknown") out_.platforms.push_back(*platform);
  }

 private:
  BlobStore& blobs_;
  db::MetadataStore& meta_;
  std::string ns_, repo_;
  std::size_t max_;
  StoredImage& out_;
  std::set<std::string> seen_, blob_seen_;
};

std::string origin_name(const std::string& ns, const std::string& repo) { return ns.empty() ? repo : ns + "/" + repo; }

std::string annotation(const Descriptor& d, const char* key) {
  auto it = d.annotations.find(key);
  return it == d.annotations.end() ? std::string() : it->second;
}

// --- import plan ---

struct Node {
  Descriptor d;
  bool manifest = false;
  std::vector<Digest> children;  // manifests: what they reference
  std::optional<Descriptor> subject;
  std::string artifact_type;
  std::string annotations_json = "{}";
};

class ImportPlanner {
 public:
  ImportPlanner(const LayoutReader& layout, std::size_t max_manifest_bytes, TransferStats& stats)
      : layout_(layout), max_(max_manifest_bytes), stats_(stats) {}

  // Nodes of one item in publishing order: what a manifest references comes before it.
  std::vector<Node> plan(const ImportItem& item) {
    nodes_.clear();
    seen_.clear();
    hosted_ = item.ns.empty();
    where_ = origin_name(item.ns, item.repo) + (item.tag.empty() ? "@" + item.top.digest.str() : ":" + item.tag);
    walk(item.top, 0);
    return std::move(nodes_);
  }

 private:
  void walk(Descriptor d, int depth) {
    if (depth > kMaxDepth) throw ImportError(where_ + ": manifests nested deeper than " + std::to_string(kMaxDepth));
    if (!seen_.insert(d.digest.str()).second) return;
    auto size = layout_.blob_size(d.digest);
    if (!size) throw ImportError(where_ + ": the layout has no manifest " + d.digest.str());
    std::string body;
    try {
      body = layout_.read_small(d.digest, max_);
    } catch (const std::exception& e) {
      throw ImportError(where_ + ": " + e.what());
    }
    if (digest_of(d.digest.algorithm(), body) != d.digest)
      throw ImportError("corrupt blob in the layout: manifest " + d.digest.str() + " of " + where_ +
                        " does not hash to its digest; nothing was imported");
    ManifestLinks links;
    try {
      links = parse_manifest_links(body);
    } catch (const std::exception& e) {
      throw ImportError(where_ + ": manifest " + d.digest.str() + ": " + e.what());
    }
    Node node;
    node.manifest = true;
    if (d.media_type.empty() || !is_manifest_media_type(d.media_type)) d.media_type = sniff_manifest_media_type(body);
    d.size = body.size();
    if (links.is_index) {
      for (const auto& child : links.manifests) {
        if (!layout_.blob_size(child.digest)) {
          if (hosted_)
            throw ImportError(where_ + ": the layout lacks manifest " + child.digest.str() +
                              " of the index; a hosted repository needs every one");
          stats_.notes.push_back(where_ + ": platform " + (child.platform ? child.platform->str() : "?") + " (" +
                                 child.digest.str() + ") is not in the layout");
          continue;
        }
        walk(child, depth + 1);
        node.children.push_back(child.digest);
      }
    } else {
      for (const auto& blob : links.blobs) {
        auto blob_size = layout_.blob_size(blob.digest);
        if (!blob_size)
          throw ImportError(where_ + ": the layout lacks blob " + blob.digest.str() + " of manifest " + d.digest.str());
        if (*blob_size != blob.size)
          throw ImportError("corrupt blob in the layout: " + blob.digest.str() + " has " + std::to_string(*blob_size) +
                            " bytes, its descriptor says " + std::to_string(blob.size) + "; nothing was imported");
        node.children.push_back(blob.digest);
        if (seen_.insert(blob.digest.str()).second) nodes_.push_back({blob, false, {}, {}, {}, "{}"});
      }
      auto doc = nlohmann::json::parse(body, nullptr, false);
      node.artifact_type = doc.value("artifactType", std::string());
      if (node.artifact_type.empty() && doc.contains("config") && doc["config"].is_object())
        node.artifact_type = doc["config"].value("mediaType", std::string());
      if (doc.contains("annotations") && doc["annotations"].is_object()) node.annotations_json = doc["annotations"].dump();
    }
    node.subject = links.subject;
    node.d = d;
    nodes_.push_back(std::move(node));
  }

  const LayoutReader& layout_;
  std::size_t max_;
  TransferStats& stats_;
  bool hosted_ = false;
  std::string where_;
  std::vector<Node> nodes_;
  std::set<std::string> seen_;
};

}  // namespace

StoredImage walk_stored_image(BlobStore& blobs, db::MetadataStore& meta, const std::string& ns,
                              const std::string& repo, const Digest& top, std::size_t max_manifest_bytes) {
  StoredImage image;
  image.top = top;
  StoreWalker(blobs, meta, ns, repo, max_manifest_bytes, image).walk(top, "", std::nullopt, 0);
  image.media_type = image.manifests.front().media_type;
  if (auto row = meta.find_blob(top)) image.last_access = row->last_access;
  return image;
}

TransferStats export_images(BlobStore& blobs, db::MetadataStore& meta, const std::vector<ExportItem>& items,
                            LayoutWriter& out, std::size_t max_manifest_bytes, const TransferProgress& progress) {
  TransferStats stats;
  auto copy = [&](const Descriptor& d) {
    if (out.has_blob(d.digest)) {
      ++stats.objects_present;
      return;
    }
    auto reader = blobs.open(d.digest);
    if (!reader) throw std::runtime_error(d.digest.str() + " disappeared from the store during the export");
    out.add_blob(d.digest, reader->size(),
                 [&](std::uint64_t offset, char* buf, std::size_t n) { return reader->read_at(offset, buf, n); });
    ++stats.objects_copied;
    stats.bytes_copied += reader->size();
    if (progress) progress(stats.objects_copied, stats.bytes_copied);
  };
  for (const auto& item : items) {
    std::string what = origin_name(item.ns, item.repo) + (item.tag.empty() ? "@" + item.digest.str() : ":" + item.tag);
    StoredImage image;
    try {
      image = walk_stored_image(blobs, meta, item.ns, item.repo, item.digest, max_manifest_bytes);
    } catch (const std::exception& e) {
      throw std::runtime_error(what + ": " + e.what());
    }
    if (!image.missing_blobs.empty())
      throw std::runtime_error(what + ": blob " + image.missing_blobs.front().str() +
                               " is not cached (only part of the image was pulled); warm it first");
    for (const auto& m : image.missing_manifests)
      stats.notes.push_back(what + ": index entry " + m.str() + " is not cached and is left out");
    for (const auto& b : image.blobs) copy(b);
    // Children before the index that names them.
    for (auto it = image.manifests.rbegin(); it != image.manifests.rend(); ++it) copy(*it);

    Descriptor top = image.manifests.front();
    top.platform.reset();
    top.annotations[kAnnotationNamespace] = item.ns;
    top.annotations[kAnnotationRepository] = item.repo;
    if (!item.tag.empty()) {
      top.annotations[kAnnotationTag] = item.tag;
      top.annotations[kAnnotationRefName] = origin_name(item.ns, item.repo) + ":" + item.tag;
      top.annotations[kAnnotationConfirmedAt] = format_utc(item.confirmed_at);
    }
    out.add_ref(std::move(top));
    ++stats.images;
  }
  return stats;
}

std::vector<ImportItem> items_from_annotations(const LayoutReader& layout) {
  std::vector<ImportItem> items;
  for (const auto& ref : layout.refs()) {
    std::string repo = annotation(ref, kAnnotationRepository);
    if (repo.empty())
      throw ImportError("index.json entry " + ref.digest.str() + " (" +
                        (annotation(ref, kAnnotationRefName).empty() ? "no name" : annotation(ref, kAnnotationRefName)) +
                        ") has no " + kAnnotationRepository +
                        " annotation: this layout was not written by regcache export; name the target with --into");
    if (!RepoName::parse(repo)) throw ImportError("index.json: invalid repository name '" + repo + "'");
    ImportItem item{ref, annotation(ref, kAnnotationNamespace), repo, annotation(ref, kAnnotationTag), 0};
    if (!item.tag.empty() && !valid_tag(item.tag)) throw ImportError("index.json: invalid tag '" + item.tag + "'");
    if (auto t = parse_utc(annotation(ref, kAnnotationConfirmedAt))) item.confirmed_at = *t;
    item.top.annotations.clear();
    items.push_back(std::move(item));
  }
  return items;
}

TransferStats import_layout(BlobStore& blobs, db::MetadataStore& meta, const LayoutReader& layout,
                            const std::vector<ImportItem>& items, std::size_t max_manifest_bytes, std::int64_t now,
                            const TransferProgress& progress) {
  TransferStats stats;
  // 1. Plan: every manifest read, hashed and parsed; every blob present with its size.
  ImportPlanner planner(layout, max_manifest_bytes, stats);
  std::vector<std::vector<Node>> plans;
  for (const auto& item : items) plans.push_back(planner.plan(item));

  // 2. Verify every blob's bytes before writing anything.
  std::set<std::string> verified;
  for (const auto& plan : plans)
    for (const auto& node : plan)
      if (!node.manifest && verified.insert(node.d.digest.str()).second && !layout.verify(node.d.digest))
        throw ImportError("corrupt blob in the layout: " + node.d.digest.str() +
                          " does not hash to its digest; nothing was imported");

  // 3. Content and rows, what is referenced before what references it.
  std::vector<char> buf(1 << 20);
  std::set<std::string> done;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    for (const auto& node : plans[i]) {
      const Digest& d = node.d.digest;
      const bool first_sight = done.insert(d.str()).second;
      if (first_sight) {
        if (blobs.exists(d)) {
          ++stats.objects_present;
        } else {
          auto writer = blobs.create_writer();
          auto size = *layout.blob_size(d);
          std::uint64_t offset = 0;
          while (offset < size) {
            std::size_t n = layout.read_blob(d, offset, buf.data(), buf.size());
            if (n == 0) throw ImportError("blob " + d.str() + " shrank in the layout while importing");
            writer->write(buf.data(), n);
            offset += n;
          }
          try {
            writer->commit(d);  // hashes again: the layout may have changed since step 2
          } catch (const RegistryError& e) {
            throw ImportError("blob " + d.str() + " changed in the layout while importing: " + e.what());
          }
          ++stats.objects_copied;
          stats.bytes_copied += size;
          if (progress) progress(stats.objects_copied, stats.bytes_copied);
        }
      }
      // The rows of one node in one unit of work: a hosted manifest is never
      // linked without the references that keep its layers from gc, and the
      // blob-row check and its write are not split by another writer.
      meta.transact([&](db::MetadataStore& tx) {
        if (first_sight) {
          auto row = tx.find_blob(d);
          std::string media_type = node.manifest ? node.d.media_type : "";
          if (!row || (node.manifest && row->media_type.empty()))
            tx.put_blob({d, node.manifest ? node.d.size : *layout.blob_size(d), media_type, now, now});
        }
        // A manifest's link carries the media type the repository serves it as.
        if (node.manifest) tx.link(item.ns, item.repo, d, node.d.media_type);
        else if (!tx.is_linked(item.ns, item.repo, d)) tx.link(item.ns, item.repo, d);
        if (item.ns.empty() && node.manifest) {
          // Hosted repositories keep what each manifest references (deletes check
          // it) and their referrers.
          tx.put_manifest_refs(item.ns, item.repo, d, node.children);
          if (node.subject)
            tx.put_referrer(item.ns, item.repo,
                            {node.subject->digest, d, node.d.media_type, node.artifact_type, node.d.size,
                             node.annotations_json});
        }
      });
    }
  }

  // 4. Tags last: each names content that is now stored and linked.
  for (const auto& item : items) {
    ++stats.images;
    if (item.tag.empty()) continue;
    std::int64_t confirmed = item.ns.empty() && item.confirmed_at == 0 ? now : item.confirmed_at;
    bool unchanged = false;
    // Check and move in one unit: a concurrent move of the same tag is not overwritten by a stale comparison.
    meta.transact([&](db::MetadataStore& tx) {
      auto existing = tx.find_tag(item.ns, item.repo, item.tag);
      unchanged = existing && existing->digest == item.top.digest;
      if (unchanged && existing->confirmed_at >= confirmed) return;
      tx.put_tag(item.ns, item.repo, item.tag, item.top.digest, confirmed);
    });
    ++(unchanged ? stats.tags_unchanged : stats.tags_set);
  }
  return stats;
}

}  // namespace regcache::cache
