#pragma once
// Shared bits of the libFuzzer harnesses (tests/fuzz/README.md).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

// An invariant a harness checks beyond "does not crash": a violation aborts,
// which libFuzzer reports as a crash with the input saved.
#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}
