// Your own data: readers for generic IDX, NumPy .npy/.npz and CSV files, label and value checks
// that name the file, row/column or index, the seeded stratified split, and the input
// quantizer fitted on the training split. MNIST / Fashion-MNIST go through data.cpp.
#include "data.hpp"

#include "checkpoint.hpp"

#include <png.h>
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>

namespace bitnetmcu::train {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

// Samples as read: float values [N, ...dims], labels as read, where each came from.
struct RawData {
  std::vector<int64_t> shape;  // N, then (H, W) for images or (F) for vectors
  std::vector<float> values;
  std::vector<int64_t> labels;
  bool uint8_pixels = false;                // values are 0..255 pixels (scaled to [0,1] for images)
  std::vector<std::string> label_origin;    // where label i came from, for error messages
  std::vector<std::string> header;          // csv column names of the features (may be empty)
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  if (!fs::exists(path)) fail(path + ": file not found");
  // gzread passes uncompressed files through unchanged, so one path reads both kinds.
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(path + ": cannot open file");
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  gzclose(f);
  if (n < 0) fail(path + ": read error: truncated or corrupt gzip data");
  return bytes;
}

// ---- CSV --------------------------------------------------------------------------------------

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  std::string t = s.substr(a, b - a);
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
  return t;
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) {
      out.push_back(trim(field));
      field.clear();
    } else {
      field += c;
    }
  }
  out.push_back(trim(field));
  return out;
}

RawData read_csv(const std::string& path, const Config& cfg) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  std::string line;
  int64_t row = 0;
  std::vector<std::string> names;
  size_t columns = 0;
  int64_t label_col = -1;
  RawData d;
  int64_t samples = 0;
  while (std::getline(in, line)) {
    ++row;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (row <= cfg.csv_skip_rows) continue;
    if (trim(line).empty()) continue;
    const std::vector<std::string> fields = split_fields(line);
    const std::string at = path + ":" + std::to_string(row);
    if (columns == 0) {  // the header, or the first data row: fixes the column count
      columns = fields.size();
      if (columns < 2) fail(at + ": expected at least 2 comma-separated columns (features and a label), got " +
                            std::to_string(columns));
      if (cfg.csv_header) names = fields;
      const std::string& lc = cfg.label_column;
      char* end = nullptr;
      const long index = std::strtol(lc.c_str(), &end, 10);
      if (!lc.empty() && *end == 0) {
        label_col = index < 0 ? static_cast<int64_t>(columns) + index : index;
        if (label_col < 0 || label_col >= static_cast<int64_t>(columns))
          fail(at + ": label_column " + lc + " is outside the " + std::to_string(columns) + " columns");
      } else {
        const auto it = std::find(names.begin(), names.end(), lc);
        if (!cfg.csv_header) fail(path + ": label_column '" + lc + "' is a name, but csv_header is false; give a 0-based index");
        if (it == names.end()) {
          std::string all;
          for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
          fail(at + ": no column named '" + lc + "' (label_column) in the header: " + all);
        }
        label_col = it - names.begin();
      }
      for (size_t c = 0; c < names.size(); ++c)
        if (static_cast<int64_t>(c) != label_col) d.header.push_back(names[c]);
      if (cfg.csv_header) continue;
    }
    if (fields.size() != columns)
      fail(at + ": expected " + std::to_string(columns) + " fields (as the " +
           (cfg.csv_header ? "header" : "first row") + "), got " + std::to_string(fields.size()));
    for (size_t c = 0; c < columns; ++c) {
      const std::string& f = fields[c];
      const std::string where = at + ", column " + std::to_string(c + 1) +
                                (c < names.size() ? " ('" + names[c] + "')" : std::string());
      char* end = nullptr;
      if (static_cast<int64_t>(c) == label_col) {
        const long long v = std::strtoll(f.c_str(), &end, 10);
        if (f.empty() || *end != 0) fail(where + ": expected an integer class label, got '" + f + "'");
        d.labels.push_back(v);
        d.label_origin.push_back(where);
        continue;
      }
      const double v = std::strtod(f.c_str(), &end);
      if (f.empty() || *end != 0) fail(where + ": expected a number, got '" + f + "'");
      if (!std::isfinite(v)) fail(where + ": expected a finite number, got '" + f + "'");
      d.values.push_back(static_cast<float>(v));
    }
    ++samples;
  }
  if (samples == 0) fail(path + ": no data rows (csv_skip_rows " + std::to_string(cfg.csv_skip_rows) + ", csv_header " +
                         (cfg.csv_header ? "true" : "false") + ")");
  d.shape = {samples, static_cast<int64_t>(columns - 1)};
  return d;
}

// ---- NumPy ------------------------------------------------------------------------------------

struct NpyArray {
  std::string dtype;  // numpy descr without byte order: f4, f8, u1, i1, i2, i4, i8, u2, u4, u8
  std::vector<int64_t> shape;
  std::vector<double> values;
};

// Parses one .npy image (from a file or an .npz member); `name` names it in errors.
NpyArray parse_npy(const std::vector<uint8_t>& b, const std::string& name) {
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0)
    fail(name + ": not a NumPy .npy array (magic \\x93NUMPY missing)");
  const int major = b[6];
  size_t header_len = 0, pos = 0;
  if (major == 1) {
    header_len = b[8] | (size_t(b[9]) << 8), pos = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) fail(name + ": truncated .npy header");
    header_len = b[8] | (size_t(b[9]) << 8) | (size_t(b[10]) << 16) | (size_t(b[11]) << 24), pos = 12;
  } else {
    fail(name + ": unsupported .npy version " + std::to_string(major));
  }
  if (pos + header_len > b.size()) fail(name + ": truncated .npy header");
  const std::string h(b.begin() + static_cast<std::ptrdiff_t>(pos), b.begin() + static_cast<std::ptrdiff_t>(pos + header_len));
  pos += header_len;
  auto value_of = [&](const std::string& key) {
    const size_t k = h.find("'" + key + "'");
    if (k == std::string::npos) fail(name + ": .npy header has no '" + key + "'");
    size_t v = h.find(':', k) + 1;
    while (v < h.size() && h[v] == ' ') ++v;
    return v;
  };
  NpyArray a;
  size_t v = value_of("descr");
  const size_t q = h.find('\'', v + 1);
  std::string descr = h.substr(v + 1, q - v - 1);
  if (h.compare(value_of("fortran_order"), 4, "True") == 0)
    fail(name + ": Fortran-ordered array; save it C-contiguous (np.ascontiguousarray)");
  if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '|' || descr[0] == '=')) descr = descr.substr(1);
  static const std::map<std::string, size_t> sizes = {{"f4", 4}, {"f8", 8}, {"u1", 1}, {"i1", 1}, {"i2", 2},
                                                      {"u2", 2}, {"i4", 4}, {"u4", 4}, {"i8", 8}, {"u8", 8},
                                                      {"b1", 1}};
  const auto it = sizes.find(descr);
  if (it == sizes.end())
    fail(name + ": dtype '" + h.substr(v + 1, q - v - 1) +
         "' is not supported (expected little-endian uint8, int8, int16/32/64, float32 or float64)");
  a.dtype = descr;
  v = value_of("shape");
  const size_t close = h.find(')', v);
  std::string dims = h.substr(v + 1, close - v - 1);
  std::istringstream ds(dims);
  std::string tok;
  size_t count = 1;
  while (std::getline(ds, tok, ','))
    if (!trim(tok).empty()) a.shape.push_back(std::stoll(trim(tok))), count *= static_cast<size_t>(a.shape.back());
  if (a.shape.empty()) fail(name + ": a 0-dimensional array; expected (N, ...)");
  const size_t elem = it->second;
  if (b.size() - pos != count * elem)
    fail(name + ": shape (" + dims + ") of " + descr + " needs " + std::to_string(count * elem) + " data bytes, the file has " +
         std::to_string(b.size() - pos));
  a.values.resize(count);
  const uint8_t* p = b.data() + pos;
  for (size_t i = 0; i < count; ++i, p += elem) {
    double x = 0;
    if (descr == "f4") { float f; std::memcpy(&f, p, 4); x = f; }
    else if (descr == "f8") std::memcpy(&x, p, 8);
    else if (descr == "u1" || descr == "b1") x = *p;
    else if (descr == "i1") x = static_cast<int8_t>(*p);
    else if (descr == "i2") { int16_t t; std::memcpy(&t, p, 2); x = t; }
    else if (descr == "u2") { uint16_t t; std::memcpy(&t, p, 2); x = t; }
    else if (descr == "i4") { int32_t t; std::memcpy(&t, p, 4); x = t; }
    else if (descr == "u4") { uint32_t t; std::memcpy(&t, p, 4); x = t; }
    else if (descr == "i8") { int64_t t; std::memcpy(&t, p, 8); x = static_cast<double>(t); }
    else { uint64_t t; std::memcpy(&t, p, 8); x = static_cast<double>(t); }
    a.values[i] = x;
  }
  return a;
}

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

// The members of an .npz (a zip of .npy files, stored or deflated) by name without ".npy".
std::map<std::string, NpyArray> read_npz(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path + ": file not found");
  const std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::map<std::string, NpyArray> out;
  size_t pos = 0;
  while (pos + 30 <= b.size() && le32(b.data() + pos) == 0x04034b50) {  // local file header
    const uint16_t flags = le16(b.data() + pos + 6), method = le16(b.data() + pos + 8);
    uint64_t csize = le32(b.data() + pos + 18), usize = le32(b.data() + pos + 22);
    const uint16_t name_len = le16(b.data() + pos + 26), extra_len = le16(b.data() + pos + 28);
    if (pos + 30 + name_len + extra_len > b.size()) fail(path + ": truncated zip entry");
    std::string name(b.begin() + static_cast<std::ptrdiff_t>(pos + 30),
                     b.begin() + static_cast<std::ptrdiff_t>(pos + 30 + name_len));
    // zip64 sizes (numpy writes them for large members) live in the extra field
    for (size_t e = pos + 30 + name_len; e + 4 <= pos + 30 + name_len + extra_len;) {
      const uint16_t id = le16(b.data() + e), len = le16(b.data() + e + 2);
      if (id == 1 && len >= 16) {
        std::memcpy(&usize, b.data() + e + 4, 8);
        std::memcpy(&csize, b.data() + e + 12, 8);
      }
      e += 4 + len;
    }
    if (flags & 8) fail(path + ": member " + name + " uses a data descriptor; write it with numpy.savez");
    pos += 30 + name_len + extra_len;
    if (pos + csize > b.size()) fail(path + ": member " + name + " truncated");
    std::vector<uint8_t> data;
    if (method == 0) {
      data.assign(b.begin() + static_cast<std::ptrdiff_t>(pos), b.begin() + static_cast<std::ptrdiff_t>(pos + csize));
    } else if (method == 8) {
      data.resize(usize);
      z_stream z{};
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail(path + ": zlib init failed");
      z.next_in = const_cast<uint8_t*>(b.data() + pos);
      z.avail_in = static_cast<uInt>(csize);
      z.next_out = data.data();
      z.avail_out = static_cast<uInt>(usize);
      const int rc = inflate(&z, Z_FINISH);
      inflateEnd(&z);
      if (rc != Z_STREAM_END) fail(path + ": member " + name + ": corrupt deflate data");
    } else {
      fail(path + ": member " + name + ": zip compression method " + std::to_string(method) + " not supported");
    }
    pos += csize;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    out[name] = parse_npy(data, path + " member " + name);
  }
  if (out.empty()) fail(path + ": not an .npz file (no zip members found)");
  return out;
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> out;
  if (trim(text).empty()) return out;
  std::istringstream s(text);
  std::string n;
  while (std::getline(s, n, ',')) out.push_back(trim(n));
  return out;
}

// The class sub-folders of an image folder, sorted.
std::vector<std::string> class_folders(const std::string& dir) {
  if (!fs::is_directory(dir)) fail(dir + ": not a folder (dataset images expects one sub-folder per class)");
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  return classes;
}

// ---- image folders -----------------------------------------------------------------------------

struct Gray {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;
};

// Binary (P5) or text (P2) PGM with maxval <= 255.
Gray read_pgm(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  size_t pos = 0;
  auto token = [&]() {
    std::string t;
    while (pos < b.size()) {
      if (b[pos] == '#') {
        while (pos < b.size() && b[pos] != '\n') ++pos;
      } else if (std::isspace(b[pos])) {
        if (!t.empty()) break;
        ++pos;
      } else {
        t += static_cast<char>(b[pos++]);
      }
    }
    return t;
  };
  const std::string magic = token();
  if (magic != "P5" && magic != "P2") fail(path + ": not a PGM image (magic P5 or P2 expected, got '" + magic + "')");
  Gray g;
  char* end = nullptr;
  const std::string w = token(), h = token(), m = token();
  g.width = std::strtoll(w.c_str(), &end, 10);
  g.height = std::strtoll(h.c_str(), &end, 10);
  const long maxval = std::strtol(m.c_str(), &end, 10);
  if (g.width <= 0 || g.height <= 0 || g.width > 4096 || g.height > 4096)
    fail(path + ": PGM size '" + w + " " + h + "' is not a width and height in 1..4096");
  if (maxval <= 0 || maxval > 255) fail(path + ": PGM maxval " + m + " (expected 1..255: 8-bit grey)");
  const size_t n = static_cast<size_t>(g.width * g.height);
  g.pixels.resize(n);
  if (magic == "P5") {
    ++pos;  // the single whitespace after maxval
    if (b.size() - std::min(pos, b.size()) < n)
      fail(path + ": truncated: " + std::to_string(n) + " pixels expected, " + std::to_string(b.size() - std::min(pos, b.size())) + " bytes found");
    for (size_t i = 0; i < n; ++i) g.pixels[i] = static_cast<uint8_t>(b[pos + i] * 255 / maxval);
  } else {
    for (size_t i = 0; i < n; ++i) {
      const std::string t = token();
      const long v = std::strtol(t.c_str(), &end, 10);
      if (t.empty() || *end != 0 || v < 0 || v > maxval)
        fail(path + ": pixel " + std::to_string(i) + " is '" + t + "', expected 0.." + std::to_string(maxval));
      g.pixels[i] = static_cast<uint8_t>(v * 255 / maxval);
    }
  }
  return g;
}

// Any PNG, converted to 8-bit grey by libpng.
Gray read_png(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) fail(path + ": not a readable PNG (" + image.message + ")");
  image.format = PNG_FORMAT_GRAY;
  Gray g;
  g.width = image.width, g.height = image.height;
  g.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, g.pixels.data(), 0, nullptr))
    fail(path + ": corrupt PNG (" + std::string(image.message) + ")");
  return g;
}

bool has_extension(const fs::path& p, const char* ext) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ext;
}

// A folder with one sub-folder of .png / .pgm images per class. Classes are the sub-folder names
// (sorted), or class_names in that order; every image must have the size of the first.
RawData read_image_folder(const std::string& dir, const std::vector<std::string>& class_names,
                          std::vector<std::string>* found_names) {
  std::vector<std::string> classes = class_names.empty() ? class_folders(dir) : class_names;
  if (classes.size() < 2) fail(dir + ": " + std::to_string(classes.size()) + " class sub-folders; expected at least 2");
  if (found_names) *found_names = classes;
  RawData d;
  d.uint8_pixels = true;
  int64_t width = 0, height = 0;
  std::string first;
  for (size_t c = 0; c < classes.size(); ++c) {
    const fs::path sub = fs::path(dir) / classes[c];
    if (!fs::is_directory(sub)) fail(sub.string() + ": class folder missing (class_names lists '" + classes[c] + "')");
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(sub))
      if (e.is_regular_file() && (has_extension(e.path(), ".png") || has_extension(e.path(), ".pgm"))) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) fail(sub.string() + ": class '" + classes[c] + "' has no .png or .pgm images");
    for (const fs::path& f : files) {
      const Gray g = has_extension(f, ".png") ? read_png(f.string()) : read_pgm(f.string());
      if (first.empty()) width = g.width, height = g.height, first = f.string();
      if (g.width != width || g.height != height)
        fail(f.string() + ": image of " + std::to_string(g.width) + "x" + std::to_string(g.height) + " pixels; expected " +
             std::to_string(width) + "x" + std::to_string(height) + " like " + first);
      d.values.insert(d.values.end(), g.pixels.begin(), g.pixels.end());
      d.labels.push_back(static_cast<int64_t>(c));
      d.label_origin.push_back(f.string());
    }
  }
  d.shape = {static_cast<int64_t>(d.labels.size()), height, width};
  return d;
}

// Samples array -> RawData values/shape; labels array -> labels (integers checked).
RawData from_arrays(const NpyArray& x, const std::string& x_name, const NpyArray& y, const std::string& y_name) {
  RawData d;
  if (x.shape.size() != 2 && x.shape.size() != 3)
    fail(x_name + ": expected samples of shape (N, F) (vectors) or (N, H, W) (images), got " +
         std::to_string(x.shape.size()) + " dimensions");
  if (y.shape.size() != 1) fail(y_name + ": expected labels of shape (N,), got " + std::to_string(y.shape.size()) + " dimensions");
  if (x.shape[0] != y.shape[0])
    fail(x_name + " holds " + std::to_string(x.shape[0]) + " samples but " + y_name + " holds " +
         std::to_string(y.shape[0]) + " labels");
  d.shape = x.shape;
  d.uint8_pixels = x.dtype == "u1";
  const int64_t per = static_cast<int64_t>(x.values.size()) / std::max<int64_t>(x.shape[0], 1);
  d.values.reserve(x.values.size());
  for (size_t i = 0; i < x.values.size(); ++i) {
    if (!std::isfinite(x.values[i]))
      fail(x_name + ": sample " + std::to_string(static_cast<int64_t>(i) / per) + ", value " +
           std::to_string(static_cast<int64_t>(i) % per) + " is " + std::to_string(x.values[i]) +
           "; expected a finite number");
    d.values.push_back(static_cast<float>(x.values[i]));
  }
  for (size_t i = 0; i < y.values.size(); ++i) {
    const double v = y.values[i];
    if (!std::isfinite(v) || v != std::floor(v))
      fail(y_name + ": label " + std::to_string(i) + " is " + std::to_string(v) + "; expected an integer class label");
    d.labels.push_back(static_cast<int64_t>(v));
    d.label_origin.push_back(y_name + ": label " + std::to_string(i));
  }
  return d;
}

RawData read_npy_pair(const std::string& x_path, const std::string& y_path) {
  auto load = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) fail(p + ": file not found");
    return parse_npy(std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()), p);
  };
  return from_arrays(load(x_path), x_path, load(y_path), y_path);
}

RawData read_idx_generic(const std::string& x_path, const std::string& y_path) {
  const IdxArray x = read_idx(x_path), y = read_idx(y_path);
  NpyArray xa, ya;
  xa.dtype = ya.dtype = "u1";
  xa.shape = x.dims, ya.shape = y.dims;
  xa.values.assign(x.data.begin(), x.data.end());
  ya.values.assign(y.data.begin(), y.data.end());
  return from_arrays(xa, x_path, ya, y_path);
}

// The samples (and labels) of one split as configured; `train` picks data_train or data_test.
RawData read_split(const Config& cfg, bool train, std::map<std::string, NpyArray>* npz_cache) {
  const std::string& x = train ? cfg.data_train : cfg.data_test;
  const std::string& y = train ? cfg.data_train_labels : cfg.data_test_labels;
  const std::string key = train ? "data_train" : "data_test";
  if (cfg.dataset == "csv") return read_csv(x, cfg);
  if (cfg.dataset == "images") {
    // the test folder must hold the training folder's classes, in the same order
    std::vector<std::string> names = split_names(cfg.class_names);
    if (names.empty()) names = class_folders(cfg.data_train);
    return read_image_folder(x, names, nullptr);
  }
  if (cfg.dataset == "npz") {
    if (npz_cache->empty()) *npz_cache = read_npz(cfg.data_train);
    const std::string xn = train ? "x" : "x_test", yn = train ? "y" : "y_test";
    auto find = [&](const std::string& n) -> const NpyArray& {
      const auto it = npz_cache->find(n);
      if (it == npz_cache->end()) fail(cfg.data_train + ": no array named '" + n + "' (expected x, y and optionally x_test, y_test)");
      return it->second;
    };
    return from_arrays(find(xn), cfg.data_train + " array " + xn, find(yn), cfg.data_train + " array " + yn);
  }
  if (y.empty()) fail("dataset " + cfg.dataset + ": " + key + "_labels is empty; expected the labels file of " + x);
  return cfg.dataset == "npy" ? read_npy_pair(x, y) : read_idx_generic(x, y);
}

// ---- labels, split, tensors -------------------------------------------------------------------


// Checks labels against the class count (given, or max + 1).
int64_t check_labels(const RawData& d, int64_t classes, const std::string& source) {
  if (d.labels.empty()) fail(source + ": no samples");
  int64_t max_label = 0;
  for (size_t i = 0; i < d.labels.size(); ++i) {
    const int64_t l = d.labels[i];
    if (l < 0 || (classes > 0 && l >= classes) || l > 255)
      fail(d.label_origin[i] + ": label " + std::to_string(l) + " is outside 0.." +
           std::to_string(classes > 0 ? classes - 1 : 255) +
           (classes > 0 ? " (" + std::to_string(classes) + " classes)" : std::string(" (at most 256 classes)")));
    max_label = std::max(max_label, l);
  }
  return classes > 0 ? classes : max_label + 1;
}

void check_no_empty_class(const std::vector<int64_t>& labels, int64_t classes, const std::string& what) {
  std::vector<int64_t> count(static_cast<size_t>(classes), 0);
  for (int64_t l : labels) ++count[static_cast<size_t>(l)];
  for (int64_t c = 0; c < classes; ++c)
    if (count[static_cast<size_t>(c)] == 0)
      fail(what + ": class " + std::to_string(c) + " has no samples (labels must use every class 0.." +
           std::to_string(classes - 1) + "; set class_names to fix the class count)");
}

// Seeded stratified split: per class, round(fraction * count) samples (at least 1 of a class
// with 2 or more) go to the test set; both sets keep the file order.
void stratified_split(const std::vector<int64_t>& labels, int64_t classes, double fraction, uint64_t seed,
                      std::vector<int64_t>& train_idx, std::vector<int64_t>& test_idx) {
  std::mt19937_64 rng(seed);
  std::vector<char> is_test(labels.size(), 0);
  for (int64_t c = 0; c < classes; ++c) {
    std::vector<int64_t> members;
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] == c) members.push_back(static_cast<int64_t>(i));
    for (size_t i = members.size(); i > 1; --i) std::swap(members[i - 1], members[rng() % i]);  // Fisher-Yates
    int64_t k = std::llround(fraction * static_cast<double>(members.size()));
    if (members.size() >= 2) k = std::clamp<int64_t>(k, 1, static_cast<int64_t>(members.size()) - 1);
    else k = 0;
    for (int64_t j = 0; j < k; ++j) is_test[static_cast<size_t>(members[static_cast<size_t>(j)])] = 1;
  }
  for (size_t i = 0; i < labels.size(); ++i) (is_test[i] ? test_idx : train_idx).push_back(static_cast<int64_t>(i));
}

DataSplit to_split(const RawData& d, const std::vector<int64_t>& rows) {
  const int64_t per = static_cast<int64_t>(d.values.size()) / d.shape[0];
  std::vector<int64_t> shape = d.shape;
  shape[0] = static_cast<int64_t>(rows.size());
  torch::Tensor x = torch::empty(shape, torch::kFloat32);
  torch::Tensor y = torch::empty({shape[0]}, torch::kInt64);
  float* xp = x.data_ptr<float>();
  for (size_t r = 0; r < rows.size(); ++r) {
    std::copy_n(d.values.begin() + rows[r] * per, per, xp + static_cast<int64_t>(r) * per);
    y[static_cast<int64_t>(r)] = d.labels[static_cast<size_t>(rows[r])];
  }
  DataSplit s;
  s.labels = y;
  if (d.shape.size() == 3) {
    s.raw = x.unsqueeze(1);
    if (d.uint8_pixels) s.raw = s.raw.div(255.0f);
  } else {
    s.raw = x;
  }
  return s;
}

std::vector<int64_t> all_rows(const RawData& d) {
  std::vector<int64_t> r(static_cast<size_t>(d.shape[0]));
  for (size_t i = 0; i < r.size(); ++i) r[i] = static_cast<int64_t>(i);
  return r;
}

void apply_subset(DataSplit& s, int subset) {
  if (subset <= 0 || subset >= s.labels.size(0)) return;
  s.labels = s.labels.narrow(0, 0, subset).clone();
  s.raw = s.raw.narrow(0, 0, subset).clone();
  if (s.images.defined()) s.images = s.images.narrow(0, 0, subset).clone();
}

const std::vector<std::string> kFashionNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

std::string resolved_mode(const Config& cfg, bool images) {
  if (cfg.input_quantization != "auto") return cfg.input_quantization;
  return images ? "per_image" : "per_feature";
}

std::string describe(const DataInfo& info, const Config& cfg) {
  std::string d = info.images ? std::to_string(cfg.input_side) + "x" + std::to_string(cfg.input_side) + " image"
                              : std::to_string(info.inputs) + " features";
  if (info.quantizer.mode == "per_image") return d + ", int8 per sample: 127 / max|x| after (x - 0.1307) / 0.3081 (SPEC §2)";
  return d + ", int8 " + info.quantizer.mode + ": round((x - kInputOffset) * kInputScale) (bitnetmcu::quantize_features)";
}

}  // namespace

std::vector<std::string> class_names_of(const Config& cfg) {
  std::vector<std::string> names = split_names(cfg.class_names);
  if (names.empty()) {
    if (cfg.dataset == "FashionMNIST") return kFashionNames;
    for (int c = 0; c < cfg.num_classes(); ++c) names.push_back(std::to_string(c));
  }
  return names;
}

Dataset load_dataset(const Config& cfg) {
  Dataset ds;
  DataInfo& info = ds.info;
  if (cfg.is_builtin_dataset()) {
    ds.train = load_builtin_split(cfg, true);
    ds.test = load_builtin_split(cfg, false);
    info.images = true;
    info.inputs = int64_t{cfg.input_side} * cfg.input_side;
    info.num_classes = 10;
    Config c = cfg;
    c.classes = 10;
    info.class_names = class_names_of(c);
  } else {
    if (cfg.data_train.empty())
      fail("dataset " + cfg.dataset + ": data_train is empty; expected the training " + cfg.dataset + " file");
    std::map<std::string, NpyArray> npz;
    const RawData train = read_split(cfg, true, &npz);
    const bool separate_test = cfg.dataset == "npz" ? npz.count("x_test") > 0 : !cfg.data_test.empty();
    std::vector<std::string> names = split_names(cfg.class_names);
    if (cfg.dataset == "images" && names.empty()) names = class_folders(cfg.data_train);
    const std::string train_source = cfg.data_train;
    const int64_t classes = check_labels(train, static_cast<int64_t>(names.size()), train_source);
    check_no_empty_class(train.labels, classes, train_source);
    std::vector<int64_t> train_rows, test_rows;
    if (separate_test) {
      const RawData test = read_split(cfg, false, &npz);
      const std::string test_source = cfg.dataset == "npz" ? cfg.data_train + " array x_test" : cfg.data_test;
      check_labels(test, classes, test_source);
      std::vector<int64_t> a(train.shape.begin() + 1, train.shape.end()), b(test.shape.begin() + 1, test.shape.end());
      if (a != b)
        fail(test_source + ": samples of shape " + c10::str(c10::IntArrayRef(b)) + " but the training samples (" +
             train_source + ") have shape " + c10::str(c10::IntArrayRef(a)));
      ds.train = to_split(train, all_rows(train));
      ds.test = to_split(test, all_rows(test));
    } else {
      stratified_split(train.labels, classes, cfg.test_fraction, static_cast<uint64_t>(cfg.seed), train_rows, test_rows);
      ds.train = to_split(train, train_rows);
      ds.test = to_split(train, test_rows);
    }
    info.images = train.shape.size() == 3;
    info.num_classes = classes;
    if (classes < 2) fail(train_source + ": only one class; a classifier needs at least 2");
    for (int64_t c = 0; c < classes; ++c)
      info.class_names.push_back(names.empty() ? std::to_string(c) : names[static_cast<size_t>(c)]);
    if (info.images) {
      if (train.shape[1] < 4 || train.shape[2] < 4)
        fail(train_source + ": images of " + std::to_string(train.shape[1]) + "x" + std::to_string(train.shape[2]) +
             " pixels; expected at least 4x4");
      ds.train.images = downscale_normalize(ds.train.raw, cfg.input_side);
      ds.test.images = downscale_normalize(ds.test.raw, cfg.input_side);
      info.inputs = int64_t{cfg.input_side} * cfg.input_side;
    } else {
      info.inputs = train.shape[1];
      ds.train.images = ds.train.raw, ds.test.images = ds.test.raw;  // per_image quantizes these
    }
  }
  apply_subset(ds.train, cfg.train_subset);
  apply_subset(ds.test, cfg.test_subset);
  if (!info.images && cfg.is_cnn())
    fail("model CNNMNIST needs image data, but " + cfg.data_train + " holds feature vectors; use model FCMNIST");
  if (cfg.is_cnn() && cfg.input_side < 8) fail("model CNNMNIST needs input_side >= 8 (got " + std::to_string(cfg.input_side) + ")");
  const std::string mode = resolved_mode(cfg, info.images);
  info.quantizer = fit_input_quantizer(mode, info.images ? ds.train.images : ds.train.raw);
  if (mode != "per_image") {
    // the network sees exactly the integers the engine gets
    const torch::Tensor& train_source = info.images ? ds.train.images : ds.train.raw;
    const torch::Tensor& test_source = info.images ? ds.test.images : ds.test.raw;
    if (info.images) ds.train.raw = ds.train.images.flatten(1), ds.test.raw = ds.test.images.flatten(1);
    ds.train.images = quantize_features(train_source, info.quantizer).to(torch::kFloat32);
    ds.test.images = quantize_features(test_source, info.quantizer).to(torch::kFloat32);
  }
  info.description = describe(info, cfg);
  return ds;
}

void save_input_quantizer(Checkpoint& ckpt, const InputQuantizer& q) {
  if (q.mode == "per_image" || q.offset.empty()) return;
  ckpt.tensors["input/offset"] = torch::tensor(q.offset, torch::kFloat32);
  ckpt.tensors["input/scale"] = torch::tensor(q.scale, torch::kFloat32);
}

InputQuantizer load_input_quantizer(const Checkpoint& ckpt, const Config& cfg) {
  InputQuantizer q;
  q.mode = cfg.input_quantization == "auto" ? "per_image" : cfg.input_quantization;
  if (q.mode == "per_image") return q;
  const auto o = ckpt.tensors.find("input/offset"), s = ckpt.tensors.find("input/scale");
  if (o == ckpt.tensors.end() || s == ckpt.tensors.end())
    fail("checkpoint has input_quantization " + q.mode + " but no input/offset and input/scale entries");
  const torch::Tensor off = o->second.to(torch::kFloat32).contiguous(), sc = s->second.to(torch::kFloat32).contiguous();
  const int64_t expected = q.mode == "global" ? 1 : cfg.num_inputs();
  if (off.dim() != 1 || sc.dim() != 1 || off.size(0) != expected || sc.size(0) != expected)
    fail("checkpoint entries input/offset and input/scale must hold " + std::to_string(expected) + " values each (" +
         q.mode + "), they hold " + std::to_string(off.numel()) + " and " + std::to_string(sc.numel()));
  q.offset.assign(off.data_ptr<float>(), off.data_ptr<float>() + expected);
  q.scale.assign(sc.data_ptr<float>(), sc.data_ptr<float>() + expected);
  return q;
}

DataSplit load_split(const Config& cfg, bool train) {
  if (cfg.is_builtin_dataset() && (cfg.input_quantization == "auto" || cfg.input_quantization == "per_image"))
    return load_builtin_split(cfg, train);  // only the file that is needed
  Dataset ds = load_dataset(cfg);
  return train ? ds.train : ds.test;
}

void resolve_data_shape(Config& cfg, const DataInfo& info) {
  auto check = [](const char* key, int64_t have, int64_t data) {
    if (have > 0 && have != data)
      fail(std::string("configuration key '") + key + "' is " + std::to_string(have) + " but the data gives " +
           std::to_string(data));
  };
  check("input_features", cfg.input_features, info.inputs);
  check("classes", cfg.classes, info.num_classes);
  cfg.input_features = static_cast<int>(info.inputs);
  cfg.classes = static_cast<int>(info.num_classes);
  if (cfg.input_quantization == "auto") cfg.input_quantization = info.quantizer.mode;
  std::string names;
  for (const auto& n : info.class_names) {
    if (n.find(',') != std::string::npos) fail("class name '" + n + "' contains a comma");
    names += (names.empty() ? "" : ",") + n;
  }
  cfg.class_names = names;
}

}  // namespace bitnetmcu::train
