// Content discovery workflow (spec "Content Discovery", end-8a/8b, end-12a/12b): tag
// listing with paging, the catalog, and the referrers API.
#include <algorithm>
#include <map>
#include <set>

#include "conformance.h"

using namespace conformance;

namespace {

const std::string kUnknownDigest = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

// Pushed in this (non-sorted) order; lexical order is what the spec asks for, so
// "v1.10" sorts before "v1.2". Lower case only: the spec's "lexical order (i.e.
// case-insensitive alphanumeric order)" and byte order agree on these.
const std::vector<std::string> kTags = {"delta", "alpha", "v1.2", "charlie", "v1.10", "bravo", "echo"};

std::vector<std::string> sorted_tags() {
  auto tags = kTags;
  std::sort(tags.begin(), tags.end());
  return tags;
}

// A repository holding one image tagged with every name of kTags.
std::string tagged_repo(const std::string& slug) {
  const std::string name = repo(slug);
  Image image = push_image(name, kTags.front());
  for (std::size_t i = 1; i < kTags.size(); ++i) push_manifest(name, kTags[i], image.manifest);
  return name;
}

std::vector<std::string> strings_of(const json& body, const char* field) {
  std::vector<std::string> out;
  if (body.is_object() && body.contains(field) && body[field].is_array())
    for (const auto& t : body[field])
      if (t.is_string()) out.push_back(t);
  return out;
}

// GET the tags list; REQUIREs 200 and the documented JSON shape.
std::vector<std::string> list_tags(const std::string& name, const std::string& query,
                                   HttpResponse* response = nullptr) {
  auto r = request("GET", "/v2/" + name + "/tags/list" + query);
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  json body = parse(r.body);
  REQUIRE_MESSAGE(body.is_object(), describe(r));
  CHECK(body.value("name", "") == name);
  // "tags" may be empty; some registries send null for an empty list.
  REQUIRE_MESSAGE((body.contains("tags") && (body["tags"].is_array() || body["tags"].is_null())), describe(r));
  if (response) *response = r;
  return strings_of(body, "tags");
}

std::vector<std::string> slice(const std::vector<std::string>& v, std::size_t from, std::size_t count) {
  std::vector<std::string> out;
  for (std::size_t i = from; i < v.size() && out.size() < count; ++i) out.push_back(v[i]);
  return out;
}

// A subject image and its referrers, all in one repository:
//   by_artifact_type  manifest, artifactType set, empty config     (type A)
//   by_config_type    manifest, no artifactType, config typed B    (type B)
//   index_typed       index with artifactType C
//   index_untyped     index without artifactType
// Each referrer carries the annotation {kAnnotation: <its name>}.
struct Referrers {
  static constexpr const char* kTypeA = "application/vnd.conformance.type-a";
  static constexpr const char* kTypeB = "application/vnd.conformance.type-b";
  static constexpr const char* kTypeC = "application/vnd.conformance.type-c";
  static constexpr const char* kAnnotation = "org.opencontainers.conformance.test";

  std::string name;
  Image subject;
  Manifest by_artifact_type, by_config_type, index_typed, index_untyped;

  explicit Referrers(const std::string& slug) : name(repo(slug)) {
    subject = push_image(name, "subject");
    Blob empty = empty_config();
    push_blob(name, empty);
    Blob payload = make_blob(64, "application/vnd.conformance.payload");
    push_blob(name, payload);
    Blob config_b{"{\"b\":\"" + random_hex(8) + "\"}", {}, kTypeB};
    config_b.digest = sha256(config_b.bytes);
    push_blob(name, config_b);
    const json subject_descriptor = subject.manifest.descriptor();

    by_artifact_type = image_manifest(empty, {payload},
                                      {{"artifactType", kTypeA},
                                       {"subject", subject_descriptor},
                                       {"annotations", {{kAnnotation, "by artifact type"}}}});
    by_config_type = image_manifest(
        config_b, {payload}, {{"subject", subject_descriptor}, {"annotations", {{kAnnotation, "by config type"}}}});
    index_typed = image_index(
        {by_artifact_type},
        {{"artifactType", kTypeC}, {"subject", subject_descriptor}, {"annotations", {{kAnnotation, "typed index"}}}});
    index_untyped = image_index({by_config_type},
                                {{"subject", subject_descriptor}, {"annotations", {{kAnnotation, "untyped index"}}}});
    for (const Manifest* m : {&by_artifact_type, &by_config_type, &index_typed, &index_untyped})
      push_manifest(name, m->digest, *m);
  }

  std::vector<const Manifest*> all() const {
    return {&by_artifact_type, &by_config_type, &index_typed, &index_untyped};
  }
};

// GET the referrers of `digest`; REQUIREs 200, the index Content-Type and an image
// index body. Returns the descriptors by digest.
std::map<std::string, json> list_referrers(const std::string& name, const std::string& digest,
                                           const std::string& query = {}, HttpResponse* response = nullptr) {
  auto r = request("GET", "/v2/" + name + "/referrers/" + digest + query);
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  CHECK(r.header("Content-Type") == kIndexType);
  json body = parse(r.body);
  REQUIRE_MESSAGE(body.is_object(), describe(r));
  CHECK(body.value("schemaVersion", 0) == 2);
  CHECK(body.value("mediaType", "") == kIndexType);
  REQUIRE_MESSAGE((body.contains("manifests") && body["manifests"].is_array()), describe(r));
  std::map<std::string, json> out;
  for (const auto& d : body["manifests"]) {
    REQUIRE(d.is_object());
    std::string digest_of = d.value("digest", "");
    CHECK_MESSAGE(!out.count(digest_of), "listed twice: " << digest_of);
    out[digest_of] = d;
  }
  if (response) *response = r;
  return out;
}

std::set<std::string> keys(const std::map<std::string, json>& m) {
  std::set<std::string> out;
  for (const auto& [k, v] : m) out.insert(k);
  return out;
}

}  // namespace

TEST_CASE("discovery: tags list returns 200 with the name and every tag") {
  const std::string name = tagged_repo("disc-tags");
  auto tags = list_tags(name, "");
  CHECK(std::set<std::string>(tags.begin(), tags.end()) == std::set<std::string>(kTags.begin(), kTags.end()));
  CHECK(tags.size() == kTags.size());
}

TEST_CASE("discovery: tags list is in lexical order") {
  const std::string name = tagged_repo("disc-tags-order");
  auto tags = list_tags(name, "");
  CHECK_MESSAGE(tags == sorted_tags(), join(tags));
}

TEST_CASE("discovery: tags list of an unknown repository returns 404 NAME_UNKNOWN") {
  // "Assuming a repository is found, this request MUST return a 200"; end-8a fails
  // with 404, and the code for an unknown repository is NAME_UNKNOWN.
  CHECK_OCI_ERROR(request("GET", "/v2/" + repo("disc-no-repo") + "/tags/list"), 404, {"NAME_UNKNOWN"});
}

TEST_CASE("discovery: tags list with n returns the first n tags") {
  // With n the response MUST hold n tags unless there are fewer, or it MAY hold fewer
  // with a Link header; it starts at the beginning of the lexical order.
  const std::string name = tagged_repo("disc-tags-n");
  HttpResponse r;
  auto tags = list_tags(name, "?n=3", &r);
  if (tags.size() < 3) CHECK_MESSAGE(r.has_header("Link"), "fewer than n tags and no Link: " << describe(r));
  CHECK_MESSAGE(tags == slice(sorted_tags(), 0, tags.size()), join(tags));
  CHECK(tags.size() <= 3);
  CHECK(!tags.empty());
}

TEST_CASE("discovery: tags list with n paginates with a Link header") {
  // A Link header MAY be included when more tags are available; if it is, it MUST be
  // RFC 5988 with rel="next", and following it continues the list. regcache sends it.
  const std::string name = tagged_repo("disc-tags-link");
  HttpResponse r;
  std::vector<std::string> all = list_tags(name, "?n=2", &r);
  if (regcache_contract()) CHECK_MESSAGE(r.has_header("Link"), describe(r));
  for (int page = 0; page < 10; ++page) {
    bool well_formed = true;
    std::string next = next_link(r, well_formed);
    CHECK_MESSAGE(well_formed, "Link: " << r.header("Link"));
    if (next.empty()) break;
    r = request("GET", resolve(next));
    REQUIRE_MESSAGE(r.status == 200, describe(r));
    auto more = strings_of(parse(r.body), "tags");
    CHECK(more.size() <= 2);
    all.insert(all.end(), more.begin(), more.end());
  }
  CHECK_MESSAGE(all == sorted_tags(), join(all));
}

TEST_CASE("discovery: tags list with n of 0 returns an empty list without Link") {
  const std::string name = tagged_repo("disc-tags-n0");
  HttpResponse r;
  auto tags = list_tags(name, "?n=0", &r);
  CHECK_MESSAGE(tags.empty(), join(tags));
  CHECK_MESSAGE(!r.has_header("Link"), describe(r));
}

TEST_CASE("discovery: tags list with last returns the tags after it") {
  // Up to n tags after <last> (not included), in lexical order.
  const std::string name = tagged_repo("disc-tags-last");
  const auto sorted = sorted_tags();
  HttpResponse r;
  auto tags = list_tags(name, "?n=2&last=" + sorted[1], &r);
  if (tags.size() < 2) CHECK_MESSAGE(r.has_header("Link"), describe(r));
  CHECK_MESSAGE(tags == slice(sorted, 2, tags.size()), join(tags));
  CHECK(tags.size() <= 2);
  CHECK(!tags.empty());
}

TEST_CASE("discovery: tags list with last and no n returns all tags after it") {
  // "When using the last query parameter, the n parameter is OPTIONAL."
  const std::string name = tagged_repo("disc-tags-last-only");
  const auto sorted = sorted_tags();
  auto tags = list_tags(name, "?last=" + sorted[2]);
  CHECK_MESSAGE(tags == slice(sorted, 3, sorted.size()), join(tags));
}

TEST_CASE("discovery: catalog lists repositories in lexical order") {
  // GET /v2/_catalog is not part of OCI 1.1.1: it comes from the Docker Registry HTTP
  // API V2 the spec builds on, and regcache implements it (issue 3). The registry may
  // hold other repositories and page the list (Link): these three must be in it, and
  // the whole list sorted.
  const std::string base = repo("disc-catalog");
  const std::vector<std::string> names = {base + "/c", base + "/a", base + "/b"};
  for (const auto& n : names) push_image(n, "v1");
  std::vector<std::string> repos;
  std::string next = "/v2/_catalog";
  for (int page = 0; page < 1000 && !next.empty(); ++page) {
    auto r = request("GET", resolve(next));
    REQUIRE_MESSAGE(r.status == 200, describe(r));
    auto more = strings_of(parse(r.body), "repositories");
    repos.insert(repos.end(), more.begin(), more.end());
    bool well_formed = true;
    next = next_link(r, well_formed);
    CHECK_MESSAGE(well_formed, describe(r));
  }
  CHECK(next.empty());
  for (const auto& n : names)
    CHECK_MESSAGE(std::find(repos.begin(), repos.end(), n) != repos.end(), n << " not in " << join(repos));
  CHECK_MESSAGE(std::is_sorted(repos.begin(), repos.end()), join(repos));
}

TEST_CASE("discovery: catalog with n and last paginates with a Link header") {
  const std::string base = repo("disc-catalog-page");
  for (const char* n : {"/a", "/b", "/c"}) push_image(base + n, "v1");
  auto r = request("GET", with_query(with_query("/v2/_catalog", "n", "1"), "last", base + "/a"));
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  CHECK(strings_of(parse(r.body), "repositories") == std::vector<std::string>{base + "/b"});
  bool well_formed = true;
  std::string next = next_link(r, well_formed);
  CHECK_MESSAGE(well_formed, describe(r));
  REQUIRE_MESSAGE(!next.empty(), describe(r));
  auto page = request("GET", resolve(next));
  REQUIRE_MESSAGE(page.status == 200, describe(page));
  CHECK(strings_of(parse(page.body), "repositories") == std::vector<std::string>{base + "/c"});
}

TEST_CASE("discovery: referrers of an unknown digest is an empty image index") {
  // A registry supporting the referrers API MUST NOT answer 404; no matching
  // referrers is an empty manifest list (200, image index Content-Type).
  const std::string name = repo("disc-ref-empty");
  push_image(name, "v1");
  CHECK(list_referrers(name, kUnknownDigest).empty());
}

TEST_CASE("discovery: referrers lists manifests and indexes whose subject is the digest") {
  // Each descriptor: an image manifest or index of <name> whose subject is <digest>,
  // with its mediaType, digest and size.
  Referrers refs("disc-ref-list");
  auto listed = list_referrers(refs.name, refs.subject.manifest.digest);
  std::set<std::string> expected;
  for (const Manifest* m : refs.all()) expected.insert(m->digest);
  CHECK_MESSAGE(keys(listed) == expected, join(keys(listed)));
  for (const Manifest* m : refs.all()) {
    if (!listed.count(m->digest)) continue;
    const json& d = listed[m->digest];
    CAPTURE(d.dump());
    CHECK(d.value("mediaType", "") == m->media_type);
    CHECK(d.value("size", 0) == m->bytes.size());
  }
}

TEST_CASE("discovery: referrers artifactType comes from the manifest artifactType") {
  Referrers refs("disc-ref-at");
  auto listed = list_referrers(refs.name, refs.subject.manifest.digest);
  REQUIRE(listed.count(refs.by_artifact_type.digest));
  CHECK(listed[refs.by_artifact_type.digest].value("artifactType", "") == Referrers::kTypeA);
}

TEST_CASE("discovery: referrers artifactType falls back to the config mediaType") {
  // No artifactType in the manifest: the descriptor's artifactType MUST be the config
  // descriptor's mediaType.
  Referrers refs("disc-ref-config");
  auto listed = list_referrers(refs.name, refs.subject.manifest.digest);
  REQUIRE(listed.count(refs.by_config_type.digest));
  CHECK(listed[refs.by_config_type.digest].value("artifactType", "") == Referrers::kTypeB);
}

TEST_CASE("discovery: referrers artifactType of an index is its own or omitted") {
  // An index's artifactType is copied when present, and MUST be omitted when missing.
  Referrers refs("disc-ref-index");
  auto listed = list_referrers(refs.name, refs.subject.manifest.digest);
  REQUIRE(listed.count(refs.index_typed.digest));
  REQUIRE(listed.count(refs.index_untyped.digest));
  CHECK(listed[refs.index_typed.digest].value("artifactType", "") == Referrers::kTypeC);
  CHECK_MESSAGE(!listed[refs.index_untyped.digest].contains("artifactType"), listed[refs.index_untyped.digest].dump());
}

TEST_CASE("discovery: referrers descriptors carry the manifest annotations") {
  Referrers refs("disc-ref-annotations");
  auto listed = list_referrers(refs.name, refs.subject.manifest.digest);
  for (const Manifest* m : refs.all()) {
    CAPTURE(m->digest);
    REQUIRE(listed.count(m->digest));
    json expected = parse(m->bytes)["annotations"];
    CHECK(listed[m->digest].value("annotations", json::object()) == expected);
  }
}

TEST_CASE("discovery: referrers include a referrer pushed before its subject") {
  // The official suite's "GET request to missing manifest should yield 200": the
  // subject is never pushed, its referrer is listed.
  const std::string name = repo("disc-ref-early");
  Image image = push_image(name, "v1");
  push_blob(name, empty_config());
  Manifest subject = image_manifest(image.config, {image.layer}, {{"annotations", {{"never", "pushed"}}}});
  Manifest referrer = image_manifest(empty_config(), {image.layer},
                                     {{"artifactType", Referrers::kTypeA}, {"subject", subject.descriptor()}});
  push_manifest(name, referrer.digest, referrer);
  auto listed = list_referrers(name, subject.digest);
  CHECK_MESSAGE(keys(listed) == std::set<std::string>{referrer.digest}, join(keys(listed)));
  // Pushing the subject afterwards keeps the referrer.
  push_manifest(name, subject.digest, subject);
  auto after = keys(list_referrers(name, subject.digest));
  CHECK_MESSAGE(after == std::set<std::string>{referrer.digest}, join(after));
}

TEST_CASE("discovery: referrers only list manifests of the same repository") {
  // Descriptors are of manifests "in the same <name> namespace": a referrer of the same
  // subject digest in another repository is not listed.
  Referrers refs("disc-ref-scope");
  const std::string other = repo("disc-ref-scope-other");
  push_blob(other, empty_config());
  Blob payload = make_blob(32);
  push_blob(other, payload);
  Manifest foreign =
      image_manifest(empty_config(), {payload},
                     {{"artifactType", Referrers::kTypeA}, {"subject", refs.subject.manifest.descriptor()}});
  push_manifest(other, foreign.digest, foreign);
  auto listed = list_referrers(refs.name, refs.subject.manifest.digest);
  CHECK(!listed.count(foreign.digest));
  CHECK(listed.size() == refs.all().size());
  auto in_other = keys(list_referrers(other, refs.subject.manifest.digest));
  CHECK_MESSAGE(in_other == std::set<std::string>{foreign.digest}, join(in_other));
}

TEST_CASE("discovery: referrers filter by artifactType with OCI-Filters-Applied") {
  // The registry SHOULD support filtering on artifactType; a filtered response MUST say
  // so in OCI-Filters-Applied: artifactType.
  Referrers refs("disc-ref-filter");
  HttpResponse r;
  auto listed =
      list_referrers(refs.name, refs.subject.manifest.digest, with_query("", "artifactType", Referrers::kTypeA), &r);
  CHECK_MESSAGE(r.header("OCI-Filters-Applied") == "artifactType", describe(r));
  CHECK_MESSAGE(keys(listed) == std::set<std::string>{refs.by_artifact_type.digest}, join(keys(listed)));
  // The config-type fallback counts for the filter too.
  listed =
      list_referrers(refs.name, refs.subject.manifest.digest, with_query("", "artifactType", Referrers::kTypeB), &r);
  CHECK(r.header("OCI-Filters-Applied") == "artifactType");
  CHECK_MESSAGE(keys(listed) == std::set<std::string>{refs.by_config_type.digest}, join(keys(listed)));
  // A type nothing has: an empty index, still filtered.
  listed = list_referrers(refs.name, refs.subject.manifest.digest,
                          with_query("", "artifactType", "application/vnd.conformance.none"), &r);
  CHECK(r.header("OCI-Filters-Applied") == "artifactType");
  CHECK(listed.empty());
}

TEST_CASE("discovery: referrers with a malformed digest returns 400") {
  // "If the request is invalid, such as a <digest> with an invalid syntax, a 400 Bad
  // Request MUST be returned."
  const std::string name = repo("disc-ref-bad");
  push_image(name, "v1");
  for (const std::string& digest :
       {std::string("sha256:totallywrong"), std::string("sha256:0123"), std::string("notadigest")}) {
    CAPTURE(digest);
    CHECK_OCI_ERROR(request("GET", "/v2/" + name + "/referrers/" + digest), 400, {"DIGEST_INVALID"});
  }
}
