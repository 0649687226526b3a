// Your own data: CSV / NPY / NPZ / generic IDX readers, the stratified split, the feature input
// quantization, and one clear error per kind of bad data (file, row/column or index, expected).
#include "test_common.hpp"

#include "training/checkpoint.hpp"
#include "training/data.hpp"
#include "training/trainer.hpp"

#include <png.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace bitnetmcu::train;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("bitnetmcu_dataset_tests_" + std::to_string(getpid())) / name;
  fs::create_directories(d);
  return d;
}
void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
Config csv_config(const fs::path& file) {
  Config c;
  c.dataset = "csv";
  c.data_train = file.string();
  c.label_column = "label";
  return c;
}
// A .npy image of a C-ordered array (descr like "<f4"), header padded as numpy pads it.
std::string npy_bytes(const std::string& descr, const std::vector<int64_t>& shape, const void* data, size_t bytes) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += char(1), out += char(0), out += char(header.size() & 0xFF), out += char(header.size() >> 8);
  out += header;
  out.append(static_cast<const char*>(data), bytes);
  return out;
}
// A zip of stored (uncompressed) members, as numpy.savez writes it (no central directory needed).
std::string zip_stored(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string z;
  auto u16 = [&](uint16_t v) { z += char(v & 0xFF), z += char(v >> 8); };
  auto u32 = [&](uint32_t v) { u16(uint16_t(v & 0xFFFF)), u16(uint16_t(v >> 16)); };
  for (const auto& [name, data] : members) {
    u32(0x04034b50), u16(20), u16(0), u16(0), u16(0), u16(0), u32(0);
    u32(static_cast<uint32_t>(data.size())), u32(static_cast<uint32_t>(data.size()));
    u16(static_cast<uint16_t>(name.size())), u16(0);
    z += name + data;
  }
  u32(0x02014b50);  // start of a central directory: the reader stops here
  return z;
}

}  // namespace

TEST_CASE("quantize_features: the documented formula, per feature and global") {
  const float x[4] = {13.3f, 10.25f, 100.0f, std::nanf("")};
  const float offset[4] = {10, 10, 10, 10}, scale[4] = {2, 2, 2, 2};
  int8_t q[4];
  bitnetmcu::quantize_features(x, 4, offset, scale, 4, q);
  CHECK(int(q[0]) == 7);    // 3.3 * 2 = 6.6 -> 7
  CHECK(int(q[1]) == 0);    // 0.25 * 2 = 0.5 -> half to even 0
  CHECK(int(q[2]) == 127);  // 180 -> clamped
  CHECK(int(q[3]) == 0);    // NaN
  const float g_offset = -1, g_scale = 0.5f;
  const float y[2] = {-6.0f, 2.0f};  // (-5) * 0.5 = -2.5 -> -2, 3 * 0.5 = 1.5 -> 2
  bitnetmcu::quantize_features(y, 2, &g_offset, &g_scale, 1, q);
  CHECK(int(q[0]) == -2);
  CHECK(int(q[1]) == 2);
}

TEST_CASE("csv: header, named label column, stratified seeded split, per-feature quantizer") {
  const fs::path d = temp_dir("csv_good");
  std::string text = "a, b ,label\n";
  for (int i = 0; i < 30; ++i) text += std::to_string(i) + "," + std::to_string(100 + 2 * i) + "," + std::to_string(i % 3) + "\n";
  write(d / "data.csv", text);
  Config c = csv_config(d / "data.csv");
  c.test_fraction = 0.2;
  c.model = "FCMNIST";
  const Dataset ds = load_dataset(c);
  CHECK_FALSE(ds.info.images);
  CHECK(ds.info.inputs == 2);
  CHECK(ds.info.num_classes == 3);
  CHECK(ds.info.class_names == std::vector<std::string>{"0", "1", "2"});
  CHECK(ds.train.labels.size(0) == 24);  // 2 of each class's 10 held out
  CHECK(ds.test.labels.size(0) == 6);
  CHECK(torch::bincount(ds.test.labels).equal(torch::tensor({2, 2, 2}, torch::kInt64)));
  // Range of the training split: a in [lo, hi] of the kept rows; b = 100 + 2a.
  const float a_lo = ds.train.raw.select(1, 0).min().item<float>(), a_hi = ds.train.raw.select(1, 0).max().item<float>();
  REQUIRE(ds.info.quantizer.mode == "per_feature");
  CHECK(ds.info.quantizer.offset[0] == Approx((a_lo + a_hi) / 2));
  CHECK(ds.info.quantizer.scale[0] == Approx(127.0 / ((a_hi - a_lo) / 2)));
  CHECK(ds.info.quantizer.offset[1] == Approx(100 + (a_lo + a_hi)));
  // The extremes of the training set map to -127 and 127.
  CHECK(ds.train.images.min().item<float>() == -127);
  CHECK(ds.train.images.max().item<float>() == 127);
  // The same seed gives the same split; another seed another one.
  const Dataset again = load_dataset(c);
  CHECK(again.test.raw.equal(ds.test.raw));
  c.seed = 2;
  CHECK_FALSE(load_dataset(c).test.raw.equal(ds.test.raw));
  // global: one offset/scale over all values
  c.input_quantization = "global";
  const Dataset g = load_dataset(c);
  CHECK(g.info.quantizer.offset.size() == 1);
  // resolve_data_shape records what the data says, and refuses a contradiction
  Config r = c;
  resolve_data_shape(r, g.info);
  CHECK(r.input_features == 2);
  CHECK(r.classes == 3);
  CHECK(r.class_names == "0,1,2");
  r.input_features = 5;
  CHECK_THAT(error_of([&] { resolve_data_shape(r, g.info); }), Catch::Contains("'input_features' is 5 but the data gives 2"));
}

TEST_CASE("csv: sklearn's bundled file layout (summary row, no header, label last, names given)") {
  const fs::path d = temp_dir("csv_sklearn");
  write(d / "s.csv", "4,2,neg,pos\n1.5,2,0\n2.5,3,1\n3.5,1,0\n0.5,4,1\n");
  Config c = csv_config(d / "s.csv");
  c.csv_skip_rows = 1, c.csv_header = false, c.label_column = "-1", c.class_names = "neg,pos";
  c.data_test = (d / "s.csv").string();  // given test file: no split
  const Dataset ds = load_dataset(c);
  CHECK(ds.train.labels.size(0) == 4);
  CHECK(ds.info.class_names == std::vector<std::string>{"neg", "pos"});
  CHECK(ds.train.raw[3][0].item<float>() == 0.5f);
}

TEST_CASE("bad data: each kind gets an error naming file, place and what was expected") {
  const fs::path d = temp_dir("csv_bad");
  auto fails = [&](const std::string& name, const std::string& text, const std::function<void(Config&)>& tweak = {}) {
    write(d / name, text);
    Config c = csv_config(d / name);
    if (tweak) tweak(c);
    return error_of([&] { load_dataset(c); });
  };
  const std::string f = (d / "x.csv").string();
  CHECK_THAT(fails("x.csv", "a,b,label\n1,2,0\n3,4\n5,6,1\n"),
             Catch::Contains(f + ":3: expected 3 fields (as the header), got 2"));
  CHECK_THAT(fails("x.csv", "a,b,label\n1,2,0\n3,abc,1\n"),
             Catch::Contains(f + ":3, column 2 ('b'): expected a number, got 'abc'"));
  CHECK_THAT(fails("x.csv", "a,b,label\n1,2,0\nnan,4,1\n"),
             Catch::Contains(f + ":3, column 1 ('a'): expected a finite number, got 'nan'"));
  CHECK_THAT(fails("x.csv", "a,b,label\n1,2,0\n1,inf,1\n"), Catch::Contains("expected a finite number, got 'inf'"));
  CHECK_THAT(fails("x.csv", "a,b,label\n1,2,0\n3,4,1.5\n"),
             Catch::Contains(f + ":3, column 3 ('label'): expected an integer class label, got '1.5'"));
  CHECK_THAT(fails("x.csv", "a,b,label\n1,2,0\n3,4,5\n", [](Config& c) { c.class_names = "x,y,z"; }),
             Catch::Contains(f + ":3, column 3 ('label'): label 5 is outside 0..2 (3 classes)"));
  CHECK_THAT(fails("x.csv", "a,b,label\n1,2,0\n3,4,-1\n"), Catch::Contains("label -1 is outside"));
  CHECK_THAT(fails("x.csv", "a,b,label\n1,2,0\n3,4,2\n5,6,2\n"),
             Catch::Contains(f + ": class 1 has no samples"));
  CHECK_THAT(fails("x.csv", "a,b,cls\n1,2,0\n"), Catch::Contains("no column named 'label'") && Catch::Contains("a, b, cls"));
  CHECK_THAT(fails("x.csv", "a,b,label\n"), Catch::Contains(f + ": no data rows"));
  CHECK_THAT(error_of([&] { Config c = csv_config(d / "missing.csv"); load_dataset(c); }),
             Catch::Contains("missing.csv: file not found"));
  CHECK_THAT(error_of([&] { Config c; c.dataset = "csv"; load_dataset(c); }), Catch::Contains("data_train is empty"));
  CHECK_THAT(fails("x.csv", "a,b,label\n1,2,0\n3,4,1\n", [](Config& c) { c.model = "CNNMNIST"; }),
             Catch::Contains("CNNMNIST needs image data"));
}

TEST_CASE("npy and npz: vectors, labels, and their errors") {
  const fs::path d = temp_dir("npy");
  std::vector<float> x(6 * 3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f * static_cast<float>(i);
  const std::vector<int64_t> y = {0, 1, 0, 1, 0, 1};
  write(d / "x.npy", npy_bytes("<f4", {6, 3}, x.data(), x.size() * 4));
  write(d / "y.npy", npy_bytes("<i8", {6}, y.data(), y.size() * 8));
  Config c;
  c.dataset = "npy", c.data_train = (d / "x.npy").string(), c.data_train_labels = (d / "y.npy").string();
  c.data_test = c.data_train, c.data_test_labels = c.data_train_labels;
  const Dataset ds = load_dataset(c);
  CHECK(ds.train.raw.sizes() == torch::IntArrayRef({6, 3}));
  CHECK(ds.train.raw[5][2].item<float>() == 8.5f);
  CHECK(ds.info.num_classes == 2);

  const std::vector<int64_t> y5 = {0, 1, 0, 1, 0};
  write(d / "y5.npy", npy_bytes("<i8", {5}, y5.data(), y5.size() * 8));
  c.data_train_labels = (d / "y5.npy").string();
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains("x.npy holds 6 samples but") && Catch::Contains("y5.npy holds 5 labels"));
  std::vector<float> bad = x;
  bad[7] = std::numeric_limits<float>::infinity();
  write(d / "bad.npy", npy_bytes("<f4", {6, 3}, bad.data(), bad.size() * 4));
  c.data_train = (d / "bad.npy").string(), c.data_train_labels = (d / "y.npy").string();
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains("bad.npy: sample 2, value 1 is inf; expected a finite number"));
  write(d / "c16.npy", npy_bytes("<c8", {6, 3}, x.data(), x.size() * 4));
  c.data_train = (d / "c16.npy").string();
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains("dtype '<c8' is not supported"));
  write(d / "short.npy", npy_bytes("<f4", {6, 3}, x.data(), 40));
  c.data_train = (d / "short.npy").string();
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains("needs 72 data bytes, the file has 40"));

  // npz with x, y, x_test, y_test (uint8 images 8x8: resized to input_side)
  std::vector<uint8_t> img(4 * 8 * 8);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>(i * 5);
  const std::vector<uint8_t> labels = {0, 1, 1, 0};
  const std::string xi = npy_bytes("|u1", {4, 8, 8}, img.data(), img.size());
  const std::string yi = npy_bytes("|u1", {4}, labels.data(), labels.size());
  const std::string xt = npy_bytes("|u1", {2, 8, 6}, img.data(), 2 * 8 * 6);
  const std::string yt = npy_bytes("|u1", {2}, labels.data(), 2);
  write(d / "d.npz", zip_stored({{"x.npy", xi}, {"y.npy", yi}, {"x_test.npy", xi}, {"y_test.npy", yi}}));
  Config z;
  z.dataset = "npz", z.data_train = (d / "d.npz").string(), z.input_side = 4;
  const Dataset zd = load_dataset(z);
  CHECK(zd.info.images);
  CHECK(zd.train.images.sizes() == torch::IntArrayRef({4, 1, 4, 4}));
  CHECK(zd.train.raw[0][0][0][1].item<float>() == Approx(5 / 255.0));
  CHECK(zd.info.quantizer.mode == "per_image");
  write(d / "m.npz", zip_stored({{"x.npy", xi}, {"y.npy", yi}, {"x_test.npy", xt}, {"y_test.npy", yt}}));
  z.data_train = (d / "m.npz").string();
  CHECK_THAT(error_of([&] { load_dataset(z); }),
             Catch::Contains("m.npz array x_test: samples of shape [8, 6] but the training samples") &&
                 Catch::Contains("have shape [8, 8]"));
  write(d / "n.npz", zip_stored({{"x.npy", xi}}));
  z.data_train = (d / "n.npz").string();
  CHECK_THAT(error_of([&] { load_dataset(z); }), Catch::Contains("no array named 'y'"));
}

TEST_CASE("idx: a generic pair of vectors, labels checked") {
  const fs::path d = temp_dir("idx");
  auto idx = [](std::vector<uint32_t> dims, const std::vector<uint8_t>& data) {
    std::string b = {0, 0, 8, static_cast<char>(dims.size())};
    for (uint32_t v : dims) b += {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    b.append(data.begin(), data.end());
    return b;
  };
  write(d / "x", idx({4, 5}, std::vector<uint8_t>(20, 7)));
  write(d / "y", idx({4}, {0, 1, 2, 0}));
  Config c;
  c.dataset = "idx", c.data_train = (d / "x").string(), c.data_train_labels = (d / "y").string();
  c.class_names = "a,b";
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains((d / "y").string() + ": label 2: label 2 is outside 0..1"));
  c.class_names = "";
  c.data_test = c.data_train, c.data_test_labels = c.data_train_labels;
  const Dataset ds = load_dataset(c);
  CHECK(ds.info.inputs == 5);
  CHECK(ds.info.num_classes == 3);
  CHECK(ds.info.quantizer.scale[0] == 1.0f);  // constant feature: maps to 0
  CHECK(ds.train.images.abs().sum().item<float>() == 0);
}

TEST_CASE("training on a csv: shape and quantizer recorded in the checkpoint") {
  const fs::path d = temp_dir("csv_train");
  std::string text = "f0,f1,f2,label\n";
  for (int i = 0; i < 90; ++i) {
    const int cls = i % 3;
    text += std::to_string(1000 * cls + i) + "," + std::to_string(0.01 * (i % 7)) + "," + std::to_string(-5 * cls) + "," +
            std::to_string(cls) + "\n";
  }
  write(d / "t.csv", text);
  Config c = csv_config(d / "t.csv");
  c.num_epochs = 40, c.batch_size = 8, c.learning_rate = 0.005, c.network_width1 = 8, c.network_width2 = 8;
  c.network_width3 = 0;
  c.output_dir = d.string(), c.num_threads = 1, c.class_names = "low,mid,high";
  TrainOptions o;
  std::ostringstream log;
  o.out = &log, o.progress_bar = false;
  const TrainResult r = train(c, o);
  CHECK_THAT(log.str(), Catch::Contains("augmentation needs images"));
  const Checkpoint ck = load_checkpoint(r.checkpoint_path);
  const Config saved = config_from_yaml_text(ck.config_yaml, "saved");
  CHECK(saved.input_features == 3);
  CHECK(saved.classes == 3);
  CHECK(saved.class_names == "low,mid,high");
  CHECK(saved.input_quantization == "per_feature");
  CHECK_FALSE(saved.augmentation);
  REQUIRE(ck.tensors.count("input/offset"));
  CHECK(ck.tensors.at("input/scale").numel() == 3);
  const InputQuantizer q = load_input_quantizer(ck, saved);
  CHECK(q.offset.size() == 3);
  CHECK(r.test_accuracy > 0.9);  // f0 and f2 separate the classes
}

TEST_CASE("images: a folder of PNG / PGM per class; sizes, empty classes and bad files are errors") {
  const fs::path d = temp_dir("images");
  const fs::path train = d / "train";
  fs::create_directories(train / "cat"), fs::create_directories(train / "dog");
  // 6x4 images: P5, P2 and PNG (written by libpng)
  std::string p5 = "P5\n# a comment\n6 4\n255\n";
  for (int i = 0; i < 24; ++i) p5 += static_cast<char>(i * 10);
  write(train / "cat" / "a.pgm", p5);
  std::string p2 = "P2 6 4 15\n";
  for (int i = 0; i < 24; ++i) p2 += std::to_string(i % 16) + " ";
  write(train / "cat" / "b.PGM", p2);
  std::vector<uint8_t> px(24);
  for (int i = 0; i < 24; ++i) px[static_cast<size_t>(i)] = static_cast<uint8_t>(255 - i);
  png_image png{};
  png.version = PNG_IMAGE_VERSION, png.width = 6, png.height = 4, png.format = PNG_FORMAT_GRAY;
  REQUIRE(png_image_write_to_file(&png, (train / "dog" / "c.png").c_str(), 0, px.data(), 0, nullptr));
  REQUIRE(png_image_write_to_file(&png, (train / "dog" / "d.png").c_str(), 0, px.data(), 0, nullptr));
  write(train / "dog" / "notes.txt", "ignored");
  Config c;
  c.dataset = "images", c.data_train = train.string(), c.data_test = train.string(), c.input_side = 4;
  const Dataset ds = load_dataset(c);
  CHECK(ds.info.images);
  CHECK(ds.info.class_names == std::vector<std::string>{"cat", "dog"});
  CHECK(ds.train.raw.sizes() == torch::IntArrayRef({4, 1, 4, 6}));
  CHECK(ds.train.images.sizes() == torch::IntArrayRef({4, 1, 4, 4}));
  CHECK(ds.train.labels.equal(torch::tensor({0, 0, 1, 1}, torch::kInt64)));
  CHECK(ds.train.raw[0][0][0][1].item<float>() == Approx(10 / 255.0));
  CHECK(ds.train.raw[1][0][0][3].item<float>() == Approx(3 * 17 / 255.0));  // P2 maxval 15 -> x * 255 / 15
  CHECK(ds.train.raw[2][0][0][1].item<float>() == Approx(254 / 255.0));
  Config r = c;
  resolve_data_shape(r, ds.info);
  CHECK(r.class_names == "cat,dog");

  std::string big = "P5 5 4 255\n" + std::string(20, 'x');
  write(train / "dog" / "e.pgm", big);
  CHECK_THAT(error_of([&] { load_dataset(c); }),
             Catch::Contains((train / "dog" / "e.pgm").string() + ": image of 5x4 pixels; expected 6x4 like " +
                             (train / "cat" / "a.pgm").string()));
  write(train / "dog" / "e.pgm", "P5 6 4 255\nshort");
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains("e.pgm: truncated: 24 pixels expected, 5 bytes found"));
  write(train / "dog" / "e.pgm", "P6 6 4 255\n");
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains("e.pgm: not a PGM image (magic P5 or P2 expected, got 'P6')"));
  write(train / "dog" / "e.png", "not a png");
  fs::remove(train / "dog" / "e.pgm");
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains("e.png: not a readable PNG"));
  fs::remove(train / "dog" / "e.png");
  fs::create_directories(train / "eel");
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains((train / "eel").string() + ": class 'eel' has no .png or .pgm images"));
  c.class_names = "cat,dog,fox";
  CHECK_THAT(error_of([&] { load_dataset(c); }), Catch::Contains("fox: class folder missing"));
}
