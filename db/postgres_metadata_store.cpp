// PostgreSQL implementation of MetadataStore (db/metadata_store.h), on libpq.
//
// Why libpq directly (not libpqxx 6.4 or Poco Data/PostgreSQL): the decisions
// this store makes are libpq's own terms — SQLSTATE codes (08xxx/57P0x: the
// server is gone; 40001/40P01: the statement may be retried), PQstatus of a
// connection, connect_timeout, prepared statements per connection — and a
// wrapper would only hide them behind its own exception types we would have
// to map back. The RAII needed (results, connections, pool leases) is a few
// dozen lines: the libpq layer in db/postgres_connection.{h,cpp}; this file
// is the store's schema and queries on top of it.
//
// What this class promises (the SQLite store's promises, and how they hold here):
//  - Thread-safe: a bounded pool of connections (PostgresSettings::max_connections);
//    a call takes one for its statement and gives it back. A call that finds
//    every connection busy for kPoolWait throws StoreUnavailable.
//  - Every method outside a unit of work is ONE SQL statement, so it is atomic
//    on its own (delete_blob removes tags and, by cascade, links in one
//    statement). Such a statement that PostgreSQL aborts as a serialization
//    failure or deadlock (40001, 40P01) was rolled back and is retried.
//  - transact(): one transaction on one connection, READ COMMITTED, that first
//    takes a transaction-level advisory lock (kUnitLock) shared by every
//    process on the database: units of work run one at a time across all
//    replicas, like SQLite's BEGIN IMMEDIATE, so a unit's reads stay true
//    until it commits and `work` runs exactly once (it may have side effects;
//    it is never re-run). Single statements outside units do not wait for the
//    lock: they are atomic, but may land between a unit's read and its write
//    (on SQLite they wait). Check-then-write logic therefore belongs in units.
//  - The schema is versioned in table regcache_schema; opening applies missing
//    migrations in one transaction under an advisory lock (two replicas
//    starting at once do not race) and refuses a schema newer than this build.
//  - Text keys sort by bytes (COLLATE "C"), as SQLite's BINARY does. Kept
//    document bodies are stored as bytea: an upstream's bytes need not be
//    valid UTF-8.
//  - When the server cannot be reached (connection refused or lost, shutting
//    down, starting up), calls throw db::StoreUnavailable (db/store_errors.h),
//    every idle connection is dropped, and a later call connects afresh. Any
//    other failure throws std::runtime_error naming the operation with the
//    server's message. The DSN in messages never carries a password.
#include "db/postgres_metadata_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "db/postgres_connection.h"
#include "db/store_errors.h"

namespace regcache::db {
namespace {

// Advisory lock keys (pg_advisory_xact_lock takes a bigint); "rcunit" and
// "rcmigr" in ASCII, so they do not collide with another application's small numbers.
constexpr std::int64_t kUnitLock = 0x72636e756e6974;
constexpr std::int64_t kMigrationLock = 0x72636d69677200;
// A statement aborted as a serialization failure or deadlock is retried this often.
constexpr int kStatementAttempts = 5;

using pg::check_result;
using pg::Connection;
using pg::exec_prepared;
using pg::exec_simple;
using pg::Lease;
using pg::Params;
using pg::Pool;
using pg::ResultPtr;
using pg::retryable_state;
using pg::Rows;
using pg::StatementError;

// kMigrations[i] takes the schema from version i to i + 1. Append only: never
// edit a step that has shipped. Version 1 is the SQLite store's schema 5.
const std::vector<std::string> kMigrations = {
    R"sql(
      CREATE TABLE blobs(
        digest      TEXT COLLATE "C" PRIMARY KEY,
        size        BIGINT NOT NULL,
        media_type  TEXT NOT NULL DEFAULT '',
        created     BIGINT NOT NULL,
        last_access BIGINT NOT NULL,
        hits        BIGINT NOT NULL DEFAULT 1);
      CREATE INDEX blobs_last_access ON blobs(last_access);
      CREATE TABLE repo_blobs(
        ns         TEXT COLLATE "C" NOT NULL,
        repo       TEXT COLLATE "C" NOT NULL,
        digest     TEXT COLLATE "C" NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
        media_type TEXT NOT NULL DEFAULT '',
        PRIMARY KEY(ns, repo, digest));
      CREATE INDEX repo_blobs_digest ON repo_blobs(digest);
      CREATE INDEX repo_blobs_ns_digest ON repo_blobs(ns, digest);
      CREATE TABLE tags(
        ns           TEXT COLLATE "C" NOT NULL,
        repo         TEXT COLLATE "C" NOT NULL,
        tag          TEXT COLLATE "C" NOT NULL,
        digest       TEXT COLLATE "C" NOT NULL,
        confirmed_at BIGINT NOT NULL,
        PRIMARY KEY(ns, repo, tag));
      CREATE INDEX tags_digest ON tags(digest);
      CREATE TABLE uploads(
        id      TEXT COLLATE "C" PRIMARY KEY,
        ns      TEXT COLLATE "C" NOT NULL,
        repo    TEXT COLLATE "C" NOT NULL,
        created BIGINT NOT NULL,
        updated BIGINT NOT NULL,
        client  TEXT NOT NULL DEFAULT '');
      CREATE INDEX uploads_updated ON uploads(updated);
      CREATE TABLE referrers(
        ns            TEXT COLLATE "C" NOT NULL,
        repo          TEXT COLLATE "C" NOT NULL,
        subject       TEXT COLLATE "C" NOT NULL,
        digest        TEXT COLLATE "C" NOT NULL,
        media_type    TEXT NOT NULL,
        artifact_type TEXT NOT NULL,
        size          BIGINT NOT NULL,
        annotations   TEXT NOT NULL,
        PRIMARY KEY(ns, repo, subject, digest));
      CREATE INDEX referrers_digest ON referrers(ns, repo, digest);
      CREATE TABLE manifest_refs(
        ns       TEXT COLLATE "C" NOT NULL,
        repo     TEXT COLLATE "C" NOT NULL,
        manifest TEXT COLLATE "C" NOT NULL,
        child    TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY(ns, repo, manifest, child));
      CREATE INDEX manifest_refs_child ON manifest_refs(ns, repo, child);
      CREATE TABLE documents(
        ns              TEXT COLLATE "C" NOT NULL,
        repo            TEXT COLLATE "C" NOT NULL,
        key             TEXT COLLATE "C" NOT NULL,
        body            BYTEA NOT NULL,
        fetched_at      BIGINT NOT NULL,
        next_query      TEXT NOT NULL DEFAULT '',
        filters_applied TEXT NOT NULL DEFAULT '',
        PRIMARY KEY(ns, repo, key));
      CREATE INDEX documents_fetched ON documents(ns, repo, fetched_at);
    )sql",
};

// --- statements (string literals: their addresses key each connection's prepared statements) ---
constexpr const char* kFindBlob =
    "SELECT digest, size, media_type, created, last_access FROM blobs WHERE digest = $1";
constexpr const char* kPutBlob =
    "INSERT INTO blobs(digest, size, media_type, created, last_access) VALUES($1, $2, $3, $4, $5) "
    "ON CONFLICT(digest) DO UPDATE SET size = excluded.size, "
    "media_type = CASE WHEN excluded.media_type <> '' THEN excluded.media_type ELSE blobs.media_type END, "
    "last_access = GREATEST(blobs.last_access, excluded.last_access)";
constexpr const char* kTouchBlob = "UPDATE blobs SET last_access = GREATEST(last_access, $2) WHERE digest = $1";
// Tags have no foreign key; links go by ON DELETE CASCADE. One statement: atomic.
constexpr const char* kDeleteBlob =
    "WITH t AS (DELETE FROM tags WHERE digest = $1) DELETE FROM blobs WHERE digest = $1";
constexpr const char* kListBlobs =
    "SELECT digest, size, media_type, created, last_access FROM blobs ORDER BY digest";
constexpr const char* kLink =
    "INSERT INTO repo_blobs(ns, repo, digest, media_type) VALUES($1, $2, $3, $4) "
    "ON CONFLICT(ns, repo, digest) DO UPDATE SET "
    "media_type = CASE WHEN excluded.media_type <> '' THEN excluded.media_type ELSE repo_blobs.media_type END";
constexpr const char* kFindLink = "SELECT repo, media_type FROM repo_blobs WHERE ns = $1 AND repo = $2 AND digest = $3";
constexpr const char* kFindNamespaceLink =
    "SELECT repo, media_type FROM repo_blobs WHERE ns = $1 AND digest = $2 ORDER BY media_type = '', repo LIMIT 1";
constexpr const char* kIsLinked = "SELECT 1 FROM repo_blobs WHERE ns = $1 AND repo = $2 AND digest = $3";
constexpr const char* kUnlink = "DELETE FROM repo_blobs WHERE ns = $1 AND repo = $2 AND digest = $3";
constexpr const char* kFindTag = "SELECT digest, confirmed_at FROM tags WHERE ns = $1 AND repo = $2 AND tag = $3";
constexpr const char* kPutTag =
    "INSERT INTO tags(ns, repo, tag, digest, confirmed_at) VALUES($1, $2, $3, $4, $5) "
    "ON CONFLICT(ns, repo, tag) DO UPDATE SET digest = excluded.digest, confirmed_at = excluded.confirmed_at";
constexpr const char* kDeleteTag = "DELETE FROM tags WHERE ns = $1 AND repo = $2 AND tag = $3";
constexpr const char* kListTags = "SELECT tag FROM tags WHERE ns = $1 AND repo = $2 ORDER BY tag";
constexpr const char* kDeleteTagsFor = "DELETE FROM tags WHERE ns = $1 AND repo = $2 AND digest = $3";
constexpr const char* kListRepositories =
    "SELECT repo FROM repo_blobs WHERE ns = $1 UNION SELECT repo FROM tags WHERE ns = $1 ORDER BY 1";
constexpr const char* kCountLinks = "SELECT COUNT(*) FROM repo_blobs WHERE digest = $1";
// All children in one statement: atomic without a transaction of its own.
constexpr const char* kPutManifestRefs =
    "INSERT INTO manifest_refs(ns, repo, manifest, child) SELECT $1, $2, $3, unnest($4::text[]) "
    "ON CONFLICT DO NOTHING";
constexpr const char* kDeleteManifestRefs = "DELETE FROM manifest_refs WHERE ns = $1 AND repo = $2 AND manifest = $3";
constexpr const char* kManifestsReferencing =
    "SELECT manifest FROM manifest_refs WHERE ns = $1 AND repo = $2 AND child = $3 ORDER BY manifest";
constexpr const char* kPutReferrer =
    "INSERT INTO referrers(ns, repo, subject, digest, media_type, artifact_type, size, annotations) "
    "VALUES($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT(ns, repo, subject, digest) DO UPDATE SET "
    "media_type = excluded.media_type, artifact_type = excluded.artifact_type, size = excluded.size, "
    "annotations = excluded.annotations";
constexpr const char* kDeleteReferrer = "DELETE FROM referrers WHERE ns = $1 AND repo = $2 AND digest = $3";
constexpr const char* kListReferrers =
    "SELECT subject, digest, media_type, artifact_type, size, annotations FROM referrers "
    "WHERE ns = $1 AND repo = $2 AND subject = $3 ORDER BY digest";
constexpr const char* kPutUpload =
    "INSERT INTO uploads(id, ns, repo, created, updated, client) VALUES($1, $2, $3, $4, $5, $6) "
    "ON CONFLICT(id) DO UPDATE SET ns = excluded.ns, repo = excluded.repo, created = excluded.created, "
    "updated = excluded.updated, client = excluded.client";
constexpr const char* kFindUpload = "SELECT id, ns, repo, created, updated, client FROM uploads WHERE id = $1";
constexpr const char* kTouchUpload = "UPDATE uploads SET updated = GREATEST(updated, $2) WHERE id = $1";
constexpr const char* kDeleteUpload = "DELETE FROM uploads WHERE id = $1";
constexpr const char* kListUploads = "SELECT id, ns, repo, created, updated, client FROM uploads ORDER BY id";
constexpr const char* kListIdleUploads =
    "SELECT id, ns, repo, created, updated, client FROM uploads WHERE updated < $1 ORDER BY updated, id LIMIT $2";
constexpr const char* kPutDocument =
    "INSERT INTO documents(ns, repo, key, body, fetched_at, next_query, filters_applied) "
    "VALUES($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(ns, repo, key) DO UPDATE SET body = excluded.body, "
    "fetched_at = excluded.fetched_at, next_query = excluded.next_query, filters_applied = excluded.filters_applied";
constexpr const char* kFindDocument =
    "SELECT body, fetched_at, next_query, filters_applied FROM documents WHERE ns = $1 AND repo = $2 AND key = $3";
constexpr const char* kPruneDocuments =
    "DELETE FROM documents WHERE ns = $1 AND repo = $2 AND key NOT IN "
    "(SELECT key FROM documents WHERE ns = $1 AND repo = $2 ORDER BY fetched_at DESC, key LIMIT $3)";
constexpr const char* kCountDocuments = "SELECT COUNT(*) FROM documents WHERE ns = $1 AND repo = $2";
constexpr const char* kListNamespaces = "SELECT ns FROM repo_blobs UNION SELECT ns FROM tags ORDER BY 1";
constexpr const char* kListTagRecords =
    "SELECT tag, digest, confirmed_at FROM tags WHERE ns = $1 AND repo = $2 ORDER BY tag";
// The batch in one statement; a digest named twice adds its hits once each.
constexpr const char* kRecordAccesses =
    "UPDATE blobs b SET last_access = GREATEST(b.last_access, a.t), hits = LEAST(b.hits + a.h, 1000000) "
    "FROM (SELECT d, MAX(t) AS t, SUM(h) AS h FROM "
    "unnest($1::text[], $2::bigint[], $3::bigint[]) AS x(d, t, h) GROUP BY d) a WHERE b.digest = a.d";
constexpr const char* kListMirrored =
    "SELECT b.digest, b.size, b.last_access, b.hits, "
    "EXISTS (SELECT 1 FROM repo_blobs m WHERE m.digest = b.digest AND m.media_type <> '')"
    " FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM repo_blobs h WHERE h.digest = b.digest AND h.ns = '')"
    " ORDER BY b.last_access, b.digest";
constexpr const char* kMirroredBytes =
    "SELECT COALESCE(SUM(b.size), 0)"
    " FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM repo_blobs h WHERE h.digest = b.digest AND h.ns = '')";
constexpr const char* kBlobTotals =
    "SELECT COALESCE(SUM(CASE WHEN x.hosted THEN 1 ELSE 0 END), 0),"
    " COALESCE(SUM(CASE WHEN x.hosted THEN x.size ELSE 0 END), 0), COUNT(*), COALESCE(SUM(x.size), 0)"
    " FROM (SELECT b.size, EXISTS (SELECT 1 FROM repo_blobs h WHERE h.digest = b.digest AND h.ns = '') AS hosted"
    " FROM blobs b) x";
constexpr const char* kListLinks = "SELECT digest FROM repo_blobs WHERE ns = $1 AND repo = $2 ORDER BY digest";
constexpr const char* kListUnreferencedLinks =
    "SELECT r.ns, r.repo, r.digest FROM repo_blobs r JOIN blobs b ON b.digest = r.digest "
    "WHERE r.ns = $1 AND r.media_type = '' AND b.last_access < $2 AND NOT EXISTS "
    "(SELECT 1 FROM manifest_refs m WHERE m.ns = r.ns AND m.repo = r.repo AND m.child = r.digest) "
    "ORDER BY r.repo, r.digest LIMIT $3";
constexpr const char* kListUnlinkedBlobs =
    "SELECT digest, size, media_type, created, last_access FROM blobs b WHERE b.last_access < $1 AND NOT EXISTS "
    "(SELECT 1 FROM repo_blobs r WHERE r.digest = b.digest) ORDER BY digest LIMIT $2";
constexpr const char* kUsageByRepository =
    "SELECT r.ns, r.repo, COUNT(*), COALESCE(SUM(b.size), 0) FROM repo_blobs r JOIN blobs b ON b.digest = r.digest "
    "GROUP BY r.ns, r.repo ORDER BY r.ns, r.repo";
constexpr const char* kUsageByNamespace =
    "SELECT ns, COUNT(*), COALESCE(SUM(size), 0) FROM "
    "(SELECT DISTINCT r.ns AS ns, b.digest AS digest, b.size AS size FROM repo_blobs r JOIN blobs b "
    "ON b.digest = r.digest) AS d GROUP BY ns ORDER BY ns";
constexpr const char* kListDanglingTags =
    "SELECT t.ns, t.repo, t.tag, t.digest FROM tags t WHERE NOT EXISTS "
    "(SELECT 1 FROM repo_blobs r WHERE r.ns = t.ns AND r.repo = t.repo AND r.digest = t.digest) "
    "ORDER BY t.ns, t.repo, t.tag";
constexpr const char* kListMissingChildren =
    "SELECT DISTINCT m.ns, m.repo, m.child FROM manifest_refs m WHERE NOT EXISTS "
    "(SELECT 1 FROM repo_blobs r WHERE r.ns = m.ns AND r.repo = m.repo AND r.digest = m.child) "
    "ORDER BY m.ns, m.repo, m.child";
constexpr const char* kCheckReadable =
    "SELECT (SELECT version FROM regcache_schema), (SELECT 1 FROM blobs LIMIT 1)";
constexpr const char* kLockUnit = "SELECT pg_advisory_xact_lock($1)";

// A text[] literal of digests (lowercase algorithm:hex: nothing to quote).
std::string digest_array(const std::vector<Digest>& digests) {
  std::string out = "{";
  for (std::size_t i = 0; i < digests.size(); ++i) out += (i ? "," : "") + digests[i].str();
  return out + "}";
}

std::int64_t to_sql_size(std::uint64_t size, std::string_view what) {
  if (size > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw std::runtime_error("postgres: " + std::string(what) + ": size out of range");
  return static_cast<std::int64_t>(size);
}

void migrate(Connection& c) {
  const auto known = static_cast<std::int64_t>(kMigrations.size());
  exec_simple(c, "BEGIN", "begin migration");
  try {
    exec_simple(c, "SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")", "lock migration");
    exec_simple(c, "CREATE TABLE IF NOT EXISTS regcache_schema(version INTEGER NOT NULL)", "create regcache_schema");
    ResultPtr r(PQexec(c.conn.get(), "SELECT version FROM regcache_schema"));
    check_result(c, r.get(), "read schema version");
    std::int64_t version = 0;
    if (PQntuples(r.get()) == 0) {
      exec_simple(c, "INSERT INTO regcache_schema(version) VALUES(0)", "initialise schema version");
    } else {
      version = std::strtoll(PQgetvalue(r.get(), 0, 0), nullptr, 10);
    }
    if (version > known)
      throw std::runtime_error("postgres: database schema version " + std::to_string(version) +
                               " is newer than this build supports (" + std::to_string(known) +
                               "): a newer regcache wrote it; upgrade this one or use another database");
    for (; version < known; ++version) {
      exec_simple(c, kMigrations[static_cast<std::size_t>(version)], "migrate to version " + std::to_string(version + 1));
      exec_simple(c, "UPDATE regcache_schema SET version = " + std::to_string(version + 1), "set schema version");
    }
    exec_simple(c, "COMMIT", "commit migration");
  } catch (...) {
    if (PQstatus(c.conn.get()) == CONNECTION_OK) PQclear(PQexec(c.conn.get(), "ROLLBACK"));
    throw;
  }
}

class PostgresMetadataStore final : public MetadataStore {
 public:
  explicit PostgresMetadataStore(std::shared_ptr<Pool> pool) : pool_(std::move(pool)) {}
  // A unit of work's view: every call on `conn`, inside its transaction.
  PostgresMetadataStore(std::shared_ptr<Pool> pool, Connection& conn) : pool_(std::move(pool)), unit_(&conn) {}

  void transact(const std::function<void(MetadataStore& tx)>& work) override {
    if (unit_) throw std::logic_error("postgres: transact: units of work do not nest");
    for (int attempt = 1;; ++attempt) {
      Lease lease(*pool_);
      Connection& c = *lease;
      // Failures before `work` starts leave nothing done and are retried: an
      // idle connection that went stale while the server restarted (once, on
      // a fresh one), a deadlock on the lock. `work` itself runs exactly once.
      try {
        begin_unit(c);
      } catch (const StoreUnavailable&) {
        if (lease.reused() && attempt == 1) continue;
        throw;
      }
      PostgresMetadataStore tx(pool_, c);
      try {
        work(tx);
        exec_simple(c, "COMMIT", "transact: commit");
      } catch (...) {
        if (!c.broken && PQstatus(c.conn.get()) == CONNECTION_OK) PQclear(PQexec(c.conn.get(), "ROLLBACK"));
        throw;
      }
      return;
    }
  }

  void check_readable() override { read(kCheckReadable, "check_readable", {}); }

  std::uint64_t contention_retries() const override { return pool_->retries.load(std::memory_order_relaxed); }

  std::optional<BlobRecord> find_blob(const Digest& digest) override {
    Rows rows = read(kFindBlob, "find_blob", Params().add(digest));
    if (rows.empty()) return std::nullopt;
    return read_blob(rows, 0);
  }

  void put_blob(const BlobRecord& r) override {
    write(kPutBlob, "put_blob",
          Params().add(r.digest).add(to_sql_size(r.size, "put_blob")).add(r.media_type).add(r.created).add(r.last_access));
  }

  void touch_blob(const Digest& digest, std::int64_t now) override {
    write(kTouchBlob, "touch_blob", Params().add(digest).add(now));
  }

  void delete_blob(const Digest& digest) override { write(kDeleteBlob, "delete_blob", Params().add(digest)); }

  std::vector<BlobRecord> list_blobs() override { return blobs(read(kListBlobs, "list_blobs", {})); }

  void record_accesses(const std::vector<AccessRecord>& accesses) override {
    if (accesses.empty()) return;
    std::string digests = "{", times = "{", hits = "{";
    for (std::size_t i = 0; i < accesses.size(); ++i) {
      const char* sep = i ? "," : "";
      digests += sep + accesses[i].digest.str();
      times += sep + std::to_string(accesses[i].last_access);
      hits += sep + std::to_string(accesses[i].hits);
    }
    write(kRecordAccesses, "record_accesses", Params().add(digests + "}").add(times + "}").add(hits + "}"));
  }

  std::vector<MirroredBlob> list_mirrored_blobs() override {
    Rows rows = read(kListMirrored, "list_mirrored_blobs", {});
    std::vector<MirroredBlob> out;
    for (int i = 0; i < rows.count(); ++i) {
      auto hits = std::clamp<std::int64_t>(rows.int64(i, 3), 0, std::numeric_limits<std::uint32_t>::max());
      out.push_back({rows.digest(i, 0), rows.uint64(i, 1), rows.int64(i, 2), static_cast<std::uint32_t>(hits),
                     rows.boolean(i, 4)});
    }
    return out;
  }

  std::uint64_t mirrored_bytes() override {
    Rows rows = read(kMirroredBytes, "mirrored_bytes", {});
    return rows.empty() ? 0 : rows.uint64(0, 0);
  }

  BlobTotals blob_totals() override {
    Rows rows = read(kBlobTotals, "blob_totals", {});
    BlobTotals t;
    if (rows.empty()) return t;
    t.hosted_objects = rows.uint64(0, 0);
    t.hosted_bytes = rows.uint64(0, 1);
    t.mirrored_objects = rows.uint64(0, 2) - std::min(rows.uint64(0, 2), t.hosted_objects);
    t.mirrored_bytes = rows.uint64(0, 3) - std::min(rows.uint64(0, 3), t.hosted_bytes);
    return t;
  }

  std::vector<Digest> list_links(const std::string& ns, const std::string& repo) override {
    return digests(read(kListLinks, "list_links", Params().add(ns).add(repo)));
  }

  void link(const std::string& ns, const std::string& repo, const Digest& digest,
            const std::string& media_type) override {
    write(kLink, "link", Params().add(ns).add(repo).add(digest).add(media_type));
  }

  bool is_linked(const std::string& ns, const std::string& repo, const Digest& digest) override {
    return !read(kIsLinked, "is_linked", Params().add(ns).add(repo).add(digest)).empty();
  }

  std::optional<LinkRecord> find_link(const std::string& ns, const std::string& repo, const Digest& digest) override {
    Rows rows = read(kFindLink, "find_link", Params().add(ns).add(repo).add(digest));
    if (rows.empty()) return std::nullopt;
    return LinkRecord{rows.text(0, 0), rows.text(0, 1)};
  }

  std::optional<LinkRecord> find_namespace_link(const std::string& ns, const Digest& digest) override {
    Rows rows = read(kFindNamespaceLink, "find_namespace_link", Params().add(ns).add(digest));
    if (rows.empty()) return std::nullopt;
    return LinkRecord{rows.text(0, 0), rows.text(0, 1)};
  }

  void unlink(const std::string& ns, const std::string& repo, const Digest& digest) override {
    write(kUnlink, "unlink", Params().add(ns).add(repo).add(digest));
  }

  std::optional<TagRecord> find_tag(const std::string& ns, const std::string& repo, const std::string& tag) override {
    Rows rows = read(kFindTag, "find_tag", Params().add(ns).add(repo).add(tag));
    if (rows.empty()) return std::nullopt;
    return TagRecord{rows.digest(0, 0), rows.int64(0, 1)};
  }

  void put_tag(const std::string& ns, const std::string& repo, const std::string& tag, const Digest& digest,
               std::int64_t confirmed_at) override {
    write(kPutTag, "put_tag", Params().add(ns).add(repo).add(tag).add(digest).add(confirmed_at));
  }

  void delete_tag(const std::string& ns, const std::string& repo, const std::string& tag) override {
    write(kDeleteTag, "delete_tag", Params().add(ns).add(repo).add(tag));
  }

  std::vector<std::string> list_tags(const std::string& ns, const std::string& repo) override {
    return strings(read(kListTags, "list_tags", Params().add(ns).add(repo)));
  }

  void delete_tags_for(const std::string& ns, const std::string& repo, const Digest& digest) override {
    write(kDeleteTagsFor, "delete_tags_for", Params().add(ns).add(repo).add(digest));
  }

  std::vector<std::string> list_repositories(const std::string& ns) override {
    return strings(read(kListRepositories, "list_repositories", Params().add(ns)));
  }

  std::size_t count_links(const Digest& digest) override {
    Rows rows = read(kCountLinks, "count_links", Params().add(digest));
    return rows.empty() ? 0 : static_cast<std::size_t>(rows.uint64(0, 0));
  }

  void put_manifest_refs(const std::string& ns, const std::string& repo, const Digest& manifest,
                         const std::vector<Digest>& children) override {
    if (children.empty()) return;
    write(kPutManifestRefs, "put_manifest_refs", Params().add(ns).add(repo).add(manifest).add(digest_array(children)));
  }

  void delete_manifest_refs(const std::string& ns, const std::string& repo, const Digest& manifest) override {
    write(kDeleteManifestRefs, "delete_manifest_refs", Params().add(ns).add(repo).add(manifest));
  }

  std::vector<Digest> manifests_referencing(const std::string& ns, const std::string& repo,
                                            const Digest& child) override {
    return digests(read(kManifestsReferencing, "manifests_referencing", Params().add(ns).add(repo).add(child)));
  }

  void put_referrer(const std::string& ns, const std::string& repo, const ReferrerRecord& r) override {
    write(kPutReferrer, "put_referrer",
          Params().add(ns).add(repo).add(r.subject).add(r.digest).add(r.media_type).add(r.artifact_type)
              .add(to_sql_size(r.size, "put_referrer")).add(r.annotations_json));
  }

  void delete_referrer(const std::string& ns, const std::string& repo, const Digest& digest) override {
    write(kDeleteReferrer, "delete_referrer", Params().add(ns).add(repo).add(digest));
  }

  std::vector<ReferrerRecord> list_referrers(const std::string& ns, const std::string& repo,
                                             const Digest& subject) override {
    Rows rows = read(kListReferrers, "list_referrers", Params().add(ns).add(repo).add(subject));
    std::vector<ReferrerRecord> out;
    for (int i = 0; i < rows.count(); ++i)
      out.push_back({rows.digest(i, 0), rows.digest(i, 1), rows.text(i, 2), rows.text(i, 3), rows.uint64(i, 4),
                     rows.text(i, 5)});
    return out;
  }

  void put_upload(const UploadRecord& r) override {
    write(kPutUpload, "put_upload", Params().add(r.id).add(r.ns).add(r.repo).add(r.created).add(r.updated).add(r.client));
  }

  std::optional<UploadRecord> find_upload(const std::string& id) override {
    Rows rows = read(kFindUpload, "find_upload", Params().add(id));
    if (rows.empty()) return std::nullopt;
    return read_upload(rows, 0);
  }

  void touch_upload(const std::string& id, std::int64_t now) override {
    write(kTouchUpload, "touch_upload", Params().add(id).add(now));
  }

  bool delete_upload(const std::string& id) override {
    return write(kDeleteUpload, "delete_upload", Params().add(id)) > 0;
  }

  std::vector<UploadRecord> list_uploads() override { return uploads(read(kListUploads, "list_uploads", {})); }

  std::vector<UploadRecord> list_uploads_idle_since(std::int64_t cutoff, std::size_t limit) override {
    return uploads(read(kListIdleUploads, "list_uploads_idle_since",
                        Params().add(cutoff).add(to_sql_size(limit, "list_uploads_idle_since"))));
  }

  void put_document(const std::string& ns, const std::string& repo, const std::string& key,
                    const DocumentRecord& d) override {
    write(kPutDocument, "put_document",
          Params().add(ns).add(repo).add(key).add_bytes(d.body).add(d.fetched_at).add(d.next_query).add(d.filters_applied));
  }

  std::optional<DocumentRecord> find_document(const std::string& ns, const std::string& repo,
                                              const std::string& key) override {
    Rows rows = read(kFindDocument, "find_document", Params().add(ns).add(repo).add(key));
    if (rows.empty()) return std::nullopt;
    return DocumentRecord{rows.bytes(0, 0), rows.int64(0, 1), rows.text(0, 2), rows.text(0, 3)};
  }

  std::size_t prune_documents(const std::string& ns, const std::string& repo, std::size_t keep) override {
    return static_cast<std::size_t>(
        write(kPruneDocuments, "prune_documents", Params().add(ns).add(repo).add(to_sql_size(keep, "prune_documents"))));
  }

  std::size_t count_documents(const std::string& ns, const std::string& repo) override {
    Rows rows = read(kCountDocuments, "count_documents", Params().add(ns).add(repo));
    return rows.empty() ? 0 : static_cast<std::size_t>(rows.uint64(0, 0));
  }

  std::vector<std::string> list_namespaces() override { return strings(read(kListNamespaces, "list_namespaces", {})); }

  std::vector<std::pair<std::string, TagRecord>> list_tag_records(const std::string& ns,
                                                                  const std::string& repo) override {
    Rows rows = read(kListTagRecords, "list_tag_records", Params().add(ns).add(repo));
    std::vector<std::pair<std::string, TagRecord>> out;
    for (int i = 0; i < rows.count(); ++i) out.emplace_back(rows.text(i, 0), TagRecord{rows.digest(i, 1), rows.int64(i, 2)});
    return out;
  }

  std::vector<RepoDigest> list_unreferenced_links(const std::string& ns, std::int64_t accessed_before,
                                                  std::size_t limit) override {
    return repo_digests(read(kListUnreferencedLinks, "list_unreferenced_links",
                             Params().add(ns).add(accessed_before).add(to_sql_size(limit, "list_unreferenced_links"))));
  }

  std::vector<BlobRecord> list_unlinked_blobs(std::int64_t accessed_before, std::size_t limit) override {
    return blobs(read(kListUnlinkedBlobs, "list_unlinked_blobs",
                      Params().add(accessed_before).add(to_sql_size(limit, "list_unlinked_blobs"))));
  }

  std::vector<RepositoryUsage> usage_by_repository() override {
    Rows rows = read(kUsageByRepository, "usage_by_repository", {});
    std::vector<RepositoryUsage> out;
    for (int i = 0; i < rows.count(); ++i)
      out.push_back({rows.text(i, 0), rows.text(i, 1), rows.uint64(i, 2), rows.uint64(i, 3)});
    return out;
  }

  std::vector<NamespaceUsage> usage_by_namespace() override {
    Rows rows = read(kUsageByNamespace, "usage_by_namespace", {});
    std::vector<NamespaceUsage> out;
    for (int i = 0; i < rows.count(); ++i) out.push_back({rows.text(i, 0), rows.uint64(i, 1), rows.uint64(i, 2)});
    return out;
  }

  std::vector<TagRef> list_dangling_tags() override {
    Rows rows = read(kListDanglingTags, "list_dangling_tags", {});
    std::vector<TagRef> out;
    for (int i = 0; i < rows.count(); ++i)
      out.push_back({rows.text(i, 0), rows.text(i, 1), rows.text(i, 2), rows.digest(i, 3)});
    return out;
  }

  std::vector<RepoDigest> list_missing_manifest_children() override {
    return repo_digests(read(kListMissingChildren, "list_missing_manifest_children", {}));
  }

 private:
  // BEGIN and the unit lock, retried on a deadlock or serialization failure.
  void begin_unit(Connection& first) {
    for (int attempt = 1;; ++attempt) {
      try {
        exec_simple(first, "BEGIN ISOLATION LEVEL READ COMMITTED", "transact: begin");
        exec_prepared(first, kLockUnit, "transact: lock", Params().add(kUnitLock));
        return;
      } catch (const StatementError& e) {
        if (PQstatus(first.conn.get()) == CONNECTION_OK) PQclear(PQexec(first.conn.get(), "ROLLBACK"));
        if (!retryable_state(e.state) || attempt == kStatementAttempts) throw;
        pool_->retries.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  // Runs `body` on the unit's connection, or on one from the pool. A
  // statement the server aborted as a serialization failure or deadlock was
  // rolled back whole: outside a unit it is run again. A pooled connection
  // found dead on its first use (the server restarted while it was idle) is
  // replaced once: the statement never reached a live server.
  template <class Body>
  auto run(Body&& body) -> decltype(body(std::declval<Connection&>())) {
    if (unit_) return body(*unit_);
    for (int attempt = 1;; ++attempt) {
      Lease lease(*pool_);
      try {
        return body(*lease);
      } catch (const StatementError& e) {
        if (!retryable_state(e.state) || attempt == kStatementAttempts) throw;
        pool_->retries.fetch_add(1, std::memory_order_relaxed);
      } catch (const StoreUnavailable&) {
        if (!lease.reused() || attempt > 1) throw;
      }
    }
  }

  Rows read(const char* sql, std::string_view what, const Params& params) {
    return run([&](Connection& c) { return exec_prepared(c, sql, what, params); });
  }
  std::int64_t write(const char* sql, std::string_view what, const Params& params) {
    return run([&](Connection& c) { return exec_prepared(c, sql, what, params).affected(); });
  }

  static BlobRecord read_blob(const Rows& r, int i) {
    return BlobRecord{r.digest(i, 0), r.uint64(i, 1), r.text(i, 2), r.int64(i, 3), r.int64(i, 4)};
  }
  static std::vector<BlobRecord> blobs(const Rows& r) {
    std::vector<BlobRecord> out;
    for (int i = 0; i < r.count(); ++i) out.push_back(read_blob(r, i));
    return out;
  }
  static UploadRecord read_upload(const Rows& r, int i) {
    return UploadRecord{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.int64(i, 3), r.int64(i, 4), r.text(i, 5)};
  }
  static std::vector<UploadRecord> uploads(const Rows& r) {
    std::vector<UploadRecord> out;
    for (int i = 0; i < r.count(); ++i) out.push_back(read_upload(r, i));
    return out;
  }
  static std::vector<std::string> strings(const Rows& r) {
    std::vector<std::string> out;
    for (int i = 0; i < r.count(); ++i) out.push_back(r.text(i, 0));
    return out;
  }
  static std::vector<Digest> digests(const Rows& r) {
    std::vector<Digest> out;
    for (int i = 0; i < r.count(); ++i) out.push_back(r.digest(i, 0));
    return out;
  }
  static std::vector<RepoDigest> repo_digests(const Rows& r) {
    std::vector<RepoDigest> out;
    for (int i = 0; i < r.count(); ++i) out.push_back({r.text(i, 0), r.text(i, 1), r.digest(i, 2)});
    return out;
  }

  std::shared_ptr<Pool> pool_;
  Connection* unit_ = nullptr;  // set in a unit of work's view only
};

}  // namespace

std::unique_ptr<MetadataStore> open_postgres_store(const PostgresSettings& settings) {
  if (std::string why = postgres_dsn_problem(settings.dsn); !why.empty())
    throw std::runtime_error("postgres: metadata.dsn " + why);
  auto pool = std::make_shared<Pool>(settings);
  {
    // Start-up: one connection, made and migrated here, so that a wrong
    // address, password or database name stops regcache with libpq's reason.
    std::unique_ptr<Connection> c;
    try {
      c = pool->connect();
      migrate(*c);
    } catch (const StoreUnavailable& e) {
      throw std::runtime_error(e.what());
    }
  }
  return std::make_unique<PostgresMetadataStore>(std::move(pool));
}

}  // namespace regcache::db
