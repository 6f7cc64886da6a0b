// The peers of issue 18's replica setup for shell scripts and the bench: a
// throwaway PostgreSQL 15 and a single-node Ceph RGW, both on 127.0.0.1 on
// free ports (the test fixtures tests/support/postgres_cluster.h and
// ceph_rgw.h), with databases and buckets made ready.
//
//   s3_peers DIR [--databases N] [--buckets N]
//
// Writes DIR/s3-secret (the S3 secret key, chmod 600) and then DIR/peers.env,
// shell assignments (written whole, then renamed into place: wait for it):
//   PG_PORT  PG_DSN_1..N  S3_ENDPOINT  S3_REGION  S3_ACCESS_KEY  S3_SECRET_KEY
//   S3_SECRET_KEY_FILE  S3_BUCKET_1..N
// and stays in the foreground until SIGTERM or SIGINT; then it stops radosgw,
// ceph and PostgreSQL by PID and removes their dirs. If it is killed, the
// kernel kills them (PR_SET_PDEATHSIG); only their temp dirs stay behind.
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "cache/s3/s3_client.h"
#include "support/ceph_rgw.h"
#include "support/files.h"
#include "support/postgres_cluster.h"

namespace fs = std::filesystem;
using namespace regcache;
using namespace regcache::test;

namespace {

// 'value' for a shell: single-quoted, with ' written as '\''.
std::string shell_quoted(const std::string& value) {
  std::string out = "'";
  for (char c : value) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: s3_peers DIR [--databases N] [--buckets N]\n";
    return 2;
  }
  const fs::path dir = argv[1];
  int databases = 1, buckets = 1;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--databases" || a == "--buckets") && i + 1 < argc) {
      const int n = std::atoi(argv[++i]);
      if (n < 0 || n > 16) {
        std::cerr << "s3_peers: " << a << " must be 0-16\n";
        return 2;
      }
      (a == "--databases" ? databases : buckets) = n;
    } else {
      std::cerr << "s3_peers: unknown argument " << a << "\n";
      return 2;
    }
  }
  try {
    fs::create_directories(dir);
    fs::remove(dir / "peers.env");
    PostgresCluster pg;
    CephRgw rgw;
    const fs::path secret = dir / "s3-secret";
    write_file(secret, rgw.secret_key() + "\n");
    ::chmod(secret.c_str(), 0600);
    std::string env = "PG_PORT=" + std::to_string(pg.port()) + "\n";
    for (int i = 1; i <= databases; ++i)
      env += "PG_DSN_" + std::to_string(i) + "=" + shell_quoted(pg.dsn(pg.create_database("peers"))) + "\n";
    env += "S3_ENDPOINT=" + shell_quoted(rgw.endpoint()) + "\nS3_REGION=" + shell_quoted(rgw.region()) +
           "\nS3_ACCESS_KEY=" + shell_quoted(rgw.access_key()) + "\nS3_SECRET_KEY=" + shell_quoted(rgw.secret_key()) +
           "\nS3_SECRET_KEY_FILE=" + shell_quoted(secret.string()) + "\n";
    for (int i = 1; i <= buckets; ++i) {
      s3::ClientConfig c;
      c.endpoint = rgw.endpoint();
      c.bucket = rgw.unique_bucket_name("peers");
      c.region = rgw.region();
      c.credentials = {rgw.access_key(), rgw.secret_key()};
      s3::Client(c).create_bucket();
      env += "S3_BUCKET_" + std::to_string(i) + "=" + shell_quoted(c.bucket) + "\n";
    }
    // Wait for SIGTERM/SIGINT (blocked only now: the daemons started above
    // must not inherit a blocked SIGTERM).
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, &old);
    write_file(dir / "peers.env.tmp", env);
    fs::rename(dir / "peers.env.tmp", dir / "peers.env");
    std::cout << "s3_peers: PostgreSQL on 127.0.0.1:" << pg.port() << ", RGW on " << rgw.endpoint() << std::endl;
    int sig = 0;
    sigwait(&stop, &sig);
    std::cout << "s3_peers: signal " << sig << ", stopping" << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "s3_peers: " << e.what() << "\n";
    return 1;
  }
}
