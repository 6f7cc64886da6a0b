#include "cache/store_maintenance.h"

#include <ctime>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "cache/hosted_registry.h"

namespace regcache::cache {
namespace {

constexpr std::size_t kBatch = 256;
constexpr std::size_t kEverything = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());

std::int64_t clock_now(std::int64_t given) {
  return given != 0 ? given : static_cast<std::int64_t>(std::time(nullptr));
}

void report(const ProgressFn& progress, std::uint64_t done, std::uint64_t total, const std::string& what) {
  if (progress) progress(done, total, what);
}

std::string describe(const std::string& ns, const std::string& repo) {
  return ns.empty() ? repo + " (hosted)" : ns + "/" + repo;
}

// Step 2 for a corrupt object: out of the store into quarantine, only while no
// row and no link names the digest (a refill that re-created it with good bytes
// has its row by then, and its object stays).
bool quarantine_if_unreferenced(BlobStore& blobs, db::MetadataStore& meta, const Digest& digest) {
  bool moved = false;
  meta.transact([&](db::MetadataStore& tx) {
    if (tx.find_blob(digest) || tx.count_links(digest) > 0) return;
    moved = blobs.quarantine(digest).has_value();
  });
  return moved;
}

}  // namespace

bool remove_if_unreferenced(BlobStore& blobs, db::MetadataStore& meta, const Digest& digest) {
  bool removed = false;
  meta.transact([&](db::MetadataStore& tx) {
    if (tx.find_blob(digest) || tx.count_links(digest) > 0) return;
    if (!blobs.exists(digest)) return;
    blobs.remove(digest);
    removed = true;
  });
  return removed;
}

// --- gc ----------------------------------------------------------------------

GcReport collect_garbage(BlobStore& blobs, db::MetadataStore& meta, const GcOptions& options) {
  GcReport out;
  const std::string& hosted = HostedRegistry::kNamespace;
  const std::int64_t cutoff = clock_now(options.now) - options.min_age.count();
  std::uint64_t step = 0;

  // Pass 1: hosted layer links no manifest of their repository references.
  std::map<Digest, std::size_t> dry_unlinked;  // dry run: links pass 1 would remove, per digest
  if (options.dry_run) {
    for (const auto& l : meta.list_unreferenced_links(hosted, cutoff, kEverything)) {
      out.actions.push_back("unlink " + l.digest.str() + " from " + describe(l.ns, l.repo));
      ++dry_unlinked[l.digest];
      ++out.links_removed;
    }
  } else {
    for (;;) {
      auto batch = meta.list_unreferenced_links(hosted, cutoff, kBatch);
      std::size_t progressed = 0;
      for (const auto& l : batch) {
        bool unlinked = false, row_gone = false;
        std::uint64_t size = 0;
        meta.transact([&](db::MetadataStore& tx) {
          // Again inside the unit: a manifest put or a push since the listing wins.
          auto link = tx.find_link(l.ns, l.repo, l.digest);
          auto row = tx.find_blob(l.digest);
          if (!link || !link->media_type.empty() || !row || row->last_access >= cutoff) return;
          if (!tx.manifests_referencing(l.ns, l.repo, l.digest).empty()) return;
          tx.unlink(l.ns, l.repo, l.digest);
          unlinked = true;
          if (tx.count_links(l.digest) == 0) {
            tx.delete_blob(l.digest);
            row_gone = true;
            size = row->size;
          }
        });
        if (!unlinked) continue;
        ++progressed;
        ++out.links_removed;
        out.actions.push_back("unlinked " + l.digest.str() + " from " + describe(l.ns, l.repo));
        if (row_gone) {
          ++out.rows_removed;
          if (remove_if_unreferenced(blobs, meta, l.digest)) {
            ++out.files_removed;
            out.bytes_freed += size;
          }
        }
        report(options.progress, ++step, 0, "gc: unreferenced hosted layers");
      }
      if (batch.size() < kBatch || progressed == 0) break;
    }
  }

  // Pass 2: rows no repository links.
  if (options.dry_run) {
    for (const auto& [digest, links] : dry_unlinked) {
      if (meta.count_links(digest) != links) continue;
      auto row = meta.find_blob(digest);
      ++out.rows_removed;
      ++out.files_removed;
      out.bytes_freed += row ? row->size : 0;
      out.actions.push_back("remove " + digest.str() + " (" + std::to_string(row ? row->size : 0) + " bytes)");
    }
    for (const auto& row : meta.list_unlinked_blobs(cutoff, kEverything)) {
      ++out.rows_removed;
      ++out.files_removed;
      out.bytes_freed += row.size;
      out.actions.push_back("remove " + row.digest.str() + " (" + std::to_string(row.size) +
                            " bytes, linked by no repository)");
    }
  } else {
    for (;;) {
      auto batch = meta.list_unlinked_blobs(cutoff, kBatch);
      std::size_t progressed = 0;
      for (const auto& r : batch) {
        bool row_gone = false;
        meta.transact([&](db::MetadataStore& tx) {
          auto row = tx.find_blob(r.digest);
          if (!row || row->last_access >= cutoff || tx.count_links(r.digest) > 0) return;
          tx.delete_blob(r.digest);
          row_gone = true;
        });
        if (!row_gone) continue;
        ++progressed;
        ++out.rows_removed;
        out.actions.push_back("removed " + r.digest.str() + " (" + std::to_string(r.size) +
                              " bytes, linked by no repository)");
        if (remove_if_unreferenced(blobs, meta, r.digest)) {
          ++out.files_removed;
          out.bytes_freed += r.size;
        }
        report(options.progress, ++step, 0, "gc: rows linked by no repository");
      }
      if (batch.size() < kBatch || progressed == 0) break;
    }
  }

  // Pass 3: objects without a row (a crash between the two units of a
  // removal), old enough not to be a fill between its commit and its row.
  auto objects = blobs.list();
  std::uint64_t done = 0;
  for (const auto& o : objects) {
    report(options.progress, ++done, objects.size(), "gc: objects without a row");
    if (meta.find_blob(o.digest)) continue;
    auto written = blobs.written_at(o.digest);
    if (!written || *written >= cutoff) continue;
    if (options.dry_run) {
      ++out.files_removed;
      out.bytes_freed += o.size;
      out.actions.push_back("remove " + o.digest.str() + " (" + std::to_string(o.size) + " bytes, no row)");
    } else if (remove_if_unreferenced(blobs, meta, o.digest)) {
      ++out.files_removed;
      out.bytes_freed += o.size;
      out.actions.push_back("removed " + o.digest.str() + " (" + std::to_string(o.size) + " bytes, no row)");
    }
  }
  return out;
}

// --- fsck --------------------------------------------------------------------

const char* inconsistency_name(Inconsistency kind) {
  switch (kind) {
    case Inconsistency::RowWithoutObject: return "row-without-object";
    case Inconsistency::ObjectWithoutRow: return "object-without-row";
    case Inconsistency::SizeMismatch: return "size-mismatch";
    case Inconsistency::DanglingTag: return "dangling-tag";
    case Inconsistency::MissingChild: return "missing-child";
  }
  return "unknown";
}

std::vector<FsckProblem> check_consistency(BlobStore& blobs, db::MetadataStore& meta, const FsckOptions& options) {
  std::vector<FsckProblem> out;
  const std::int64_t cutoff = clock_now(options.now) - options.min_age.count();

  // Rows: is each one's object there, of the right size?
  auto rows = meta.list_blobs();
  std::set<Digest> described;
  std::uint64_t done = 0;
  const std::uint64_t total = rows.size();
  for (const auto& row : rows) {
    report(options.progress, ++done, total, "fsck: rows");
    described.insert(row.digest);
    auto reader = blobs.open(row.digest);
    if (!reader) {
      // Again, now: a gc may have removed the row (then the object) since the listing.
      if (!meta.find_blob(row.digest) || blobs.exists(row.digest)) continue;
      FsckProblem p{Inconsistency::RowWithoutObject,
                    row.digest.str() + " has a row (" + std::to_string(meta.count_links(row.digest)) +
                        " repository links) but no stored object"};
      if (options.repair) {
        meta.transact([&](db::MetadataStore& tx) {
          if (tx.find_blob(row.digest) && !blobs.exists(row.digest)) {
            tx.delete_blob(row.digest);
            p.repaired = true;
          }
        });
      }
      out.push_back(std::move(p));
      continue;
    }
    if (reader->size() != row.size) {
      FsckProblem p{Inconsistency::SizeMismatch, row.digest.str() + " is " + std::to_string(reader->size()) +
                                                     " bytes on disk, its row says " + std::to_string(row.size)};
      reader.reset();
      if (options.repair) {
        bool dropped = false;
        meta.transact([&](db::MetadataStore& tx) {
          auto again = tx.find_blob(row.digest);
          if (again && again->size == row.size) {
            tx.delete_blob(row.digest);
            dropped = true;
          }
        });
        p.repaired = dropped && quarantine_if_unreferenced(blobs, meta, row.digest);
      }
      out.push_back(std::move(p));
    }
  }

  // Objects: does a row describe each one?
  auto objects = blobs.list();
  done = 0;
  for (const auto& o : objects) {
    report(options.progress, ++done, objects.size(), "fsck: objects");
    if (described.count(o.digest) || meta.find_blob(o.digest)) continue;
    auto written = blobs.written_at(o.digest);
    if (!written || *written >= cutoff) continue;  // young: maybe a fill about to write its row
    FsckProblem p{Inconsistency::ObjectWithoutRow,
                  o.digest.str() + " (" + std::to_string(o.size) + " bytes) is stored but no row describes it"};
    if (options.repair) p.repaired = remove_if_unreferenced(blobs, meta, o.digest);
    out.push_back(std::move(p));
  }

  // Tags naming what their repository does not link.
  for (const auto& t : meta.list_dangling_tags()) {
    FsckProblem p{Inconsistency::DanglingTag, describe(t.ns, t.repo) + ":" + t.tag + " names " + t.digest.str() +
                                                  ", which the repository does not link"};
    if (options.repair) {
      meta.transact([&](db::MetadataStore& tx) {
        auto tag = tx.find_tag(t.ns, t.repo, t.tag);
        if (tag && tag->digest == t.digest && !tx.is_linked(t.ns, t.repo, t.digest)) {
          tx.delete_tag(t.ns, t.repo, t.tag);
          p.repaired = true;
        }
      });
    }
    out.push_back(std::move(p));
  }

  // Hosted manifests referencing what their repository does not link.
  for (const auto& c : meta.list_missing_manifest_children())
    out.push_back({Inconsistency::MissingChild,
                   "a manifest of " + describe(c.ns, c.repo) + " references " + c.digest.str() +
                       ", which the repository does not link (push it again; not repairable by fsck)"});
  return out;
}

// --- scrub -------------------------------------------------------------------

ScrubReport scrub_objects(BlobStore& blobs, db::MetadataStore& meta, const ScrubOptions& options) {
  ScrubReport out;
  auto rows = meta.list_blobs();
  std::uint64_t total_bytes = 0;
  for (const auto& r : rows) total_bytes += r.size;
  std::vector<char> buffer(1 << 20);
  const auto started = std::chrono::steady_clock::now();
  for (const auto& row : rows) {
    if (options.stop && options.stop()) {
      out.stopped = true;
      break;
    }
    auto reader = blobs.open(row.digest);
    if (!reader) continue;  // gone since the listing (gc, eviction) or missing: fsck's business
    DigestHasher hasher(row.digest.algorithm());
    std::uint64_t offset = 0;
    bool stopped = false;
    for (;;) {
      std::size_t n = reader->read_at(offset, buffer.data(), buffer.size());
      if (n == 0) break;
      hasher.update(buffer.data(), n);
      offset += n;
      out.bytes += n;
      if (options.rate_bytes_per_s > 0) {
        // Never ahead of rate_bytes_per_s on average since the start.
        auto due = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                 std::chrono::duration<double>(static_cast<double>(out.bytes) /
                                                               static_cast<double>(options.rate_bytes_per_s)));
        if (due > std::chrono::steady_clock::now()) std::this_thread::sleep_until(due);
      }
      if (options.stop && options.stop()) {
        stopped = true;
        break;
      }
    }
    if (stopped) {
      out.stopped = true;
      break;
    }
    ++out.objects;
    report(options.progress, out.bytes, total_bytes, "scrub");
    Digest actual = hasher.finish();
    if (actual == row.digest) continue;
    reader.reset();
    std::string line = row.digest.str() + " (" + std::to_string(offset) + " bytes): content hashes to " + actual.str();
    if (options.repair) {
      bool dropped = false;
      meta.transact([&](db::MetadataStore& tx) {
        if (!tx.find_blob(row.digest)) return;
        tx.delete_blob(row.digest);
        dropped = true;
      });
      if (dropped && quarantine_if_unreferenced(blobs, meta, row.digest)) {
        ++out.quarantined;
        line += "; quarantined, its row removed";
      }
    }
    out.corrupt.push_back(std::move(line));
  }
  return out;
}

// --- du ----------------------------------------------------------------------

UsageReport disk_usage(db::MetadataStore& meta) {
  UsageReport out;
  out.repositories = meta.usage_by_repository();
  out.namespaces = meta.usage_by_namespace();
  for (const auto& r : meta.list_unlinked_blobs(std::numeric_limits<std::int64_t>::max(), kEverything)) {
    ++out.unlinked_objects;
    out.unlinked_bytes += r.size;
  }
  for (const auto& r : meta.list_blobs()) {
    ++out.total_objects;
    out.total_bytes += r.size;
  }
  return out;
}

}  // namespace regcache::cache
