#pragma once
// What parse_config (proxy/config.h) says about a document: the helpers every
// config unit test asserts through, so that each file states only its cases.
#include <string>

#include "proxy/config.h"

namespace regcache::proxy::test {

// The key of the ConfigError that parsing `json` throws, or "(no error)".
inline std::string error_key(const std::string& json) {
  try {
    parse_config(json);
  } catch (const ConfigError& e) {
    return e.key();
  }
  return "(no error)";
}

// The message of the ConfigError that parsing `json` throws, or "(no error)".
inline std::string error_text(const std::string& json) {
  try {
    parse_config(json);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace regcache::proxy::test
