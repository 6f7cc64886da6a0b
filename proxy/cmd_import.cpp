// regcache import: an OCI layout (regcache's export, or any tool's) into the store.
#include <ctime>
#include <cstdio>
#include <iostream>

#include "cache/offline_transfer.h"
#include "common/image_ref.h"
#include "common/names.h"
#include "proxy/cmd_common.h"
#include "proxy/commands.h"
#include "proxy/warm.h"

namespace regcache::proxy {

const char* const kImportUsage =
    "Usage: regcache import [--config FILE | --data-dir DIR] [--into NS/REPO[:TAG]] SRC\n"
    "\n"
    "Imports an OCI image layout (a directory or a tar of one) into the data dir, with the\n"
    "server running or stopped. Every digest is verified before anything is written: a\n"
    "corrupt layout is refused and nothing is published. Importing twice changes nothing.\n"
    "A layout written by regcache export restores each tag into its upstream namespace, so\n"
    "an --offline regcache serves the same digests. For a layout made by another tool\n"
    "(skopeo copy ... oci:DIR:TAG) name the target: --into local/app:v1 (hosted),\n"
    "--into docker.io/library/alpine:3.19 (a mirrored namespace); without :TAG every named\n"
    "entry of the layout becomes a tag of that repository; with :TAG the entry named TAG\n"
    "(or the layout's only entry) is imported.\n";

namespace {

// The last ':' part of an org.opencontainers.image.ref.name ("v1", or "ns/repo:v1").
std::string tag_of_ref_name(const std::string& name) {
  auto slash = name.rfind('/');
  auto colon = name.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) return name.substr(colon + 1);
  return name;
}

std::vector<cache::ImportItem> items_into(const cache::LayoutReader& layout, const ImageRef& into, const Config& config,
                                          const std::vector<std::string>& namespaces, bool tag_given) {
  auto [ns, repo] = namespace_of(into, config, namespaces);
  std::vector<cache::ImportItem> items;
  for (const auto& ref : layout.refs()) {
    auto it = ref.annotations.find(cache::kAnnotationRefName);
    std::string name = it == ref.annotations.end() ? "" : it->second;
    std::string tag = tag_of_ref_name(name);
    cache::Descriptor top = ref;
    top.annotations.clear();
    if (tag_given) {
      if (layout.refs().size() > 1 && tag != into.tag) continue;
      items.push_back({top, ns, repo, into.tag, 0});
    } else {
      if (!tag.empty() && !valid_tag(tag)) throw UsageError("layout entry named '" + name + "' has no valid tag");
      items.push_back({top, ns, repo, tag, 0});
    }
  }
  if (items.empty())
    throw UsageError(tag_given ? "the layout has no entry named '" + into.tag + "'" : "the layout's index.json is empty");
  return items;
}

}  // namespace

int run_import(const std::vector<std::string>& argv) {
  ParsedArgs args;
  Config config;
  try {
    args = parse_args(argv, {"--config", "--data-dir", "--into"}, {"--help"});
    if (args.has("--help")) {
      std::cout << kImportUsage;
      return 0;
    }
    if (args.positional.size() != 1) throw UsageError("give exactly one SRC layout (directory or .tar)");
    config = config_from(args);
  } catch (const UsageError& e) {
    std::cerr << "regcache import: " << e.what() << "\n" << kImportUsage;
    return kExitUsage;
  } catch (const ConfigError& e) {
    std::cerr << "regcache import: configuration error: " << e.what() << "\n";
    return kExitUsage;
  }
  const std::string& source = args.positional.front();
  try {
    auto layout = cache::LayoutReader::open(source);
    DataDir d = open_data_dir(config, false);
    std::vector<cache::ImportItem> items;
    if (auto into = args.last("--into")) {
      std::string error;
      auto ref = parse_image_ref(*into, error);
      if (!ref || ref->digest || ref->expands()) throw UsageError("--into: " + (ref ? "give NS/REPO[:TAG]" : error));
      // parse_image_ref reads a bare name as ":latest"; --into without a tag keeps the layout's names.
      bool tag_given = into->rfind(':') != std::string::npos && into->rfind(':') > into->rfind('/');
      items = items_into(*layout, *ref, config, d.meta->list_namespaces(), tag_given);
    } else {
      items = cache::items_from_annotations(*layout);
    }
    ProgressLine progress;
    auto stats = cache::import_layout(*d.blobs, *d.meta, *layout, items, config.max_manifest_bytes,
                                      static_cast<std::int64_t>(std::time(nullptr)),
                                      [&](std::size_t objects, std::uint64_t bytes) {
                                        progress.update("import: " + std::to_string(objects) + " objects, " +
                                                        format_bytes(bytes));
                                      });
    progress.clear();
    for (const auto& note : stats.notes) std::printf("note: %s\n", note.c_str());
    for (const auto& item : items)
      std::printf("imported %s%s %s\n", qualified(item.ns, item.repo).c_str(),
                  item.tag.empty() ? "" : (":" + item.tag).c_str(), item.top.digest.str().c_str());
    std::printf("import: %zu images from %s: %zu objects stored (%s), %zu already stored; %zu tags set, %zu unchanged%s\n",
                stats.images, source.c_str(), stats.objects_copied, format_bytes(stats.bytes_copied).c_str(),
                stats.objects_present, stats.tags_set, stats.tags_unchanged,
                stats.objects_copied == 0 && stats.tags_set == 0 ? ": nothing new" : "");
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "regcache import: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "regcache import: " << source << ": " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace regcache::proxy
