#pragma once
// A MetadataStore that forwards every call to another one and can be told to
// throw on the n-th call of a chosen method: to provoke a failure between two
// writes of a multi-step operation and check that a unit of work leaves
// nothing half-written. Header-only, for unit tests of cache/ code.
//
// Inside transact(), `work` gets a view that forwards to the inner store's
// unit (`tx`) and shares the faults, so an injected throw inside a unit rolls
// that unit back like any other exception.
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "db/metadata_store.h"

namespace regcache::testing {

class FaultyMetadataStore final : public db::MetadataStore {
 public:
  explicit FaultyMetadataStore(db::MetadataStore& inner) : inner_(inner), faults_(std::make_shared<Faults>()) {}

  // The `nth` call (1 = the next one) of `method` made from now on throws
  // std::runtime_error("injected fault: <method>"); the calls before it and
  // after it go through.
  void fail_on(const std::string& method, int nth = 1) {
    std::lock_guard lock(faults_->mutex);
    faults_->countdown[method] = nth;
  }
  // How many times `method` was called (through this store or a unit's view).
  int calls(const std::string& method) const {
    std::lock_guard lock(faults_->mutex);
    auto it = faults_->calls.find(method);
    return it == faults_->calls.end() ? 0 : it->second;
  }

  void transact(const std::function<void(db::MetadataStore& tx)>& work) override {
    hit("transact");
    inner_.transact([&](db::MetadataStore& tx) {
      FaultyMetadataStore view(tx, faults_);
      work(view);
    });
  }
  void check_readable() override { hit("check_readable"), inner_.check_readable(); }
  std::uint64_t contention_retries() const override { return inner_.contention_retries(); }

  // BlobIndex
  std::optional<db::BlobRecord> find_blob(const Digest& d) override { return hit("find_blob"), inner_.find_blob(d); }
  void put_blob(const db::BlobRecord& r) override { hit("put_blob"), inner_.put_blob(r); }
  void touch_blob(const Digest& d, std::int64_t now) override { hit("touch_blob"), inner_.touch_blob(d, now); }
  void delete_blob(const Digest& d) override { hit("delete_blob"), inner_.delete_blob(d); }
  std::vector<db::BlobRecord> list_blobs() override { return hit("list_blobs"), inner_.list_blobs(); }
  void record_accesses(const std::vector<db::AccessRecord>& a) override {
    hit("record_accesses"), inner_.record_accesses(a);
  }
  std::vector<db::MirroredBlob> list_mirrored_blobs() override {
    return hit("list_mirrored_blobs"), inner_.list_mirrored_blobs();
  }
  std::uint64_t mirrored_bytes() override { return hit("mirrored_bytes"), inner_.mirrored_bytes(); }
  db::BlobTotals blob_totals() override { return hit("blob_totals"), inner_.blob_totals(); }

  // RepositoryLinks
  void link(const std::string& ns, const std::string& repo, const Digest& d,
            const std::string& media_type = {}) override {
    hit("link"), inner_.link(ns, repo, d, media_type);
  }
  bool is_linked(const std::string& ns, const std::string& repo, const Digest& d) override {
    return hit("is_linked"), inner_.is_linked(ns, repo, d);
  }
  std::optional<db::LinkRecord> find_link(const std::string& ns, const std::string& repo, const Digest& d) override {
    return hit("find_link"), inner_.find_link(ns, repo, d);
  }
  std::optional<db::LinkRecord> find_namespace_link(const std::string& ns, const Digest& d) override {
    return hit("find_namespace_link"), inner_.find_namespace_link(ns, d);
  }
  void unlink(const std::string& ns, const std::string& repo, const Digest& d) override {
    hit("unlink"), inner_.unlink(ns, repo, d);
  }
  std::vector<Digest> list_links(const std::string& ns, const std::string& repo) override {
    return hit("list_links"), inner_.list_links(ns, repo);
  }
  std::vector<std::string> list_repositories(const std::string& ns) override {
    return hit("list_repositories"), inner_.list_repositories(ns);
  }
  std::size_t count_links(const Digest& d) override { return hit("count_links"), inner_.count_links(d); }
  std::vector<std::string> list_namespaces() override { return hit("list_namespaces"), inner_.list_namespaces(); }

  // TagStore
  std::optional<db::TagRecord> find_tag(const std::string& ns, const std::string& repo, const std::string& tag) override {
    return hit("find_tag"), inner_.find_tag(ns, repo, tag);
  }
  void put_tag(const std::string& ns, const std::string& repo, const std::string& tag, const Digest& d,
               std::int64_t confirmed_at) override {
    hit("put_tag"), inner_.put_tag(ns, repo, tag, d, confirmed_at);
  }
  void delete_tag(const std::string& ns, const std::string& repo, const std::string& tag) override {
    hit("delete_tag"), inner_.delete_tag(ns, repo, tag);
  }
  std::vector<std::string> list_tags(const std::string& ns, const std::string& repo) override {
    return hit("list_tags"), inner_.list_tags(ns, repo);
  }
  void delete_tags_for(const std::string& ns, const std::string& repo, const Digest& d) override {
    hit("delete_tags_for"), inner_.delete_tags_for(ns, repo, d);
  }
  std::vector<std::pair<std::string, db::TagRecord>> list_tag_records(const std::string& ns,
                                                                      const std::string& repo) override {
    return hit("list_tag_records"), inner_.list_tag_records(ns, repo);
  }

  // ManifestGraph
  void put_manifest_refs(const std::string& ns, const std::string& repo, const Digest& m,
                         const std::vector<Digest>& children) override {
    hit("put_manifest_refs"), inner_.put_manifest_refs(ns, repo, m, children);
  }
  void delete_manifest_refs(const std::string& ns, const std::string& repo, const Digest& m) override {
    hit("delete_manifest_refs"), inner_.delete_manifest_refs(ns, repo, m);
  }
  std::vector<Digest> manifests_referencing(const std::string& ns, const std::string& repo,
                                            const Digest& child) override {
    return hit("manifests_referencing"), inner_.manifests_referencing(ns, repo, child);
  }
  void put_referrer(const std::string& ns, const std::string& repo, const db::ReferrerRecord& r) override {
    hit("put_referrer"), inner_.put_referrer(ns, repo, r);
  }
  void delete_referrer(const std::string& ns, const std::string& repo, const Digest& d) override {
    hit("delete_referrer"), inner_.delete_referrer(ns, repo, d);
  }
  std::vector<db::ReferrerRecord> list_referrers(const std::string& ns, const std::string& repo,
                                                 const Digest& subject) override {
    return hit("list_referrers"), inner_.list_referrers(ns, repo, subject);
  }

  // UploadSessions
  void put_upload(const db::UploadRecord& r) override { hit("put_upload"), inner_.put_upload(r); }
  std::optional<db::UploadRecord> find_upload(const std::string& id) override {
    return hit("find_upload"), inner_.find_upload(id);
  }
  void touch_upload(const std::string& id, std::int64_t now) override { hit("touch_upload"), inner_.touch_upload(id, now); }
  bool delete_upload(const std::string& id) override { return hit("delete_upload"), inner_.delete_upload(id); }
  std::vector<db::UploadRecord> list_uploads() override { return hit("list_uploads"), inner_.list_uploads(); }
  std::vector<db::UploadRecord> list_uploads_idle_since(std::int64_t cutoff, std::size_t limit) override {
    return hit("list_uploads_idle_since"), inner_.list_uploads_idle_since(cutoff, limit);
  }

  // DocumentCache
  void put_document(const std::string& ns, const std::string& repo, const std::string& key,
                    const db::DocumentRecord& doc) override {
    hit("put_document"), inner_.put_document(ns, repo, key, doc);
  }
  std::optional<db::DocumentRecord> find_document(const std::string& ns, const std::string& repo,
                                                  const std::string& key) override {
    return hit("find_document"), inner_.find_document(ns, repo, key);
  }
  std::size_t prune_documents(const std::string& ns, const std::string& repo, std::size_t keep) override {
    return hit("prune_documents"), inner_.prune_documents(ns, repo, keep);
  }
  std::size_t count_documents(const std::string& ns, const std::string& repo) override {
    return hit("count_documents"), inner_.count_documents(ns, repo);
  }

  // MaintenanceQueries
  std::vector<db::RepoDigest> list_unreferenced_links(const std::string& ns, std::int64_t before,
                                                      std::size_t limit) override {
    return hit("list_unreferenced_links"), inner_.list_unreferenced_links(ns, before, limit);
  }
  std::vector<db::BlobRecord> list_unlinked_blobs(std::int64_t before, std::size_t limit) override {
    return hit("list_unlinked_blobs"), inner_.list_unlinked_blobs(before, limit);
  }
  std::vector<db::RepositoryUsage> usage_by_repository() override {
    return hit("usage_by_repository"), inner_.usage_by_repository();
  }
  std::vector<db::NamespaceUsage> usage_by_namespace() override {
    return hit("usage_by_namespace"), inner_.usage_by_namespace();
  }
  std::vector<db::TagRef> list_dangling_tags() override { return hit("list_dangling_tags"), inner_.list_dangling_tags(); }
  std::vector<db::RepoDigest> list_missing_manifest_children() override {
    return hit("list_missing_manifest_children"), inner_.list_missing_manifest_children();
  }

 private:
  struct Faults {
    mutable std::mutex mutex;
    std::map<std::string, int> countdown;  // method -> calls left until the one that throws
    std::map<std::string, int> calls;
  };

  FaultyMetadataStore(db::MetadataStore& inner, std::shared_ptr<Faults> faults)
      : inner_(inner), faults_(std::move(faults)) {}

  // Counts the call and throws when it is the one chosen by fail_on.
  void hit(const std::string& method) {
    std::lock_guard lock(faults_->mutex);
    ++faults_->calls[method];
    auto it = faults_->countdown.find(method);
    if (it == faults_->countdown.end()) return;
    if (--it->second > 0) return;
    faults_->countdown.erase(it);
    throw std::runtime_error("injected fault: " + method);
  }

  db::MetadataStore& inner_;
  std::shared_ptr<Faults> faults_;
};

}  // namespace regcache::testing
