#pragma once
// The metadata store contract (db/metadata_store.h and its role headers): the
// promises written in those headers, checked the same way for every backend.
//
// A backend instantiates the suite in its own test binary:
//
//   struct SqliteBackend {
//     static constexpr const char* name = "sqlite";
//     SqliteBackend();                               // makes a fresh, empty database
//     std::unique_ptr<db::MetadataStore> open();     // a new store object on it
//   };
//   TYPE_TO_STRING_AS("sqlite", SqliteBackend);      // the "<sqlite>" in test names
//   REGCACHE_METADATA_STORE_CONTRACT(SqliteBackend);  // every case below, one CTest test each
//
// Constructing the backend object makes a database nobody else uses (a temp
// file, a throwaway PostgreSQL database or schema); destroying it removes it.
// open() may be called more than once: each call is another store object on
// the same database (another connection: what a second process or replica
// sees), and every store object is destroyed before the backend object.
//
// Cases are fast (no sleeps, no timing) and name what they check: a backend
// that fails one breaks a promise some caller relies on.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/digest.h"
#include "db/metadata_store.h"

namespace regcache::contract {

namespace mc {  // helpers of the metadata contract

inline Digest d(const std::string& seed) { return sha256_of(seed); }

inline db::BlobRecord blob(const Digest& digest, std::uint64_t size = 10, std::int64_t t = 100,
                           std::string media_type = {}) {
  return db::BlobRecord{digest, size, std::move(media_type), t, t};
}

inline std::vector<std::string> strs(const std::vector<Digest>& digests) {
  std::vector<std::string> out;
  for (const auto& x : digests) out.push_back(x.str());
  return out;
}

inline std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());  // std::string compares by bytes (char_traits<char>: unsigned)
  return v;
}

constexpr const char* kManifestType = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kIndexType = "application/vnd.oci.image.index.v1+json";

}  // namespace mc


// One case of the suite: a template over the backend type B.
#define REGCACHE_MC_CASE(id, title) TEST_CASE_TEMPLATE_DEFINE("metadata contract: " title, B, id)

// --- BlobIndex ---------------------------------------------------------------

REGCACHE_MC_CASE(mc_blob_round_trip, "a blob row round-trips and an absent one is nullopt") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  CHECK_FALSE(store->find_blob(a));
  store->put_blob(db::BlobRecord{a, 1234567890123ULL, "application/x", 7, 9});
  auto r = store->find_blob(a);
  REQUIRE(r);
  CHECK(r->digest == a);
  CHECK(r->size == 1234567890123ULL);
  CHECK(r->media_type == "application/x");
  CHECK(r->created == 7);
  CHECK(r->last_access == 9);
}

REGCACHE_MC_CASE(mc_blob_upsert, "put_blob on an existing digest keeps created and never erases a media type") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  store->put_blob(db::BlobRecord{a, 10, "application/first", 100, 100});
  store->put_blob(db::BlobRecord{a, 11, "", 200, 200});  // empty type: kept; size replaced
  auto r = store->find_blob(a);
  REQUIRE(r);
  CHECK(r->size == 11);
  CHECK(r->media_type == "application/first");
  CHECK(r->created == 100);
  CHECK(r->last_access == 200);
  store->put_blob(db::BlobRecord{a, 11, "application/second", 300, 50});  // an older access never moves it back
  r = store->find_blob(a);
  REQUIRE(r);
  CHECK(r->media_type == "application/second");
  CHECK(r->created == 100);
  CHECK(r->last_access == 200);
  CHECK(store->list_blobs().size() == 1);
}

REGCACHE_MC_CASE(mc_blob_touch, "touch_blob moves last access forward only and ignores absent digests") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  store->put_blob(mc::blob(a, 10, 100));
  store->touch_blob(a, 150);
  CHECK(store->find_blob(a)->last_access == 150);
  store->touch_blob(a, 120);
  CHECK(store->find_blob(a)->last_access == 150);
  store->touch_blob(mc::d("absent"), 500);
  CHECK_FALSE(store->find_blob(mc::d("absent")));
}

REGCACHE_MC_CASE(mc_blob_list_order, "list_blobs is ordered by digest") {
  B backend;
  auto store = backend.open();
  std::vector<std::string> expected;
  for (int i = 0; i < 20; ++i) {
    Digest x = mc::d("blob" + std::to_string(i));
    store->put_blob(mc::blob(x));
    expected.push_back(x.str());
  }
  std::vector<std::string> got;
  for (const auto& r : store->list_blobs()) got.push_back(r.digest.str());
  CHECK(got == mc::sorted(expected));
}

REGCACHE_MC_CASE(mc_delete_blob_cascade,
                 "delete_blob removes links and tags in every namespace and leaves graph edges and other blobs") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a"), b = mc::d("b"), m = mc::d("manifest");
  store->put_blob(mc::blob(a));
  store->put_blob(mc::blob(b));
  store->put_blob(mc::blob(m));
  store->link("", "local/app", a, mc::kManifestType);
  store->link("docker.io", "library/app", a);
  store->link("", "local/app", b);
  store->link("", "local/app", m, mc::kManifestType);
  store->put_tag("", "local/app", "v1", a, 1);
  store->put_tag("docker.io", "library/app", "latest", a, 1);
  store->put_tag("", "local/app", "v2", b, 1);
  store->put_manifest_refs("", "local/app", m, {a});
  store->put_referrer("", "local/app", db::ReferrerRecord{m, a, mc::kManifestType, "x/y", 5, "{}"});

  store->delete_blob(a);
  CHECK_FALSE(store->find_blob(a));
  CHECK_FALSE(store->is_linked("", "local/app", a));
  CHECK_FALSE(store->is_linked("docker.io", "library/app", a));
  CHECK(store->count_links(a) == 0);
  CHECK_FALSE(store->find_tag("", "local/app", "v1"));
  CHECK_FALSE(store->find_tag("docker.io", "library/app", "latest"));
  // Everything else stays.
  CHECK(store->find_blob(b));
  CHECK(store->is_linked("", "local/app", b));
  CHECK(store->find_tag("", "local/app", "v2"));
  CHECK(store->manifests_referencing("", "local/app", a) == std::vector<Digest>{m});
  CHECK(store->list_referrers("", "local/app", m).size() == 1);
  // Deleting what is not there is not an error.
  store->delete_blob(a);
  store->delete_blob(mc::d("never"));
}

// --- RepositoryLinks -----------------------------------------------------------

REGCACHE_MC_CASE(mc_link_media_type, "link is idempotent and a non-empty media type replaces an empty never erases") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  store->put_blob(mc::blob(a));
  CHECK_FALSE(store->find_link("", "r", a));
  store->link("", "r", a);
  REQUIRE(store->find_link("", "r", a));
  CHECK(store->find_link("", "r", a)->repo == "r");
  CHECK(store->find_link("", "r", a)->media_type.empty());
  store->link("", "r", a, mc::kManifestType);
  CHECK(store->find_link("", "r", a)->media_type == mc::kManifestType);
  store->link("", "r", a);
  CHECK(store->find_link("", "r", a)->media_type == mc::kManifestType);
  store->link("", "r", a, mc::kIndexType);
  CHECK(store->find_link("", "r", a)->media_type == mc::kIndexType);
  CHECK(store->count_links(a) == 1);
  CHECK(store->list_links("", "r") == std::vector<Digest>{a});
}

REGCACHE_MC_CASE(mc_link_namespaces, "links of equal repository names in two namespaces never mix") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a"), b = mc::d("b");
  store->put_blob(mc::blob(a));
  store->put_blob(mc::blob(b));
  store->link("", "app", a, mc::kManifestType);
  store->link("docker.io", "app", b, mc::kIndexType);
  CHECK(store->is_linked("", "app", a));
  CHECK_FALSE(store->is_linked("", "app", b));
  CHECK_FALSE(store->is_linked("docker.io", "app", a));
  CHECK(store->list_links("", "app") == std::vector<Digest>{a});
  CHECK(store->list_links("docker.io", "app") == std::vector<Digest>{b});
  CHECK_FALSE(store->find_namespace_link("docker.io", a));
  store->unlink("docker.io", "app", a);  // absent there: no effect here
  CHECK(store->is_linked("", "app", a));
  store->unlink("", "app", a);
  CHECK_FALSE(store->is_linked("", "app", a));
  CHECK(store->find_blob(a));  // unlink leaves the blob row
  store->unlink("", "app", a);  // twice: no-op
}

REGCACHE_MC_CASE(mc_namespace_link_preference, "find_namespace_link prefers a link with a media type") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  store->put_blob(mc::blob(a));
  CHECK_FALSE(store->find_namespace_link("", a));
  store->link("", "aaa", a);
  store->link("", "zzz", a, mc::kManifestType);
  store->link("", "mmm", a);
  auto l = store->find_namespace_link("", a);
  REQUIRE(l);
  CHECK(l->repo == "zzz");
  CHECK(l->media_type == mc::kManifestType);
  store->unlink("", "zzz", a);
  l = store->find_namespace_link("", a);
  REQUIRE(l);
  CHECK(l->repo == "aaa");  // none typed: the smallest repository name
  CHECK(l->media_type.empty());
  CHECK_FALSE(store->find_namespace_link("docker.io", a));
}

REGCACHE_MC_CASE(mc_links_order_and_counts, "list_links is sorted and count_links counts repositories of every namespace") {
  B backend;
  auto store = backend.open();
  std::vector<std::string> expected;
  for (int i = 0; i < 12; ++i) {
    Digest x = mc::d("l" + std::to_string(i));
    store->put_blob(mc::blob(x));
    store->link("ns", "repo", x);
    expected.push_back(x.str());
  }
  CHECK(mc::strs(store->list_links("ns", "repo")) == mc::sorted(expected));
  const Digest a = mc::d("shared");
  store->put_blob(mc::blob(a));
  store->link("", "one", a);
  store->link("", "two", a);
  store->link("docker.io", "one", a);
  store->link("", "one", a);  // again: still one link
  CHECK(store->count_links(a) == 3);
  CHECK(store->count_links(mc::d("nothing")) == 0);
  CHECK(store->list_links("ns", "other").empty());
}

REGCACHE_MC_CASE(mc_repositories_and_namespaces_order,
                 "repositories and namespaces are listed once each in byte order") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  store->put_blob(mc::blob(a));
  // '-' 0x2d < '.' 0x2e < '/' 0x2f < '_' 0x5f < 'a': byte order, not a locale's.
  for (const char* repo : {"a_b", "a/b", "a.b", "a-b", "a", "b/c/d"}) store->link("docker.io", repo, a);
  store->put_tag("docker.io", "tag-only", "v1", a, 1);  // a tag alone makes a repository
  store->put_tag("docker.io", "a", "v1", a, 1);         // and one with both is listed once
  CHECK(store->list_repositories("docker.io") ==
        std::vector<std::string>{"a", "a-b", "a.b", "a/b", "a_b", "b/c/d", "tag-only"});
  CHECK(store->list_repositories("").empty());
  CHECK(store->list_repositories("quay.io").empty());

  CHECK(store->list_namespaces() == std::vector<std::string>{"docker.io"});
  store->link("", "hosted", a);
  store->put_tag("quay.io", "x", "v1", a, 1);
  store->link("ghcr.io", "y", a);
  CHECK(store->list_namespaces() == std::vector<std::string>{"", "docker.io", "ghcr.io", "quay.io"});
}

REGCACHE_MC_CASE(mc_repositories_follow_content,
                 "a repository and a namespace are listed only while a link or a tag is left in them") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a"), b = mc::d("b");
  store->put_blob(mc::blob(a));
  store->put_blob(mc::blob(b));
  store->link("quay.io", "gone", a);
  store->put_tag("quay.io", "gone", "v1", a, 1);
  store->link("quay.io", "stays", b);
  CHECK(store->list_repositories("quay.io") == std::vector<std::string>{"gone", "stays"});
  store->delete_blob(a);  // takes the link and the tag: nothing left in "gone"
  CHECK(store->list_repositories("quay.io") == std::vector<std::string>{"stays"});
  store->unlink("quay.io", "stays", b);
  CHECK(store->list_repositories("quay.io").empty());
  CHECK(store->list_namespaces().empty());
  CHECK(store->usage_by_repository().empty());
  CHECK(store->usage_by_namespace().empty());
}

// --- TagStore ------------------------------------------------------------------

REGCACHE_MC_CASE(mc_tag_put_replace_delete, "put_tag inserts or replaces and delete_tag removes one tag") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a"), b = mc::d("b");
  CHECK_FALSE(store->find_tag("", "r", "v1"));
  store->put_tag("", "r", "v1", a, 10);  // no blob row or link needed
  auto t = store->find_tag("", "r", "v1");
  REQUIRE(t);
  CHECK(t->digest == a);
  CHECK(t->confirmed_at == 10);
  store->put_tag("", "r", "v1", b, 5);  // last write wins, whatever its time
  t = store->find_tag("", "r", "v1");
  REQUIRE(t);
  CHECK(t->digest == b);
  CHECK(t->confirmed_at == 5);
  CHECK_FALSE(store->find_tag("docker.io", "r", "v1"));
  CHECK_FALSE(store->find_tag("", "r2", "v1"));
  store->delete_tag("", "r", "v1");
  CHECK_FALSE(store->find_tag("", "r", "v1"));
  store->delete_tag("", "r", "v1");  // absent: no-op
}

REGCACHE_MC_CASE(mc_tag_byte_order, "list_tags and list_tag_records are in byte order") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  const std::vector<std::string> tags = {"v1.10", "v1.9", "latest", "Latest", "LATEST", "a_b", "a-b", "a.b",
                                         "a",     "9",    "10",     "_x",     "Z",      "z"};
  for (const auto& tag : tags) store->put_tag("docker.io", "lib/app", tag, a, 1);
  store->put_tag("docker.io", "lib/other", "0", a, 1);
  store->put_tag("", "lib/app", "hosted", a, 1);
  auto expected = mc::sorted(tags);
  CHECK(expected.front() == "10");  // sanity of the expectation itself: digits, upper, '_', lower
  CHECK(store->list_tags("docker.io", "lib/app") == expected);
  std::vector<std::string> from_records;
  for (const auto& [tag, rec] : store->list_tag_records("docker.io", "lib/app")) {
    from_records.push_back(tag);
    CHECK(rec.digest == a);
  }
  CHECK(from_records == expected);
  CHECK(store->list_tags("docker.io", "none").empty());
}

REGCACHE_MC_CASE(mc_delete_tags_for, "delete_tags_for removes only the tags of that repository naming that digest") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a"), b = mc::d("b");
  store->put_tag("", "r", "one", a, 1);
  store->put_tag("", "r", "two", a, 1);
  store->put_tag("", "r", "three", b, 1);
  store->put_tag("", "other", "one", a, 1);
  store->put_tag("docker.io", "r", "one", a, 1);
  store->delete_tags_for("", "r", a);
  CHECK(store->list_tags("", "r") == std::vector<std::string>{"three"});
  CHECK(store->find_tag("", "other", "one"));
  CHECK(store->find_tag("docker.io", "r", "one"));
}

// --- ManifestGraph ---------------------------------------------------------------

REGCACHE_MC_CASE(mc_manifest_refs, "manifest references are per repository idempotent and sorted") {
  B backend;
  auto store = backend.open();
  const Digest m1 = mc::d("m1"), m2 = mc::d("m2"), c = mc::d("child"), c2 = mc::d("child2");
  store->put_manifest_refs("", "r", m1, {c, c2});
  store->put_manifest_refs("", "r", m1, {c});  // again: kept once
  store->put_manifest_refs("", "r", m2, {c});
  store->put_manifest_refs("", "other", m1, {c2});
  store->put_manifest_refs("", "r", mc::d("empty"), {});
  CHECK(mc::strs(store->manifests_referencing("", "r", c)) == mc::sorted({m1.str(), m2.str()}));
  CHECK(store->manifests_referencing("", "r", c2) == std::vector<Digest>{m1});
  CHECK(store->manifests_referencing("docker.io", "r", c).empty());
  store->delete_manifest_refs("", "r", m1);
  CHECK(store->manifests_referencing("", "r", c) == std::vector<Digest>{m2});
  CHECK(store->manifests_referencing("", "r", c2).empty());
  CHECK(store->manifests_referencing("", "other", c2) == std::vector<Digest>{m1});
}

REGCACHE_MC_CASE(mc_referrers, "referrers replace by subject and digest list sorted and delete across subjects") {
  B backend;
  auto store = backend.open();
  const Digest s1 = mc::d("s1"), s2 = mc::d("s2"), r1 = mc::d("r1"), r2 = mc::d("r2");
  store->put_referrer("", "repo", db::ReferrerRecord{s1, r1, mc::kManifestType, "a/sig", 100, "{}"});
  store->put_referrer("", "repo", db::ReferrerRecord{s1, r2, mc::kManifestType, "a/sbom", 200, R"({"k":"v"})"});
  store->put_referrer("", "repo", db::ReferrerRecord{s2, r1, mc::kManifestType, "a/sig", 100, "{}"});
  store->put_referrer("", "repo", db::ReferrerRecord{s1, r1, mc::kIndexType, "a/sig2", 101, R"({"x":"1"})"});
  auto list = store->list_referrers("", "repo", s1);
  REQUIRE(list.size() == 2);
  CHECK(list[0].digest.str() < list[1].digest.str());
  for (const auto& r : list) {
    CHECK(r.subject == s1);
    if (r.digest == r1) {
      CHECK(r.media_type == mc::kIndexType);
      CHECK(r.artifact_type == "a/sig2");
      CHECK(r.size == 101);
      CHECK(r.annotations_json == R"({"x":"1"})");
    } else {
      CHECK(r.digest == r2);
      CHECK(r.annotations_json == R"({"k":"v"})");
    }
  }
  CHECK(store->list_referrers("", "other", s1).empty());
  store->delete_referrer("", "repo", r1);
  CHECK(store->list_referrers("", "repo", s1).size() == 1);
  CHECK(store->list_referrers("", "repo", s2).empty());
}

// A manifest's artifactType is any JSON string, and JSON's "\u0000" is a NUL
// byte: a backend keeps such a value whole or refuses it, never stores a cut one
// (libpq's text parameters end at the first NUL).
REGCACHE_MC_CASE(mc_text_with_nul, "a text value with a NUL byte is kept whole or refused never cut") {
  B backend;
  auto store = backend.open();
  const Digest s = mc::d("s"), r = mc::d("r");
  const std::string hostile("a/sig\0tail", 10);
  bool refused = false;
  try {
    store->put_referrer("", "repo", db::ReferrerRecord{s, r, mc::kManifestType, hostile, 1, "{}"});
  } catch (const std::exception&) {
    refused = true;
  }
  const auto list = store->list_referrers("", "repo", s);
  if (refused) {
    CHECK(list.empty());
  } else {
    REQUIRE(list.size() == 1);
    CHECK(list[0].artifact_type == hostile);
  }
}

// --- UploadSessions ----------------------------------------------------------------

REGCACHE_MC_CASE(mc_uploads, "upload sessions round-trip touch forward only and delete once") {
  B backend;
  auto store = backend.open();
  CHECK_FALSE(store->find_upload("u1"));
  store->put_upload(db::UploadRecord{"u2", "", "r", 10, 10, "127.0.0.1"});
  store->put_upload(db::UploadRecord{"u1", "", "r", 20, 20, ""});
  auto u = store->find_upload("u2");
  REQUIRE(u);
  CHECK(u->ns.empty());
  CHECK(u->repo == "r");
  CHECK(u->created == 10);
  CHECK(u->updated == 10);
  CHECK(u->client == "127.0.0.1");
  store->touch_upload("u2", 30);
  CHECK(store->find_upload("u2")->updated == 30);
  store->touch_upload("u2", 25);
  CHECK(store->find_upload("u2")->updated == 30);
  store->touch_upload("absent", 40);
  CHECK_FALSE(store->find_upload("absent"));
  auto all = store->list_uploads();
  REQUIRE(all.size() == 2);
  CHECK(all[0].id == "u1");
  CHECK(all[1].id == "u2");
  CHECK(store->delete_upload("u2"));
  CHECK_FALSE(store->delete_upload("u2"));
  CHECK_FALSE(store->find_upload("u2"));
}

REGCACHE_MC_CASE(mc_uploads_idle, "idle sessions are those strictly before the cutoff oldest first and bounded") {
  B backend;
  auto store = backend.open();
  for (int i = 0; i < 10; ++i)
    store->put_upload(db::UploadRecord{"id" + std::to_string(9 - i), "", "r", 100 + i, 100 + i, ""});
  auto idle = store->list_uploads_idle_since(105, 100);
  REQUIRE(idle.size() == 5);  // updated 100..104; 105 itself is not idle
  for (std::size_t i = 0; i < idle.size(); ++i) CHECK(idle[i].updated == 100 + static_cast<std::int64_t>(i));
  idle = store->list_uploads_idle_since(1000, 3);
  REQUIRE(idle.size() == 3);
  CHECK(idle[0].updated == 100);
  CHECK(idle[2].updated == 102);
  CHECK(store->list_uploads_idle_since(100, 10).empty());
  store->touch_upload(idle[0].id, 2000);  // active again: no longer the oldest
  CHECK(store->list_uploads_idle_since(1000, 1)[0].updated == 101);
}

// --- DocumentCache -----------------------------------------------------------------

REGCACHE_MC_CASE(mc_documents_round_trip, "documents round-trip byte for byte and replace by key") {
  B backend;
  auto store = backend.open();
  CHECK_FALSE(store->find_document("docker.io", "r", "tags"));
  const std::string body = std::string("{\"tags\":[\"a\"]}\n\t") + "\xc3\xa9" + std::string(3000, 'x');
  store->put_document("docker.io", "r", "tags", db::DocumentRecord{body, 50, "n=2&last=a", "artifactType"});
  auto doc = store->find_document("docker.io", "r", "tags");
  REQUIRE(doc);
  CHECK(doc->body == body);
  CHECK(doc->fetched_at == 50);
  CHECK(doc->next_query == "n=2&last=a");
  CHECK(doc->filters_applied == "artifactType");
  store->put_document("docker.io", "r", "tags", db::DocumentRecord{"{}", 60, "", ""});
  doc = store->find_document("docker.io", "r", "tags");
  REQUIRE(doc);
  CHECK(doc->body == "{}");
  CHECK(doc->next_query.empty());
  CHECK(store->count_documents("docker.io", "r") == 1);
  CHECK_FALSE(store->find_document("", "r", "tags"));
  CHECK_FALSE(store->find_document("docker.io", "r2", "tags"));
}

REGCACHE_MC_CASE(mc_documents_prune, "prune_documents keeps the newest of one repository only") {
  B backend;
  auto store = backend.open();
  for (int i = 0; i < 6; ++i)
    store->put_document("docker.io", "r", "k" + std::to_string(i), db::DocumentRecord{"b", 100 + i, "", ""});
  store->put_document("docker.io", "r", "tie-b", db::DocumentRecord{"b", 103, "", ""});
  store->put_document("docker.io", "r", "tie-a", db::DocumentRecord{"b", 103, "", ""});
  store->put_document("docker.io", "other", "k0", db::DocumentRecord{"b", 1, "", ""});
  store->put_document("", "r", "k0", db::DocumentRecord{"b", 1, "", ""});
  CHECK(store->count_documents("docker.io", "r") == 8);
  // Newest first: k5 (105), k4 (104), then three at 103 ordered by key: k3 < tie-a < tie-b.
  CHECK(store->prune_documents("docker.io", "r", 4) == 4);
  CHECK(store->count_documents("docker.io", "r") == 4);
  for (const char* kept : {"k5", "k4", "k3", "tie-a"}) CHECK(store->find_document("docker.io", "r", kept));
  for (const char* gone : {"tie-b", "k2", "k1", "k0"}) CHECK_FALSE(store->find_document("docker.io", "r", gone));
  CHECK(store->prune_documents("docker.io", "r", 4) == 0);
  CHECK(store->count_documents("docker.io", "other") == 1);
  CHECK(store->count_documents("", "r") == 1);
  CHECK(store->prune_documents("docker.io", "r", 0) == 4);
  CHECK(store->count_documents("docker.io", "r") == 0);
}

// --- storage lifecycle ---------------------------------------------------------------

REGCACHE_MC_CASE(mc_record_accesses, "record_accesses adds hits capped and moves last access forward skipping unknown") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a"), b = mc::d("b");
  store->put_blob(mc::blob(a, 10, 100));
  store->put_blob(mc::blob(b, 20, 100));
  store->record_accesses({});
  store->record_accesses({{a, 150, 3}, {b, 90, 1}, {mc::d("unknown"), 500, 7}});
  CHECK(store->find_blob(a)->last_access == 150);
  CHECK(store->find_blob(b)->last_access == 100);  // 90 is older: not moved back
  CHECK_FALSE(store->find_blob(mc::d("unknown")));
  auto mirrored = store->list_mirrored_blobs();
  REQUIRE(mirrored.size() == 2);
  for (const auto& m : mirrored) CHECK(m.hits == (m.digest == a ? 4u : 2u));  // 1 (the fill) + added
  store->record_accesses({{a, 160, 4000000000u}});
  store->record_accesses({{a, 170, 4000000000u}});
  for (const auto& m : store->list_mirrored_blobs())
    if (m.digest == a) CHECK(m.hits == 1000000u);
}

REGCACHE_MC_CASE(mc_mirrored_blobs, "mirrored blobs exclude hosted links and are least recently used first") {
  B backend;
  auto store = backend.open();
  const Digest hosted = mc::d("hosted"), both = mc::d("both"), mirror = mc::d("mirror"), unlinked = mc::d("unlinked"),
               manifest = mc::d("manifest");
  store->put_blob(mc::blob(hosted, 1, 10));
  store->put_blob(mc::blob(both, 2, 20));
  store->put_blob(mc::blob(mirror, 4, 40));
  store->put_blob(mc::blob(unlinked, 8, 5));
  store->put_blob(mc::blob(manifest, 16, 30));
  store->link("", "h", hosted);
  store->link("", "h", both);
  store->link("docker.io", "m", both);
  store->link("docker.io", "m", mirror);
  store->link("docker.io", "m", manifest, mc::kManifestType);
  auto list = store->list_mirrored_blobs();
  std::vector<std::string> got;
  for (const auto& m : list) got.push_back(m.digest.str());
  CHECK(got == std::vector<std::string>{unlinked.str(), manifest.str(), mirror.str()});
  for (const auto& m : list) {
    CHECK(m.manifest == (m.digest == manifest));
    CHECK(m.size == store->find_blob(m.digest)->size);
  }
  CHECK(store->mirrored_bytes() == 8 + 16 + 4);
  store->unlink("", "h", both);
  CHECK(store->mirrored_bytes() == 8 + 16 + 4 + 2);
}

REGCACHE_MC_CASE(mc_blob_totals, "blob totals split every row into hosted and mirrored, objects and bytes") {
  B backend;
  auto store = backend.open();
  CHECK(store->blob_totals().hosted_objects == 0);
  CHECK(store->blob_totals().mirrored_bytes == 0);
  const Digest hosted = mc::d("hosted"), both = mc::d("both"), mirror = mc::d("mirror"), unlinked = mc::d("unlinked"),
               twice = mc::d("twice");
  store->put_blob(mc::blob(hosted, 1, 10));
  store->put_blob(mc::blob(both, 2, 20));
  store->put_blob(mc::blob(mirror, 4, 40));
  store->put_blob(mc::blob(unlinked, 8, 5));
  store->put_blob(mc::blob(twice, 16, 30));
  store->link("", "h", hosted);
  store->link("", "h", both);
  store->link("docker.io", "m", both);
  store->link("docker.io", "m", mirror);
  store->link("", "h", twice);  // two hosted links: one object
  store->link("", "h2", twice);
  db::BlobTotals t = store->blob_totals();
  CHECK(t.hosted_objects == 3);
  CHECK(t.hosted_bytes == 1 + 2 + 16);
  CHECK(t.mirrored_objects == 2);
  CHECK(t.mirrored_bytes == 4 + 8);
  CHECK(t.mirrored_bytes == store->mirrored_bytes());
  CHECK(t.mirrored_objects == store->list_mirrored_blobs().size());
  store->unlink("", "h", both);
  store->delete_blob(unlinked);
  t = store->blob_totals();
  CHECK(t.hosted_objects == 2);
  CHECK(t.hosted_bytes == 1 + 16);
  CHECK(t.mirrored_objects == 2);
  CHECK(t.mirrored_bytes == 4 + 2);
}

// --- MaintenanceQueries ----------------------------------------------------------------

REGCACHE_MC_CASE(mc_gc_queries, "gc queries find unreferenced links and unlinked blobs by age in order") {
  B backend;
  auto store = backend.open();
  const Digest m = mc::d("manifest"), layer = mc::d("layer"), loose1 = mc::d("loose1"), loose2 = mc::d("loose2"),
               fresh = mc::d("fresh"), orphan = mc::d("orphan"), young = mc::d("young-orphan");
  for (const auto& x : {m, layer, loose1, loose2, orphan}) store->put_blob(mc::blob(x, 5, 100));
  store->put_blob(mc::blob(fresh, 5, 900));
  store->put_blob(mc::blob(young, 5, 900));
  store->link("", "b", m, mc::kManifestType);  // a manifest link: never a gc candidate here
  store->link("", "b", layer);
  store->put_manifest_refs("", "b", m, {layer});  // referenced: kept
  store->link("", "b", loose2);
  store->link("", "a", loose1);
  store->link("", "a", fresh);  // too recently used
  store->link("docker.io", "a", loose1);  // other namespace: not listed for ""
  auto links = store->list_unreferenced_links("", 500, 100);
  REQUIRE(links.size() == 2);
  CHECK(links[0].repo == "a");
  CHECK(links[0].digest == loose1);
  CHECK(links[1].repo == "b");
  CHECK(links[1].digest == loose2);
  for (const auto& l : links) CHECK(l.ns.empty());
  CHECK(store->list_unreferenced_links("", 500, 1).size() == 1);
  CHECK(store->list_unreferenced_links("", 100, 100).empty());  // strictly before

  auto blobs = store->list_unlinked_blobs(500, 100);
  REQUIRE(blobs.size() == 1);
  CHECK(blobs[0].digest == orphan);
  blobs = store->list_unlinked_blobs(1000, 100);
  CHECK(mc::strs({blobs[0].digest, blobs[1].digest}) == mc::sorted({orphan.str(), young.str()}));
  CHECK(store->list_unlinked_blobs(1000, 1).size() == 1);
}

REGCACHE_MC_CASE(mc_usage_queries, "usage per repository counts shared digests in each and per namespace once") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a"), b = mc::d("b"), c = mc::d("c");
  store->put_blob(mc::blob(a, 100));
  store->put_blob(mc::blob(b, 20));
  store->put_blob(mc::blob(c, 3));
  store->link("docker.io", "x", a);
  store->link("docker.io", "x", b);
  store->link("docker.io", "y", a);
  store->link("", "x", c);
  auto repos = store->usage_by_repository();
  REQUIRE(repos.size() == 3);
  CHECK(repos[0].ns.empty());
  CHECK(repos[0].repo == "x");
  CHECK(repos[0].objects == 1);
  CHECK(repos[0].bytes == 3);
  CHECK(repos[1].ns == "docker.io");
  CHECK(repos[1].repo == "x");
  CHECK(repos[1].objects == 2);
  CHECK(repos[1].bytes == 120);
  CHECK(repos[2].repo == "y");
  CHECK(repos[2].bytes == 100);
  auto spaces = store->usage_by_namespace();
  REQUIRE(spaces.size() == 2);
  CHECK(spaces[0].ns.empty());
  CHECK(spaces[0].bytes == 3);
  CHECK(spaces[1].ns == "docker.io");
  CHECK(spaces[1].objects == 2);
  CHECK(spaces[1].bytes == 120);
}

REGCACHE_MC_CASE(mc_fsck_queries, "fsck queries find dangling tags and missing manifest children") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a"), m = mc::d("m"), child = mc::d("child"), gone = mc::d("gone");
  for (const auto& x : {a, m, child}) store->put_blob(mc::blob(x));
  store->link("", "r", a);
  store->link("", "r", m, mc::kManifestType);
  store->link("", "r", child);
  store->put_tag("", "r", "ok", a, 1);
  store->put_tag("", "r", "zz-dangling", gone, 1);
  store->put_tag("", "r", "b-dangling", gone, 1);
  store->put_tag("docker.io", "r", "other-ns", a, 1);  // linked in "" only: dangling in docker.io
  store->put_manifest_refs("", "r", m, {child, gone});
  store->put_manifest_refs("", "r", a, {gone});  // the same missing child twice: listed once
  auto tags = store->list_dangling_tags();
  REQUIRE(tags.size() == 3);
  CHECK(tags[0].ns.empty());
  CHECK(tags[0].tag == "b-dangling");
  CHECK(tags[0].digest == gone);
  CHECK(tags[1].tag == "zz-dangling");
  CHECK(tags[2].ns == "docker.io");
  CHECK(tags[2].tag == "other-ns");
  auto missing = store->list_missing_manifest_children();
  REQUIRE(missing.size() == 1);
  CHECK(missing[0].ns.empty());
  CHECK(missing[0].repo == "r");
  CHECK(missing[0].digest == gone);
}

// --- units of work ---------------------------------------------------------------------

REGCACHE_MC_CASE(mc_transact_commit, "a unit of work commits every write together and runs once") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  int runs = 0;
  store->transact([&](db::MetadataStore& tx) {
    ++runs;
    tx.put_blob(mc::blob(a));
    tx.link("", "app", a, mc::kManifestType);
    tx.put_tag("", "app", "v1", a, 5);
    CHECK(tx.find_tag("", "app", "v1"));  // a unit reads its own writes
  });
  CHECK(runs == 1);
  CHECK(store->find_blob(a));
  CHECK(store->is_linked("", "app", a));
  CHECK(store->find_tag("", "app", "v1"));
}

REGCACHE_MC_CASE(mc_transact_rollback, "a unit of work that throws writes nothing and rethrows the exception") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a"), b = mc::d("b"), m = mc::d("m");
  store->put_blob(mc::blob(b));
  store->link("docker.io", "app", b);
  store->put_tag("docker.io", "app", "keep", b, 1);
  store->put_upload(db::UploadRecord{"u", "", "app", 1, 1, ""});
  store->put_document("docker.io", "app", "k", db::DocumentRecord{"old", 1, "", ""});
  CHECK_THROWS_WITH_AS(store->transact([&](db::MetadataStore& tx) {
    tx.put_blob(mc::blob(a));
    tx.link("", "app", a);
    tx.put_tag("", "app", "v1", a, 5);
    tx.put_manifest_refs("", "app", m, {a, b});
    tx.put_referrer("", "app", db::ReferrerRecord{a, m, mc::kManifestType, "", 1, "{}"});
    tx.delete_blob(b);  // a multi-row write joins the unit
    tx.record_accesses({{b, 99, 1}});
    CHECK(tx.delete_upload("u"));
    tx.put_document("docker.io", "app", "k", db::DocumentRecord{"new", 2, "", ""});
    throw std::invalid_argument("changed my mind");
  }),
                       "changed my mind", std::invalid_argument);
  CHECK_FALSE(store->find_blob(a));
  CHECK_FALSE(store->is_linked("", "app", a));
  CHECK_FALSE(store->find_tag("", "app", "v1"));
  CHECK(store->manifests_referencing("", "app", a).empty());
  CHECK(store->list_referrers("", "app", a).empty());
  CHECK(store->find_blob(b));
  CHECK(store->is_linked("docker.io", "app", b));
  CHECK(store->find_tag("docker.io", "app", "keep"));
  CHECK(store->find_upload("u"));
  CHECK(store->find_document("docker.io", "app", "k")->body == "old");
  // Usable afterwards, in and out of units.
  store->transact([&](db::MetadataStore& tx) { tx.put_blob(mc::blob(a)); });
  CHECK(store->find_blob(a));
  store->delete_blob(a);
  CHECK_FALSE(store->find_blob(a));
}

REGCACHE_MC_CASE(mc_transact_no_nesting, "units of work do not nest and the outer one rolls back") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  CHECK_THROWS_AS(store->transact([&](db::MetadataStore& tx) {
    tx.put_blob(mc::blob(a));
    tx.transact([](db::MetadataStore&) {});
  }),
                  std::logic_error);
  CHECK_FALSE(store->find_blob(a));
  store->put_blob(mc::blob(a));
  CHECK(store->find_blob(a));
}

REGCACHE_MC_CASE(mc_transact_invisible_until_commit,
                 "writes of an open unit are invisible to another store object until it commits") {
  B backend;
  auto store = backend.open();
  auto other = backend.open();
  const Digest a = mc::d("a");
  store->transact([&](db::MetadataStore& tx) {
    tx.put_tag("", "app", "v1", a, 1);
    // Read from another thread: on some backends, the calling thread may not
    // use another store object while its unit holds the write lock.
    bool seen = true;
    std::thread reader([&] { seen = other->find_tag("", "app", "v1").has_value(); });
    reader.join();
    CHECK_FALSE(seen);
  });
  CHECK(other->find_tag("", "app", "v1"));
}

REGCACHE_MC_CASE(mc_transact_tag_race, "check-then-write on one tag from many threads has one winner") {
  // Each thread moves tag "t" to its own digest only if the tag is absent: the
  // shape of a hosted push that must not overwrite a concurrent one.
  B backend;
  auto store = backend.open();
  constexpr int kThreads = 8;
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      store->transact([&](db::MetadataStore& tx) {
        if (tx.find_tag("", "app", "t")) return;
        std::this_thread::yield();  // give another writer every chance to slip in
        tx.put_tag("", "app", "t", mc::d("writer" + std::to_string(t)), t);
        ++winners;
      });
    });
  for (auto& th : threads) th.join();
  CHECK(winners == 1);
  auto tag = store->find_tag("", "app", "t");
  REQUIRE(tag);
  CHECK(tag->digest == mc::d("writer" + std::to_string(tag->confirmed_at)));
}

REGCACHE_MC_CASE(mc_transact_counter_threads, "read-modify-write units from many threads lose no update") {
  B backend;
  auto store = backend.open();
  const Digest a = mc::d("a");
  store->put_tag("", "counter", "n", a, 0);
  constexpr int kThreads = 6, kEach = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i)
        store->transact([&](db::MetadataStore& tx) {
          auto n = tx.find_tag("", "counter", "n")->confirmed_at;
          std::this_thread::yield();
          tx.put_tag("", "counter", "n", a, n + 1);
        });
    });
  std::thread reader([&] {  // plain reads meanwhile never see half a unit or fail
    for (int i = 0; i < 100; ++i) CHECK(store->find_tag("", "counter", "n"));
  });
  for (auto& th : threads) th.join();
  reader.join();
  CHECK(store->find_tag("", "counter", "n")->confirmed_at == kThreads * kEach);
}

REGCACHE_MC_CASE(mc_transact_two_stores, "units on two store objects of one database serialize") {
  B backend;
  auto first = backend.open();
  auto second = backend.open();
  const Digest a = mc::d("a");
  first->put_tag("", "counter", "n", a, 0);
  constexpr int kEach = 30;
  auto bump = [&](db::MetadataStore& store) {
    for (int i = 0; i < kEach; ++i)
      store.transact([&](db::MetadataStore& tx) {
        auto n = tx.find_tag("", "counter", "n")->confirmed_at;
        std::this_thread::yield();
        tx.put_tag("", "counter", "n", a, n + 1);
      });
  };
  std::thread t1([&] { bump(*first); });
  std::thread t2([&] { bump(*second); });
  t1.join();
  t2.join();
  CHECK(first->find_tag("", "counter", "n")->confirmed_at == 2 * kEach);
  CHECK(second->find_tag("", "counter", "n")->confirmed_at == 2 * kEach);
}

REGCACHE_MC_CASE(mc_concurrent_plain_writers, "plain writes from several threads and store objects all land") {
  B backend;
  auto first = backend.open();
  auto second = backend.open();
  constexpr int kThreads = 4, kEach = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      db::MetadataStore& store = t % 2 ? *second : *first;
      for (int i = 0; i < kEach; ++i) {
        Digest x = mc::d("w" + std::to_string(t) + "-" + std::to_string(i));
        store.put_blob(mc::blob(x));
        store.link("docker.io", "r" + std::to_string(t), x);
        store.put_tag("docker.io", "r" + std::to_string(t), "t" + std::to_string(i), x, i);
        store.record_accesses({{x, 200, 1}});
      }
    });
  for (auto& th : threads) th.join();
  CHECK(first->list_blobs().size() == kThreads * kEach);
  for (int t = 0; t < kThreads; ++t) {
    CHECK(second->list_links("docker.io", "r" + std::to_string(t)).size() == kEach);
    CHECK(first->list_tags("docker.io", "r" + std::to_string(t)).size() == kEach);
  }
  CHECK(second->list_repositories("docker.io").size() == kThreads);
}

REGCACHE_MC_CASE(mc_delete_upload_once, "of concurrent deletes of one session exactly one sees true") {
  B backend;
  auto first = backend.open();
  auto second = backend.open();
  constexpr int kSessions = 20, kThreads = 4;
  for (int i = 0; i < kSessions; ++i) first->put_upload(db::UploadRecord{"s" + std::to_string(i), "", "r", 1, 1, ""});
  std::atomic<int> removed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      db::MetadataStore& store = t % 2 ? *second : *first;
      for (int i = 0; i < kSessions; ++i)
        if (store.delete_upload("s" + std::to_string(i))) ++removed;
    });
  for (auto& th : threads) th.join();
  CHECK(removed == kSessions);
  CHECK(first->list_uploads().empty());
}

REGCACHE_MC_CASE(mc_reads_see_other_objects_commits, "a read sees what another store object committed before it") {
  B backend;
  auto first = backend.open();
  auto second = backend.open();
  const Digest a = mc::d("a");
  CHECK_FALSE(second->find_tag("", "r", "v1"));  // a read before: must not pin an old snapshot
  first->put_blob(mc::blob(a));
  first->link("", "r", a, mc::kManifestType);
  first->put_tag("", "r", "v1", a, 1);
  REQUIRE(second->find_tag("", "r", "v1"));
  CHECK(second->find_link("", "r", a)->media_type == mc::kManifestType);
  first->transact([&](db::MetadataStore& tx) { tx.put_tag("", "r", "v1", mc::d("b"), 2); });
  CHECK(second->find_tag("", "r", "v1")->digest == mc::d("b"));
  second->delete_blob(a);
  CHECK_FALSE(first->is_linked("", "r", a));
}

REGCACHE_MC_CASE(mc_check_readable, "check_readable passes on a healthy database") {
  B backend;
  auto store = backend.open();
  store->check_readable();
  store->put_blob(mc::blob(mc::d("a")));
  store->check_readable();
}

REGCACHE_MC_CASE(mc_contention_retries_quiet, "contention retries stay 0 without contention") {
  B backend;
  auto store = backend.open();
  CHECK(store->contention_retries() == 0);
  store->put_blob(mc::blob(mc::d("a")));
  store->transact([&](db::MetadataStore& tx) { tx.put_blob(mc::blob(mc::d("b"))); });
  CHECK(store->find_blob(mc::d("b")));
  CHECK(store->contention_retries() == 0);
}

#undef REGCACHE_MC_CASE

}  // namespace regcache::contract

// Instantiates every case above for backend type `Backend` (see the top of
// this file). Add a new case's id here too, or it never runs.
#define REGCACHE_METADATA_STORE_CONTRACT(Backend)                                              \
  namespace regcache::contract {                                                               \
  TEST_CASE_TEMPLATE_INVOKE(mc_blob_round_trip, Backend);                                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_blob_upsert, Backend);                                          \
  TEST_CASE_TEMPLATE_INVOKE(mc_blob_touch, Backend);                                           \
  TEST_CASE_TEMPLATE_INVOKE(mc_blob_list_order, Backend);                                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_delete_blob_cascade, Backend);                                  \
  TEST_CASE_TEMPLATE_INVOKE(mc_link_media_type, Backend);                                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_link_namespaces, Backend);                                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_namespace_link_preference, Backend);                            \
  TEST_CASE_TEMPLATE_INVOKE(mc_links_order_and_counts, Backend);                               \
  TEST_CASE_TEMPLATE_INVOKE(mc_repositories_and_namespaces_order, Backend);                    \
  TEST_CASE_TEMPLATE_INVOKE(mc_repositories_follow_content, Backend);                          \
  TEST_CASE_TEMPLATE_INVOKE(mc_tag_put_replace_delete, Backend);                               \
  TEST_CASE_TEMPLATE_INVOKE(mc_tag_byte_order, Backend);                                       \
  TEST_CASE_TEMPLATE_INVOKE(mc_delete_tags_for, Backend);                                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_manifest_refs, Backend);                                        \
  TEST_CASE_TEMPLATE_INVOKE(mc_referrers, Backend);                                            \
  TEST_CASE_TEMPLATE_INVOKE(mc_text_with_nul, Backend);                                        \
  TEST_CASE_TEMPLATE_INVOKE(mc_uploads, Backend);                                              \
  TEST_CASE_TEMPLATE_INVOKE(mc_uploads_idle, Backend);                                         \
  TEST_CASE_TEMPLATE_INVOKE(mc_documents_round_trip, Backend);                                 \
  TEST_CASE_TEMPLATE_INVOKE(mc_documents_prune, Backend);                                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_record_accesses, Backend);                                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_mirrored_blobs, Backend);                                       \
  TEST_CASE_TEMPLATE_INVOKE(mc_blob_totals, Backend);                                          \
  TEST_CASE_TEMPLATE_INVOKE(mc_gc_queries, Backend);                                           \
  TEST_CASE_TEMPLATE_INVOKE(mc_usage_queries, Backend);                                        \
  TEST_CASE_TEMPLATE_INVOKE(mc_fsck_queries, Backend);                                         \
  TEST_CASE_TEMPLATE_INVOKE(mc_transact_commit, Backend);                                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_transact_rollback, Backend);                                    \
  TEST_CASE_TEMPLATE_INVOKE(mc_transact_no_nesting, Backend);                                  \
  TEST_CASE_TEMPLATE_INVOKE(mc_transact_invisible_until_commit, Backend);                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_transact_tag_race, Backend);                                    \
  TEST_CASE_TEMPLATE_INVOKE(mc_transact_counter_threads, Backend);                             \
  TEST_CASE_TEMPLATE_INVOKE(mc_transact_two_stores, Backend);                                  \
  TEST_CASE_TEMPLATE_INVOKE(mc_concurrent_plain_writers, Backend);                             \
  TEST_CASE_TEMPLATE_INVOKE(mc_delete_upload_once, Backend);                                   \
  TEST_CASE_TEMPLATE_INVOKE(mc_reads_see_other_objects_commits, Backend);                      \
  TEST_CASE_TEMPLATE_INVOKE(mc_check_readable, Backend);                                       \
  TEST_CASE_TEMPLATE_INVOKE(mc_contention_retries_quiet, Backend);                             \
  }                                                                                            \
  static_assert(true, "")
