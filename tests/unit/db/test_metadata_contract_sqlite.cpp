// The metadata store contract (tests/contract/metadata_store_contract.h) for
// the SQLite backend: each backend object is a fresh database file in a temp
// directory; open() is another connection to it (what a second process sees).
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "db/sqlite_metadata_store.h"
#include "tests/contract/metadata_store_contract.h"

namespace {

class SqliteBackend {
 public:
  static constexpr const char* name = "sqlite";
  SqliteBackend() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "regcache-contract-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~SqliteBackend() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  SqliteBackend(const SqliteBackend&) = delete;
  SqliteBackend& operator=(const SqliteBackend&) = delete;

  std::unique_ptr<regcache::db::MetadataStore> open() {
    return regcache::db::open_sqlite_store((dir_ / "meta.db").string());
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace

TYPE_TO_STRING_AS("sqlite", SqliteBackend);
REGCACHE_METADATA_STORE_CONTRACT(SqliteBackend);
