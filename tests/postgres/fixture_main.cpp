// The CTest fixture for the `postgres` label: one throwaway PostgreSQL cluster
// for the whole run, shared by every integration test registered a second
// time with REGCACHE_TEST_METADATA=postgres (each regcache gets a database of
// its own: tests/support/regcache_server.cpp).
//   postgres_fixture start DIR   starts it (detached) and writes DIR/cluster-dir
//   postgres_fixture stop DIR    kills it by the PID it recorded and cleans up
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "support/postgres_cluster.h"

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "start" && std::string(argv[1]) != "stop")) {
    std::cerr << "usage: postgres_fixture start|stop DIR\n";
    return 2;
  }
  std::filesystem::path dir = argv[2];
  std::filesystem::create_directories(dir);
  try {
    std::string cluster_dir;
    {
      std::ifstream pointer(dir / "cluster-dir");
      std::getline(pointer, cluster_dir);
    }
    // A cluster left by an earlier run (a cancelled ctest) is stopped either way.
    if (!cluster_dir.empty()) regcache::test::PostgresCluster::stop_fixture(cluster_dir);
    std::filesystem::remove(dir / "cluster-dir");
    if (std::string(argv[1]) == "stop") {
      std::cout << "postgres fixture stopped\n";
      return 0;
    }
    regcache::test::PostgresCluster cluster(/*detached=*/true);
    std::ofstream(dir / "cluster-dir") << cluster.dir().string() << "\n";
    std::cout << "postgres fixture on 127.0.0.1:" << cluster.port() << " (pid " << cluster.postmaster_pid() << ", "
              << cluster.dir().string() << ")\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "postgres_fixture: " << e.what() << "\n";
    return 1;
  }
}
