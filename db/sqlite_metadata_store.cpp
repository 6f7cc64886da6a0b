// SQLite implementation of MetadataStore (db/metadata_store.h, db/sqlite_metadata_store.h).
//
// What this class promises:
//  - One connection per store, opened in WAL mode with synchronous=NORMAL,
//    foreign keys enforced and a 5 s busy timeout, so other processes holding
//    the file briefly (backups, a second replica during a restart) cause waits,
//    not errors.
//  - The schema is versioned by PRAGMA user_version. Opening applies every
//    missing migration in order, each in its own transaction together with the
//    version bump, so a crash leaves the file at a well-defined version. A file
//    written by a newer build is refused rather than misread.
//  - All methods are thread-safe: calls are serialized on one mutex. Each SQL
//    statement is prepared once and reused.
//  - Every failure throws std::runtime_error naming the operation and carrying
//    SQLite's message. Nothing fails silently.
//
// This is the only place in regcache that contains SQL.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "db/sqlite_metadata_store.h"

namespace regcache::db {
namespace {

constexpr int kBusyTimeoutMs = 5000;

// kMigrations[i] takes the schema from user_version i to i + 1. Append only:
// never edit a step that has shipped, since existing files already ran it.
const std::vector<std::string> kMigrations = {
    // 1: initial schema.
    R"sql(
      CREATE TABLE blobs(
        digest      TEXT PRIMARY KEY,
        size        INTEGER NOT NULL,
        media_type  TEXT NOT NULL DEFAULT '',
        created     INTEGER NOT NULL,
        last_access INTEGER NOT NULL);
      CREATE TABLE repo_blobs(
        ns     TEXT NOT NULL,
        repo   TEXT NOT NULL,
        digest TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
        PRIMARY KEY(ns, repo, digest));
      CREATE INDEX repo_blobs_digest ON repo_blobs(digest);
      CREATE TABLE tags(
        ns           TEXT NOT NULL,
        repo         TEXT NOT NULL,
        tag          TEXT NOT NULL,
        digest       TEXT NOT NULL,
        confirmed_at INTEGER NOT NULL,
        PRIMARY KEY(ns, repo, tag));
      CREATE INDEX tags_digest ON tags(digest);
    )sql",
    // 2: the hosted registry: uploads, referrers, manifest references; cached upstream documents.
    R"sql(
      CREATE TABLE uploads(
        id      TEXT PRIMARY KEY,
        ns      TEXT NOT NULL,
        repo    TEXT NOT NULL,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL);
      CREATE TABLE referrers(
        ns            TEXT NOT NULL,
        repo          TEXT NOT NULL,
        subject       TEXT NOT NULL,
        digest        TEXT NOT NULL,
        media_type    TEXT NOT NULL,
        artifact_type TEXT NOT NULL,
        size          INTEGER NOT NULL,
        annotations   TEXT NOT NULL,
        PRIMARY KEY(ns, repo, subject, digest));
      CREATE INDEX referrers_digest ON referrers(ns, repo, digest);
      CREATE TABLE manifest_refs(
        ns       TEXT NOT NULL,
        repo     TEXT NOT NULL,
        manifest TEXT NOT NULL,
        child    TEXT NOT NULL,
        PRIMARY KEY(ns, repo, manifest, child));
      CREATE INDEX manifest_refs_child ON manifest_refs(ns, repo, child);
      CREATE TABLE documents(
        ns         TEXT NOT NULL,
        repo       TEXT NOT NULL,
        key        TEXT NOT NULL,
        body       TEXT NOT NULL,
        fetched_at INTEGER NOT NULL,
        PRIMARY KEY(ns, repo, key));
    )sql",
    // 3: what a kept document's response said besides its body.
    R"sql(
      ALTER TABLE documents ADD COLUMN next_query TEXT NOT NULL DEFAULT '';
      ALTER TABLE documents ADD COLUMN filters_applied TEXT NOT NULL DEFAULT '';
    )sql",
    // 4: isolation by namespace and bounded anonymous state. A manifest's media
    //    type moves to its repository link (so a hosted push of the same bytes
    //    with another type cannot change how a mirrored repository serves them),
    //    back-filled from the blob row; upload sessions remember the client that
    //    started them and are found by idle time; kept documents by age.
    R"sql(
      ALTER TABLE repo_blobs ADD COLUMN media_type TEXT NOT NULL DEFAULT '';
      UPDATE repo_blobs SET media_type =
        COALESCE((SELECT b.media_type FROM blobs b WHERE b.digest = repo_blobs.digest), '');
      CREATE INDEX repo_blobs_ns_digest ON repo_blobs(ns, digest);
      ALTER TABLE uploads ADD COLUMN client TEXT NOT NULL DEFAULT '';
      CREATE INDEX uploads_updated ON uploads(updated);
      CREATE INDEX documents_fetched ON documents(ns, repo, fetched_at);
    )sql",
    // 5: access tracking for eviction. Existing rows count as used once (their
    //    fill); candidates are found by last access.
    R"sql(
      ALTER TABLE blobs ADD COLUMN hits INTEGER NOT NULL DEFAULT 1;
      CREATE INDEX blobs_last_access ON blobs(last_access);
    )sql",
};

[[noreturn]] void fail(sqlite3* db, std::string_view what) {
  throw std::runtime_error("sqlite: " + std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

// sqlite3_busy_timeout(kBusyTimeoutMs) as a handler of our own, so that the
// waits are counted: the same back-off as SQLite's default handler, giving
// up once kBusyTimeoutMs have been slept. `waits` (may be null) counts the
// waits, one per lock met (the handler's first call for it).
int busy_wait(void* waits, int count) {
  static constexpr int kDelays[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100};
  static constexpr int kTotals[] = {0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228};
  constexpr int kSteps = static_cast<int>(std::size(kDelays));
  if (count == 0 && waits) static_cast<std::atomic<std::uint64_t>*>(waits)->fetch_add(1, std::memory_order_relaxed);
  int delay = kDelays[std::min(count, kSteps - 1)];
  int prior = count < kSteps ? kTotals[count] : kTotals[kSteps - 1] + kDelays[kSteps - 1] * (count - (kSteps - 1));
  if (prior + delay > kBusyTimeoutMs) {
    delay = kBusyTimeoutMs - prior;
    if (delay <= 0) return 0;
  }
  sqlite3_sleep(delay);
  return 1;
}

DbPtr open_connection(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_FULLMUTEX, nullptr);
  DbPtr db(raw);  // sqlite may hand back a handle even on failure; it must be closed
  if (rc != SQLITE_OK) fail(raw, "open " + path);
  sqlite3_extended_result_codes(db.get(), 1);
  if (sqlite3_busy_handler(db.get(), busy_wait, nullptr) != SQLITE_OK) fail(db.get(), "set busy handler");
  return db;
}

// Runs SQL without results (or whose results are ignored).
void exec(sqlite3* db, const std::string& sql, std::string_view what) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw std::runtime_error("sqlite: " + std::string(what) + ": " + msg);
  }
}

// One use of a prepared statement. Binds parameters in order (?1, ?2, ...) and
// always resets the statement on destruction, even when an exception unwinds,
// so a cached statement never holds a read transaction open or carries stale
// bindings into its next use.
class Query {
 public:
  Query(sqlite3* db, sqlite3_stmt* stmt, std::string_view what) : db_(db), stmt_(stmt), what_(what) {}
  ~Query() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(std::string_view text) {
    check(sqlite3_bind_text(stmt_, ++index_, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Query& bind(const Digest& digest) { return bind(digest.str()); }
  Query& bind(std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, ++index_, value));
    return *this;
  }

  // True while there is a row to read; false once the statement is done.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, what_);
  }
  void run() { while (step()) {} }

  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  // Digests are only ever written from valid Digest values, so a bad one means
  // the file was edited or corrupted: refuse it rather than propagate it.
  Digest digest(int col) const {
    std::string s = text(col);
    auto d = Digest::parse(s);
    if (!d) throw std::runtime_error("sqlite: " + std::string(what_) + ": invalid digest in database: " + s);
    return *d;
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, what_);
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string_view what_;  // must outlive the Query (string literals, in practice)
  int index_ = 0;
};

// Runs a one-off statement (a PRAGMA) and returns the first column of each row.
std::vector<std::string> rows_of(sqlite3* db, const char* sql, std::string_view what) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) fail(db, what);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owner(stmt, sqlite3_finalize);
  Query q(db, stmt, what);  // destroyed (reset) before `owner` finalizes
  std::vector<std::string> rows;
  while (q.step()) rows.push_back(q.text(0));
  return rows;
}

std::int64_t read_user_version(sqlite3* db) {
  auto rows = rows_of(db, "PRAGMA user_version", "read user_version");
  return rows.empty() ? 0 : std::stoll(rows.front());
}

// Brings the schema up to kMigrations.size(). The version is re-read inside
// each write transaction, so two processes opening the same fresh file at once
// cannot both apply the same step.
void migrate(sqlite3* db) {
  const auto known = static_cast<std::int64_t>(kMigrations.size());
  for (;;) {
    exec(db, "BEGIN IMMEDIATE", "begin migration");
    try {
      std::int64_t version = read_user_version(db);
      if (version > known) {
        throw std::runtime_error("sqlite: database schema version " + std::to_string(version) +
                                 " is newer than this build supports (" + std::to_string(known) + ")");
      }
      if (version == known) {
        exec(db, "COMMIT", "finish migration");
        return;
      }
      exec(db, kMigrations[static_cast<std::size_t>(version)], "migrate to version " + std::to_string(version + 1));
      exec(db, "PRAGMA user_version = " + std::to_string(version + 1), "set user_version");
      exec(db, "COMMIT", "commit migration");
    } catch (...) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);  // no-op if COMMIT already ended it
      throw;
    }
  }
}

// --- statements (string literals: their addresses key the statement cache) ---
constexpr const char* kFindBlob =
    "SELECT digest, size, media_type, created, last_access FROM blobs WHERE digest = ?1";
// On an existing digest: `created` is kept, an empty media type never erases a
// known one, and last_access only moves forward (a re-put counts as a use).
constexpr const char* kPutBlob =
    "INSERT INTO blobs(digest, size, media_type, created, last_access) VALUES(?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT(digest) DO UPDATE SET size = excluded.size, "
    "media_type = CASE WHEN excluded.media_type <> '' THEN excluded.media_type ELSE blobs.media_type END, "
    "last_access = MAX(blobs.last_access, excluded.last_access)";
// MAX: concurrent requests may touch out of order; the newest time wins.
constexpr const char* kTouchBlob = "UPDATE blobs SET last_access = MAX(last_access, ?2) WHERE digest = ?1";
constexpr const char* kDeleteBlobTags = "DELETE FROM tags WHERE digest = ?1";
// repo_blobs rows go with it through ON DELETE CASCADE.
constexpr const char* kDeleteBlob = "DELETE FROM blobs WHERE digest = ?1";
constexpr const char* kListBlobs =
    "SELECT digest, size, media_type, created, last_access FROM blobs ORDER BY digest";
constexpr const char* kLink =
    "INSERT INTO repo_blobs(ns, repo, digest, media_type) VALUES(?1, ?2, ?3, ?4) "
    "ON CONFLICT(ns, repo, digest) DO UPDATE SET "
    "media_type = CASE WHEN excluded.media_type <> '' THEN excluded.media_type ELSE repo_blobs.media_type END";
constexpr const char* kFindLink = "SELECT repo, media_type FROM repo_blobs WHERE ns = ?1 AND repo = ?2 AND digest = ?3";
// A link with a media type first: a manifest linked in one repository and
// merely listed (without type) in another is still a manifest.
constexpr const char* kFindNamespaceLink =
    "SELECT repo, media_type FROM repo_blobs WHERE ns = ?1 AND digest = ?2 ORDER BY media_type = '', repo LIMIT 1";
constexpr const char* kIsLinked = "SELECT 1 FROM repo_blobs WHERE ns = ?1 AND repo = ?2 AND digest = ?3";
constexpr const char* kUnlink = "DELETE FROM repo_blobs WHERE ns = ?1 AND repo = ?2 AND digest = ?3";
constexpr const char* kFindTag = "SELECT digest, confirmed_at FROM tags WHERE ns = ?1 AND repo = ?2 AND tag = ?3";
constexpr const char* kPutTag =
    "INSERT INTO tags(ns, repo, tag, digest, confirmed_at) VALUES(?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT(ns, repo, tag) DO UPDATE SET digest = excluded.digest, confirmed_at = excluded.confirmed_at";
constexpr const char* kDeleteTag = "DELETE FROM tags WHERE ns = ?1 AND repo = ?2 AND tag = ?3";
// BINARY collation (the default) orders by bytes.
constexpr const char* kListTags = "SELECT tag FROM tags WHERE ns = ?1 AND repo = ?2 ORDER BY tag";
constexpr const char* kDeleteTagsFor = "DELETE FROM tags WHERE ns = ?1 AND repo = ?2 AND digest = ?3";
constexpr const char* kListRepositories =
    "SELECT repo FROM repo_blobs WHERE ns = ?1 UNION SELECT repo FROM tags WHERE ns = ?1 ORDER BY 1";
constexpr const char* kCountLinks = "SELECT COUNT(*) FROM repo_blobs WHERE digest = ?1";
constexpr const char* kPutManifestRef =
    "INSERT OR IGNORE INTO manifest_refs(ns, repo, manifest, child) VALUES(?1, ?2, ?3, ?4)";
constexpr const char* kDeleteManifestRefs = "DELETE FROM manifest_refs WHERE ns = ?1 AND repo = ?2 AND manifest = ?3";
constexpr const char* kManifestsReferencing =
    "SELECT manifest FROM manifest_refs WHERE ns = ?1 AND repo = ?2 AND child = ?3 ORDER BY manifest";
constexpr const char* kPutReferrer =
    "INSERT OR REPLACE INTO referrers(ns, repo, subject, digest, media_type, artifact_type, size, annotations) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr const char* kDeleteReferrer = "DELETE FROM referrers WHERE ns = ?1 AND repo = ?2 AND digest = ?3";
constexpr const char* kListReferrers =
    "SELECT subject, digest, media_type, artifact_type, size, annotations FROM referrers "
    "WHERE ns = ?1 AND repo = ?2 AND subject = ?3 ORDER BY digest";
constexpr const char* kPutUpload =
    "INSERT OR REPLACE INTO uploads(id, ns, repo, created, updated, client) VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
constexpr const char* kFindUpload = "SELECT id, ns, repo, created, updated, client FROM uploads WHERE id = ?1";
constexpr const char* kTouchUpload = "UPDATE uploads SET updated = MAX(updated, ?2) WHERE id = ?1";
constexpr const char* kDeleteUpload = "DELETE FROM uploads WHERE id = ?1";
constexpr const char* kListUploads = "SELECT id, ns, repo, created, updated, client FROM uploads ORDER BY id";
constexpr const char* kListIdleUploads =
    "SELECT id, ns, repo, created, updated, client FROM uploads WHERE updated < ?1 ORDER BY updated LIMIT ?2";
constexpr const char* kPutDocument =
    "INSERT OR REPLACE INTO documents(ns, repo, key, body, fetched_at, next_query, filters_applied) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* kFindDocument =
    "SELECT body, fetched_at, next_query, filters_applied FROM documents WHERE ns = ?1 AND repo = ?2 AND key = ?3";
// Everything but the `keep` newest documents of one repository.
constexpr const char* kPruneDocuments =
    "DELETE FROM documents WHERE ns = ?1 AND repo = ?2 AND key NOT IN "
    "(SELECT key FROM documents WHERE ns = ?1 AND repo = ?2 ORDER BY fetched_at DESC, key LIMIT ?3)";
constexpr const char* kCountDocuments = "SELECT COUNT(*) FROM documents WHERE ns = ?1 AND repo = ?2";
constexpr const char* kListNamespaces = "SELECT ns FROM repo_blobs UNION SELECT ns FROM tags ORDER BY 1";
constexpr const char* kListTagRecords =
    "SELECT tag, digest, confirmed_at FROM tags WHERE ns = ?1 AND repo = ?2 ORDER BY tag";
// Hits are capped: the policy only tells 1 from 2+, and a counter must not overflow.
constexpr const char* kRecordAccess =
    "UPDATE blobs SET last_access = MAX(last_access, ?2), hits = MIN(hits + ?3, 1000000) WHERE digest = ?1";
// Mirrored = no hosted (ns '') link; both use the repo_blobs(digest) index.
constexpr const char* kListMirrored =
    "SELECT b.digest, b.size, b.last_access, b.hits, "
    "EXISTS (SELECT 1 FROM repo_blobs m WHERE m.digest = b.digest AND m.media_type <> '')"
    " FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM repo_blobs h WHERE h.digest = b.digest AND h.ns = '')"
    " ORDER BY b.last_access";
constexpr const char* kMirroredBytes =
    "SELECT COALESCE(SUM(b.size), 0)"
    " FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM repo_blobs h WHERE h.digest = b.digest AND h.ns = '')";
constexpr const char* kBlobTotals =
    "SELECT COALESCE(SUM(CASE WHEN x.hosted THEN 1 ELSE 0 END), 0),"
    " COALESCE(SUM(CASE WHEN x.hosted THEN x.size ELSE 0 END), 0), COUNT(*), COALESCE(SUM(x.size), 0)"
    " FROM (SELECT b.size, EXISTS (SELECT 1 FROM repo_blobs h WHERE h.digest = b.digest AND h.ns = '') AS hosted"
    " FROM blobs b) x";
constexpr const char* kListLinks = "SELECT digest FROM repo_blobs WHERE ns = ?1 AND repo = ?2 ORDER BY digest";
// Store maintenance (regcache gc / du / fsck).
constexpr const char* kListUnreferencedLinks =
    "SELECT r.ns, r.repo, r.digest FROM repo_blobs r JOIN blobs b ON b.digest = r.digest "
    "WHERE r.ns = ?1 AND r.media_type = '' AND b.last_access < ?2 AND NOT EXISTS "
    "(SELECT 1 FROM manifest_refs m WHERE m.ns = r.ns AND m.repo = r.repo AND m.child = r.digest) "
    "ORDER BY r.repo, r.digest LIMIT ?3";
constexpr const char* kListUnlinkedBlobs =
    "SELECT digest, size, media_type, created, last_access FROM blobs b WHERE b.last_access < ?1 AND NOT EXISTS "
    "(SELECT 1 FROM repo_blobs r WHERE r.digest = b.digest) ORDER BY digest LIMIT ?2";
constexpr const char* kUsageByRepository =
    "SELECT r.ns, r.repo, COUNT(*), COALESCE(SUM(b.size), 0) FROM repo_blobs r JOIN blobs b ON b.digest = r.digest "
    "GROUP BY r.ns, r.repo ORDER BY r.ns, r.repo";
constexpr const char* kUsageByNamespace =
    "SELECT ns, COUNT(*), COALESCE(SUM(size), 0) FROM "
    "(SELECT DISTINCT r.ns AS ns, b.digest AS digest, b.size AS size FROM repo_blobs r JOIN blobs b "
    "ON b.digest = r.digest) GROUP BY ns ORDER BY ns";
constexpr const char* kListDanglingTags =
    "SELECT t.ns, t.repo, t.tag, t.digest FROM tags t WHERE NOT EXISTS "
    "(SELECT 1 FROM repo_blobs r WHERE r.ns = t.ns AND r.repo = t.repo AND r.digest = t.digest) "
    "ORDER BY t.ns, t.repo, t.tag";
constexpr const char* kListMissingChildren =
    "SELECT DISTINCT m.ns, m.repo, m.child FROM manifest_refs m WHERE NOT EXISTS "
    "(SELECT 1 FROM repo_blobs r WHERE r.ns = m.ns AND r.repo = m.repo AND r.digest = m.child) "
    "ORDER BY m.ns, m.repo, m.child";
constexpr const char* kCommit = "COMMIT";
// Reads the schema page and the first page of the blobs table.
constexpr const char* kCheckReadable = "SELECT (SELECT COUNT(*) FROM sqlite_master), (SELECT 1 FROM blobs LIMIT 1)";
// BEGIN IMMEDIATE waits out the busy timeout for another process's writer; a
// unit still refused after that many such waits gives up.
constexpr int kBeginAttempts = 3;

std::int64_t to_sql_size(std::uint64_t size) {
  if (size > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw std::runtime_error("sqlite: put_blob: size out of range");
  return static_cast<std::int64_t>(size);
}

UploadRecord read_upload(const Query& q) {
  return UploadRecord{q.text(0), q.text(1), q.text(2), q.int64(3), q.int64(4), q.text(5)};
}

BlobRecord read_blob(const Query& q) {
  return BlobRecord{q.digest(0), static_cast<std::uint64_t>(q.int64(1)), q.text(2), q.int64(3), q.int64(4)};
}

class SqliteMetadataStore final : public MetadataStore {
 public:
  explicit SqliteMetadataStore(const std::string& path)
      : path_(path), db_(open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) {
    sqlite3* db = db_.get();
    // journal_mode answers with the mode actually in effect; an in-memory
    // database cannot use WAL and reports "memory".
    auto mode = rows_of(db, "PRAGMA journal_mode = WAL", "set journal_mode");
    if (mode.empty() || (mode[0] != "wal" && mode[0] != "memory"))
      throw std::runtime_error("sqlite: could not enable WAL mode on " + path);
    // The store's own connection counts its waits (contention_retries).
    if (sqlite3_busy_handler(db, busy_wait, &busy_waits_) != SQLITE_OK) fail(db, "set busy handler");
    exec(db, "PRAGMA synchronous = NORMAL", "set synchronous");
    exec(db, "PRAGMA foreign_keys = ON", "enable foreign keys");
    migrate(db);
  }

  ~SqliteMetadataStore() override {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  }

  std::optional<BlobRecord> find_blob(const Digest& digest) override {
    std::lock_guard lock(mutex_);
    Query q = query(kFindBlob, "find_blob");
    q.bind(digest);
    if (!q.step()) return std::nullopt;
    return read_blob(q);
  }

  void put_blob(const BlobRecord& r) override {
    std::lock_guard lock(mutex_);
    Query q = query(kPutBlob, "put_blob");
    q.bind(r.digest).bind(to_sql_size(r.size)).bind(r.media_type).bind(r.created).bind(r.last_access).run();
  }

  void touch_blob(const Digest& digest, std::int64_t now) override {
    std::lock_guard lock(mutex_);
    query(kTouchBlob, "touch_blob").bind(digest).bind(now).run();
  }

  void delete_blob(const Digest& digest) override {
    std::lock_guard lock(mutex_);
    // Tags have no foreign key (a tag may be recorded before or without its
    // blob row), so they are removed explicitly, atomically with the blob.
    transaction("delete_blob", [&] {
      query(kDeleteBlobTags, "delete_blob: tags").bind(digest).run();
      query(kDeleteBlob, "delete_blob").bind(digest).run();
    });
  }

  std::vector<BlobRecord> list_blobs() override {
    std::lock_guard lock(mutex_);
    Query q = query(kListBlobs, "list_blobs");
    std::vector<BlobRecord> out;
    while (q.step()) out.push_back(read_blob(q));
    return out;
  }

  void record_accesses(const std::vector<AccessRecord>& accesses) override {
    std::lock_guard lock(mutex_);
    transaction("record_accesses", [&] {
      for (const auto& a : accesses)
        query(kRecordAccess, "record_accesses").bind(a.digest).bind(a.last_access).bind(std::int64_t{a.hits}).run();
    });
  }

  std::vector<MirroredBlob> list_mirrored_blobs() override {
    std::lock_guard lock(mutex_);
    Query q = query(kListMirrored, "list_mirrored_blobs");
    std::vector<MirroredBlob> out;
    while (q.step()) {
      auto hits = std::clamp<std::int64_t>(q.int64(3), 0, std::numeric_limits<std::uint32_t>::max());
      out.push_back({q.digest(0), static_cast<std::uint64_t>(q.int64(1)), q.int64(2),
                     static_cast<std::uint32_t>(hits), q.int64(4) != 0});
    }
    return out;
  }

  std::uint64_t mirrored_bytes() override {
    std::lock_guard lock(mutex_);
    Query q = query(kMirroredBytes, "mirrored_bytes");
    return q.step() ? static_cast<std::uint64_t>(std::max<std::int64_t>(0, q.int64(0))) : 0;
  }

  BlobTotals blob_totals() override {
    std::lock_guard lock(mutex_);
    Query q = query(kBlobTotals, "blob_totals");
    BlobTotals t;
    if (!q.step()) return t;
    auto n = [&](int col) { return static_cast<std::uint64_t>(std::max<std::int64_t>(0, q.int64(col))); };
    t.hosted_objects = n(0);
    t.hosted_bytes = n(1);
    t.mirrored_objects = n(2) - std::min(n(2), t.hosted_objects);
    t.mirrored_bytes = n(3) - std::min(n(3), t.hosted_bytes);
    return t;
  }

  std::vector<Digest> list_links(const std::string& ns, const std::string& repo) override {
    std::lock_guard lock(mutex_);
    Query q = query(kListLinks, "list_links");
    q.bind(ns).bind(repo);
    std::vector<Digest> out;
    while (q.step()) out.push_back(q.digest(0));
    return out;
  }

  // A connection of its own, opened for this check only: the store's
  // connection answers from its page cache and would not notice a file that
  // became unreadable (or was replaced) since start. An in-memory database
  // has no file: its own connection is asked.
  std::uint64_t contention_retries() const override {
    return busy_waits_.load(std::memory_order_relaxed) + begin_retries_.load(std::memory_order_relaxed);
  }

  void check_readable() override {
    if (path_.empty() || path_ == ":memory:" || path_.rfind("file::memory:", 0) == 0) {
      std::lock_guard lock(mutex_);
      rows_of(db_.get(), kCheckReadable, "check_readable");
      return;
    }
    DbPtr probe = open_connection(path_, SQLITE_OPEN_READONLY);
    rows_of(probe.get(), kCheckReadable, "check_readable");
  }

  void transact(const std::function<void(MetadataStore& tx)>& work) override {
    std::lock_guard lock(mutex_);
    if (in_unit_) throw std::logic_error("sqlite: transact: units of work do not nest");
    begin();
    in_unit_ = true;
    try {
      work(*this);
      query(kCommit, "transact: commit").run();
      in_unit_ = false;
    } catch (...) {
      in_unit_ = false;
      rollback();
      throw;
    }
  }

  void link(const std::string& ns, const std::string& repo, const Digest& digest,
            const std::string& media_type) override {
    std::lock_guard lock(mutex_);
    query(kLink, "link").bind(ns).bind(repo).bind(digest).bind(media_type).run();
  }

  std::optional<LinkRecord> find_link(const std::string& ns, const std::string& repo, const Digest& digest) override {
    std::lock_guard lock(mutex_);
    Query q = query(kFindLink, "find_link");
    q.bind(ns).bind(repo).bind(digest);
    if (!q.step()) return std::nullopt;
    return LinkRecord{q.text(0), q.text(1)};
  }

  std::optional<LinkRecord> find_namespace_link(const std::string& ns, const Digest& digest) override {
    std::lock_guard lock(mutex_);
    Query q = query(kFindNamespaceLink, "find_namespace_link");
    q.bind(ns).bind(digest);
    if (!q.step()) return std::nullopt;
    return LinkRecord{q.text(0), q.text(1)};
  }

  bool is_linked(const std::string& ns, const std::string& repo, const Digest& digest) override {
    std::lock_guard lock(mutex_);
    return query(kIsLinked, "is_linked").bind(ns).bind(repo).bind(digest).step();
  }

  void unlink(const std::string& ns, const std::string& repo, const Digest& digest) override {
    std::lock_guard lock(mutex_);
    query(kUnlink, "unlink").bind(ns).bind(repo).bind(digest).run();
  }

  std::optional<TagRecord> find_tag(const std::string& ns, const std::string& repo, const std::string& tag) override {
    std::lock_guard lock(mutex_);
    Query q = query(kFindTag, "find_tag");
    q.bind(ns).bind(repo).bind(tag);
    if (!q.step()) return std::nullopt;
    return TagRecord{q.digest(0), q.int64(1)};
  }

  void put_tag(const std::string& ns, const std::string& repo, const std::string& tag, const Digest& digest,
               std::int64_t confirmed_at) override {
    std::lock_guard lock(mutex_);
    query(kPutTag, "put_tag").bind(ns).bind(repo).bind(tag).bind(digest).bind(confirmed_at).run();
  }

  void delete_tag(const std::string& ns, const std::string& repo, const std::string& tag) override {
    std::lock_guard lock(mutex_);
    query(kDeleteTag, "delete_tag").bind(ns).bind(repo).bind(tag).run();
  }

  std::vector<std::string> list_tags(const std::string& ns, const std::string& repo) override {
    std::lock_guard lock(mutex_);
    Query q = query(kListTags, "list_tags");
    q.bind(ns).bind(repo);
    std::vector<std::string> out;
    while (q.step()) out.push_back(q.text(0));
    return out;
  }

  void delete_tags_for(const std::string& ns, const std::string& repo, const Digest& digest) override {
    std::lock_guard lock(mutex_);
    query(kDeleteTagsFor, "delete_tags_for").bind(ns).bind(repo).bind(digest).run();
  }

  std::vector<std::string> list_repositories(const std::string& ns) override {
    std::lock_guard lock(mutex_);
    Query q = query(kListRepositories, "list_repositories");
    q.bind(ns);
    std::vector<std::string> out;
    while (q.step()) out.push_back(q.text(0));
    return out;
  }

  std::size_t count_links(const Digest& digest) override {
    std::lock_guard lock(mutex_);
    Query q = query(kCountLinks, "count_links");
    q.bind(digest);
    return q.step() ? static_cast<std::size_t>(q.int64(0)) : 0;
  }

  void put_manifest_refs(const std::string& ns, const std::string& repo, const Digest& manifest,
                         const std::vector<Digest>& children) override {
    std::lock_guard lock(mutex_);
    transaction("put_manifest_refs", [&] {
      for (const auto& child : children)
        query(kPutManifestRef, "put_manifest_refs").bind(ns).bind(repo).bind(manifest).bind(child).run();
    });
  }

  void delete_manifest_refs(const std::string& ns, const std::string& repo, const Digest& manifest) override {
    std::lock_guard lock(mutex_);
    query(kDeleteManifestRefs, "delete_manifest_refs").bind(ns).bind(repo).bind(manifest).run();
  }

  std::vector<Digest> manifests_referencing(const std::string& ns, const std::string& repo,
                                            const Digest& child) override {
    std::lock_guard lock(mutex_);
    Query q = query(kManifestsReferencing, "manifests_referencing");
    q.bind(ns).bind(repo).bind(child);
    std::vector<Digest> out;
    while (q.step()) out.push_back(q.digest(0));
    return out;
  }

  void put_referrer(const std::string& ns, const std::string& repo, const ReferrerRecord& r) override {
    std::lock_guard lock(mutex_);
    query(kPutReferrer, "put_referrer")
        .bind(ns).bind(repo).bind(r.subject).bind(r.digest).bind(r.media_type).bind(r.artifact_type)
        .bind(to_sql_size(r.size)).bind(r.annotations_json).run();
  }

  void delete_referrer(const std::string& ns, const std::string& repo, const Digest& digest) override {
    std::lock_guard lock(mutex_);
    query(kDeleteReferrer, "delete_referrer").bind(ns).bind(repo).bind(digest).run();
  }

  std::vector<ReferrerRecord> list_referrers(const std::string& ns, const std::string& repo,
                                             const Digest& subject) override {
    std::lock_guard lock(mutex_);
    Query q = query(kListReferrers, "list_referrers");
    q.bind(ns).bind(repo).bind(subject);
    std::vector<ReferrerRecord> out;
    while (q.step())
      out.push_back({q.digest(0), q.digest(1), q.text(2), q.text(3), static_cast<std::uint64_t>(q.int64(4)), q.text(5)});
    return out;
  }

  void put_upload(const UploadRecord& r) override {
    std::lock_guard lock(mutex_);
    query(kPutUpload, "put_upload").bind(r.id).bind(r.ns).bind(r.repo).bind(r.created).bind(r.updated).bind(r.client).run();
  }

  std::optional<UploadRecord> find_upload(const std::string& id) override {
    std::lock_guard lock(mutex_);
    Query q = query(kFindUpload, "find_upload");
    q.bind(id);
    if (!q.step()) return std::nullopt;
    return read_upload(q);
  }

  void touch_upload(const std::string& id, std::int64_t now) override {
    std::lock_guard lock(mutex_);
    query(kTouchUpload, "touch_upload").bind(id).bind(now).run();
  }

  bool delete_upload(const std::string& id) override {
    std::lock_guard lock(mutex_);
    query(kDeleteUpload, "delete_upload").bind(id).run();
    return sqlite3_changes(db_.get()) > 0;
  }

  std::vector<UploadRecord> list_uploads_idle_since(std::int64_t cutoff, std::size_t limit) override {
    std::lock_guard lock(mutex_);
    Query q = query(kListIdleUploads, "list_uploads_idle_since");
    q.bind(cutoff).bind(to_sql_size(limit));
    std::vector<UploadRecord> out;
    while (q.step()) out.push_back(read_upload(q));
    return out;
  }

  std::vector<UploadRecord> list_uploads() override {
    std::lock_guard lock(mutex_);
    Query q = query(kListUploads, "list_uploads");
    std::vector<UploadRecord> out;
    while (q.step()) out.push_back(read_upload(q));
    return out;
  }

  void put_document(const std::string& ns, const std::string& repo, const std::string& key,
                    const DocumentRecord& d) override {
    std::lock_guard lock(mutex_);
    query(kPutDocument, "put_document")
        .bind(ns).bind(repo).bind(key).bind(d.body).bind(d.fetched_at).bind(d.next_query).bind(d.filters_applied)
        .run();
  }

  std::optional<DocumentRecord> find_document(const std::string& ns, const std::string& repo,
                                              const std::string& key) override {
    std::lock_guard lock(mutex_);
    Query q = query(kFindDocument, "find_document");
    q.bind(ns).bind(repo).bind(key);
    if (!q.step()) return std::nullopt;
    return DocumentRecord{q.text(0), q.int64(1), q.text(2), q.text(3)};
  }

  std::size_t prune_documents(const std::string& ns, const std::string& repo, std::size_t keep) override {
    std::lock_guard lock(mutex_);
    query(kPruneDocuments, "prune_documents").bind(ns).bind(repo).bind(to_sql_size(keep)).run();
    return static_cast<std::size_t>(sqlite3_changes(db_.get()));
  }

  std::size_t count_documents(const std::string& ns, const std::string& repo) override {
    std::lock_guard lock(mutex_);
    Query q = query(kCountDocuments, "count_documents");
    q.bind(ns).bind(repo);
    return q.step() ? static_cast<std::size_t>(q.int64(0)) : 0;
  }

  std::vector<std::string> list_namespaces() override {
    std::lock_guard lock(mutex_);
    Query q = query(kListNamespaces, "list_namespaces");
    std::vector<std::string> out;
    while (q.step()) out.push_back(q.text(0));
    return out;
  }

  std::vector<std::pair<std::string, TagRecord>> list_tag_records(const std::string& ns,
                                                                  const std::string& repo) override {
    std::lock_guard lock(mutex_);
    Query q = query(kListTagRecords, "list_tag_records");
    q.bind(ns).bind(repo);
    std::vector<std::pair<std::string, TagRecord>> out;
    while (q.step()) out.emplace_back(q.text(0), TagRecord{q.digest(1), q.int64(2)});
    return out;
  }

  std::vector<RepoDigest> list_unreferenced_links(const std::string& ns, std::int64_t accessed_before,
                                                  std::size_t limit) override {
    std::lock_guard lock(mutex_);
    Query q = query(kListUnreferencedLinks, "list_unreferenced_links");
    q.bind(ns).bind(accessed_before).bind(to_sql_size(limit));
    std::vector<RepoDigest> out;
    while (q.step()) out.push_back({q.text(0), q.text(1), q.digest(2)});
    return out;
  }

  std::vector<BlobRecord> list_unlinked_blobs(std::int64_t accessed_before, std::size_t limit) override {
    std::lock_guard lock(mutex_);
    Query q = query(kListUnlinkedBlobs, "list_unlinked_blobs");
    q.bind(accessed_before).bind(to_sql_size(limit));
    std::vector<BlobRecord> out;
    while (q.step()) out.push_back(read_blob(q));
    return out;
  }

  std::vector<RepositoryUsage> usage_by_repository() override {
    std::lock_guard lock(mutex_);
    Query q = query(kUsageByRepository, "usage_by_repository");
    std::vector<RepositoryUsage> out;
    while (q.step())
      out.push_back({q.text(0), q.text(1), static_cast<std::uint64_t>(q.int64(2)), static_cast<std::uint64_t>(q.int64(3))});
    return out;
  }

  std::vector<NamespaceUsage> usage_by_namespace() override {
    std::lock_guard lock(mutex_);
    Query q = query(kUsageByNamespace, "usage_by_namespace");
    std::vector<NamespaceUsage> out;
    while (q.step())
      out.push_back({q.text(0), static_cast<std::uint64_t>(q.int64(1)), static_cast<std::uint64_t>(q.int64(2))});
    return out;
  }

  std::vector<TagRef> list_dangling_tags() override {
    std::lock_guard lock(mutex_);
    Query q = query(kListDanglingTags, "list_dangling_tags");
    std::vector<TagRef> out;
    while (q.step()) out.push_back({q.text(0), q.text(1), q.text(2), q.digest(3)});
    return out;
  }

  std::vector<RepoDigest> list_missing_manifest_children() override {
    std::lock_guard lock(mutex_);
    Query q = query(kListMissingChildren, "list_missing_manifest_children");
    std::vector<RepoDigest> out;
    while (q.step()) out.push_back({q.text(0), q.text(1), q.digest(2)});
    return out;
  }

 private:
  // Runs `body` in one write transaction, or as part of the unit of work
  // already open on this thread (transact). Caller holds mutex_.
  template <class Body>
  void transaction(std::string_view what, Body&& body) {
    if (in_unit_) return body();
    begin();
    try {
      body();
      query(kCommit, what).run();
    } catch (...) {
      rollback();
      throw;
    }
  }

  // BEGIN IMMEDIATE: takes the write lock now, so reads made in the unit stay
  // true until it commits. SQLITE_BUSY (another process writing for longer than
  // the busy timeout) is retried a few times before it is an error. Caller
  // holds mutex_.
  void begin() {
    for (int attempt = 1;; ++attempt) {
      int rc = sqlite3_exec(db_.get(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) return;
      if ((rc & 0xff) != SQLITE_BUSY || attempt == kBeginAttempts) fail(db_.get(), "begin transaction");
      begin_retries_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void rollback() {
    if (!sqlite3_get_autocommit(db_.get())) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }

  // Returns a ready-to-bind use of the cached statement for `sql`, preparing it
  // on first use. Caller holds mutex_ for the whole life of the Query.
  Query query(const char* sql, std::string_view what) {
    sqlite3_stmt*& stmt = statements_[sql];
    if (!stmt && sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
      statements_.erase(sql);
      fail(db_.get(), "prepare " + std::string(what));
    }
    return Query(db_.get(), stmt, what);
  }

  // Serializes every use of db_ and statements_. Recursive: a unit of work
  // holds it from BEGIN to COMMIT while its body calls the store's methods on
  // the same thread; other threads wait for the whole unit.
  std::recursive_mutex mutex_;
  // contention_retries(): read without mutex_ (a call holding it may be waiting).
  std::atomic<std::uint64_t> busy_waits_{0};
  std::atomic<std::uint64_t> begin_retries_{0};
  bool in_unit_ = false;  // a transact() is open (guarded by mutex_)
  std::string path_;
  DbPtr db_;         // closed after the destructor body has finalized statements_
  // Keyed by the address of the k* SQL literals above.
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

}  // namespace

std::unique_ptr<MetadataStore> open_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteMetadataStore>(path);
}

std::string sqlite_integrity_check(const std::string& path) {
  // No SQLITE_OPEN_CREATE: checking a file that does not exist is an error,
  // not an "ok" on a freshly created empty database.
  DbPtr db = open_connection(path, SQLITE_OPEN_READWRITE);
  std::string report;
  for (const auto& row : rows_of(db.get(), "PRAGMA integrity_check", "integrity_check " + path)) {
    if (!report.empty()) report += '\n';
    report += row;
  }
  return report;
}

}  // namespace regcache::db
