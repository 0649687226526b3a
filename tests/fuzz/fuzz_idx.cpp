// libFuzzer target: the IDX reader (training/idx.cpp), raw and gzip. The first input byte picks
// the mode: even = the rest is the file as is (raw IDX, or gzip bytes whose stream the mutations
// damage), odd = the rest is gzip-compressed first (valid streams of mutated IDX content).
// read_idx takes a path, so the file is written to a temporary file each time.
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "training/idx.hpp"

namespace {
std::string temp_path() {
  const char* dir = std::getenv("TMPDIR");
  std::string p = std::string(dir && *dir ? dir : "/tmp") + "/bitnetmcu_fuzz_idx_" + std::to_string(getpid());
  return p;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = temp_path();
  if (size == 0) return 0;
  const bool compress = data[0] & 1;
  if (compress) {
    gzFile f = gzopen(path.c_str(), "wb1");
    if (!f) std::abort();
    if (size > 1 && gzwrite(f, data + 1, static_cast<unsigned>(size - 1)) <= 0) std::abort();
    gzclose(f);
  } else {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size > 1 && std::fwrite(data + 1, 1, size - 1, f) != size - 1) std::abort();
    std::fclose(f);
  }
  try {
    const bitnetmcu::train::IdxArray a = bitnetmcu::train::read_idx(path);
    size_t n = 1;
    for (int64_t d : a.dims) n *= static_cast<size_t>(d);
    if (n != a.data.size()) __builtin_trap();  // accepted data must match its dimensions
  } catch (const std::runtime_error& e) {
    if (!std::strstr(e.what(), path.c_str())) __builtin_trap();  // every error names the file
  }
  return 0;
}
