// A real PostgreSQL deadlock with a regcache write as its victim (issue 15):
// the store retries the statement, the request still succeeds, and
// regcache_metadata_retries_total{backend="postgres"} counts the retry.
//
// Which conflict regcache can really meet: units of work (transact()) run one
// at a time behind a global advisory lock, and a statement inside a unit is
// never retried (the unit is not re-run), so the retried statements are the
// single statements outside units. One of them is link(): the INSERT into
// repo_blobs made when a manifest stored under repository A is asked for by
// digest under repository B. That INSERT takes ROW EXCLUSIVE on repo_blobs,
// writes its row, and then, in its foreign-key check, takes FOR KEY SHARE on
// the blob's row. The test's own session holds that blob row FOR UPDATE,
// waits until regcache's INSERT is blocked on it, and then asks for SHARE on
// repo_blobs, which waits on regcache's ROW EXCLUSIVE: a cycle. The test's
// session sets a long deadlock_timeout, so regcache's backend (the server's
// 1 s default) runs the deadlock check first and is the one aborted with
// 40P01. Its retry then waits at its first lock (ROW EXCLUSIVE, against the
// test's SHARE) until the test rolls back, and succeeds: exactly one retry.
// (Closing the cycle with an INSERT of the same key instead races: the retry
// can re-insert before the test's INSERT finishes, and deadlock again.)
//
// Runs under the `postgres` label (REGCACHE_TEST_METADATA=postgres), with a
// cluster of its own.
#include <doctest/doctest.h>

#include <libpq-fe.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "support/fake_upstream.h"
#include "support/http_client.h"
#include "support/observability.h"
#include "support/postgres_cluster.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

struct PGconnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};

// The test's own libpq session.
class Session {
 public:
  explicit Session(const std::string& dsn) : conn_(PQconnectdb(dsn.c_str())) {
    if (PQstatus(conn_.get()) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(conn_.get()));
  }
  // Runs `sql`; the first column of the first row ("" when none). Throws on an error.
  std::string run(const std::string& sql) {
    PGresult* r = PQexec(conn_.get(), sql.c_str());
    const ExecStatusType status = PQresultStatus(r);
    std::string value = status == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    std::string message = PQresultErrorMessage(r);
    PQclear(r);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + message);
    return value;
  }

 private:
  std::unique_ptr<PGconn, PGconnDeleter> conn_;
};

std::string quoted(const std::string& s) { return "'" + s + "'"; }  // test-made values: no quotes inside

double retries(const RegcacheServer& regcache) {
  return metric_value(http_request("GET", regcache.url() + "/metrics").body, "regcache_metadata_retries_total",
                      {{"backend", "postgres"}});
}

}  // namespace

TEST_CASE("postgres: a deadlock that aborts a regcache write is retried, the request succeeds, the retry is counted") {
  if (!metadata_is_postgres()) {
    MESSAGE("skipped: runs under the postgres label (REGCACHE_TEST_METADATA=postgres)");
    return;
  }
  TempDir tmp("regcache-it-pg-retry");
  PostgresCluster pg;
  const std::string database = pg.create_database("retry");
  FakeUpstream fake;
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" +
      std::string(64, 'a') + R"(","size":2},"layers":[]})";
  const std::string digest = fake.add_manifest("dl/a", "v1", manifest, "application/vnd.oci.image.manifest.v1+json");
  auto config = regcache_config(fake.url());
  config["metadata"] = {{"backend", "postgres"}, {"dsn", pg.dsn(database)}};
  RegcacheServer regcache(tmp / "regcache", {fake.url(), config, {}});

  // Stored under dl/a: a blobs row and dl/a's link.
  const HttpHeaders accept{{"Accept", "application/vnd.oci.image.manifest.v1+json"}};
  REQUIRE(http_request("GET", regcache.url() + "/v2/dl/a/manifests/v1", accept).status == 200);
  REQUIRE(pg.query_value(database, "SELECT count(*) FROM repo_blobs WHERE repo = 'dl/a' AND digest = " +
                                       quoted(digest)) == std::optional<std::string>("1"));
  const double before = retries(regcache);
  REQUIRE(before == 0);

  Session test(pg.dsn(database));
  test.run("BEGIN");
  test.run("SET LOCAL deadlock_timeout = '10min'");  // this session is never the one to give up
  test.run("SELECT 1 FROM blobs WHERE digest = " + quoted(digest) + " FOR UPDATE");

  // dl/b asks for the digest: regcache links it to dl/b, and its INSERT blocks
  // in the foreign-key check on the row held above.
  auto request = std::async(std::launch::async, [&] {
    return http_request("GET", regcache.url() + "/v2/dl/b/manifests/" + digest, accept);
  });
  Session observer(pg.dsn(database));
  REQUIRE_MESSAGE(wait_until(
                      [&] {
                        return observer.run("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                            "AND query LIKE 'INSERT INTO repo_blobs%'") == "1";
                      },
                      30s),
                  regcache.stderr_text());
  // Close the cycle. This returns once PostgreSQL has aborted regcache's INSERT.
  test.run("LOCK TABLE repo_blobs IN SHARE MODE");
  CHECK_MESSAGE(wait_until([&] { return retries(regcache) == before + 1; }, 20s),
                "retries: " << retries(regcache));
  CHECK(request.wait_for(0s) == std::future_status::timeout);  // the retry waits on this session's lock
  test.run("ROLLBACK");

  auto answer = request.get();
  CHECK_MESSAGE(answer.status == 200, answer.summary() << " " << answer.body);
  CHECK(answer.body == manifest);
  CHECK(answer.header("Docker-Content-Digest") == digest);
  CHECK(pg.query_value(database, "SELECT count(*) FROM repo_blobs WHERE repo = 'dl/b' AND digest = " +
                                     quoted(digest)) == std::optional<std::string>("1"));  // regcache's own row
  CHECK(retries(regcache) == before + 1);
}
