// regcache export: cached images (with their tag mappings) to an OCI layout.
#include <cstdio>
#include <iostream>

#include "cache/offline_transfer.h"
#include "common/image_ref.h"
#include "proxy/cmd_common.h"
#include "proxy/commands.h"
#include "proxy/warm.h"

namespace regcache::proxy {

const char* const kExportUsage =
    "Usage: regcache export [--config FILE | --data-dir DIR] (--all | REF...) --output DIR|FILE.tar\n"
    "\n"
    "Writes cached images to an OCI image layout (a directory, or a tar of one when the name\n"
    "ends in .tar), readable by skopeo, oras, crane and umoci, with each tag's origin in the\n"
    "index annotations (io.regcache.namespace, .repository, .tag, .confirmed-at and\n"
    "org.opencontainers.image.ref.name = UPSTREAM/REPO:TAG). Works on the data dir directly,\n"
    "with the server running or stopped. REF as for warm (UPSTREAM/REPO:TAG, @digest, :* or\n"
    "a glob); --all exports every tag of every namespace. An existing layout directory is\n"
    "added to. Only platforms of an index that are cached are exported.\n";

namespace {

std::vector<cache::ExportItem> select_items(DataDir& d, const ParsedArgs& args, std::vector<std::string>& failed) {
  std::vector<cache::ExportItem> items;
  auto namespaces = d.meta->list_namespaces();
  if (args.has("--all")) {
    for (const auto& ns : namespaces)
      for (const auto& repo : d.meta->list_repositories(ns))
        for (const auto& [tag, record] : d.meta->list_tag_records(ns, repo))
          items.push_back({ns, repo, tag, record.digest, record.confirmed_at});
    return items;
  }
  for (const auto& text : args.positional) {
    std::string error;
    auto ref = parse_image_ref(text, error);
    if (!ref) throw UsageError(text + ": " + error);
    auto [ns, repo] = namespace_of(*ref, d.config, namespaces);
    std::size_t before = items.size();
    if (ref->digest) {
      if (!d.meta->is_linked(ns, repo, *ref->digest)) {
        std::cerr << "regcache export: " << text << ": " << ref->digest->str() << " is not cached in "
                  << qualified(ns, repo) << "\n";
        failed.push_back(text);
        continue;
      }
      items.push_back({ns, repo, "", *ref->digest, 0});
    } else {
      for (const auto& [tag, record] : d.meta->list_tag_records(ns, repo))
        if (ref->expands() ? glob_match(ref->tag_pattern, tag) : tag == ref->tag)
          items.push_back({ns, repo, tag, record.digest, record.confirmed_at});
    }
    if (items.size() == before) {
      std::cerr << "regcache export: " << text << ": no such tag is cached in " << qualified(ns, repo) << "\n";
      failed.push_back(text);
    }
  }
  return items;
}

}  // namespace

int run_export(const std::vector<std::string>& argv) {
  ParsedArgs args;
  Config config;
  try {
    args = parse_args(argv, {"--config", "--data-dir", "--output"}, {"--all", "--help"});
    if (args.has("--help")) {
      std::cout << kExportUsage;
      return 0;
    }
    if (!args.last("--output")) throw UsageError("--output DIR|FILE.tar is required");
    if (args.has("--all") == !args.positional.empty()) throw UsageError("give --all or references, not both or neither");
    config = config_from(args);
  } catch (const UsageError& e) {
    std::cerr << "regcache export: " << e.what() << "\n" << kExportUsage;
    return kExitUsage;
  } catch (const ConfigError& e) {
    std::cerr << "regcache export: configuration error: " << e.what() << "\n";
    return kExitUsage;
  }
  try {
    DataDir d = open_data_dir(config, true);
    std::vector<std::string> failed;
    auto items = select_items(d, args, failed);
    if (!failed.empty()) {
      std::cerr << "regcache export: nothing written; not cached: ";
      for (std::size_t i = 0; i < failed.size(); ++i) std::cerr << (i ? ", " : "") << failed[i];
      std::cerr << "\n";
      return kExitFailed;
    }
    if (items.empty()) {
      std::cerr << "regcache export: the cache holds no tags to export\n";
      return kExitFailed;
    }
    const std::string output = *args.last("--output");
    bool tar = output.size() > 4 && output.compare(output.size() - 4, 4, ".tar") == 0;
    auto writer = tar ? cache::LayoutWriter::to_tar(output) : cache::LayoutWriter::to_directory(output);
    ProgressLine progress;
    auto stats = cache::export_images(*d.blobs, *d.meta, items, *writer, config.max_manifest_bytes,
                                      [&](std::size_t objects, std::uint64_t bytes) {
                                        progress.update("export: " + std::to_string(objects) + " objects, " +
                                                        format_bytes(bytes));
                                      });
    writer->finish();
    progress.clear();
    for (const auto& note : stats.notes) std::printf("note: %s\n", note.c_str());
    for (const auto& item : items)
      std::printf("exported %s%s %s\n", qualified(item.ns, item.repo).c_str(),
                  item.tag.empty() ? "" : (":" + item.tag).c_str(), item.digest.str().c_str());
    std::printf("export: %zu images to %s: %zu objects written (%s), %zu already there\n", stats.images,
                output.c_str(), stats.objects_copied, format_bytes(stats.bytes_copied).c_str(), stats.objects_present);
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "regcache export: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "regcache export: " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace regcache::proxy
