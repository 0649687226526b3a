// IDX reader (raw, gzip, truncated, mismatched, foreign), the downscale against Pillow's
// values, augmentation, and the checkpoint container.
#include "test_common.hpp"

#include "training/checkpoint.hpp"
#include "training/data.hpp"
#include "training/models.hpp"

#include <torch/torch.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace bitnetmcu::train;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("bitnetmcu_training_tests_" + std::to_string(getpid())) / name;
  fs::create_directories(d);
  return d;
}
std::string idx_bytes(std::vector<uint32_t> dims, const std::vector<uint8_t>& data) {
  std::string b = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims) b += {char(d >> 24), char(d >> 16), char(d >> 8), char(d)};
  b.append(data.begin(), data.end());
  return b;
}
void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }
void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}
std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
std::vector<uint8_t> pixels(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7);
  return v;
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("IDX: good raw and gzip files give the same split") {
  const fs::path d = temp_dir("idx_good");
  const std::string images = idx_bytes({3, 28, 28}, pixels(3 * 784)), labels = idx_bytes({3}, {7, 0, 9});
  write(d / "img", images), write(d / "lab", labels);
  write_gz(d / "img.gz", images), write_gz(d / "lab.gz", labels);
  const DataSplit raw = load_idx_pair((d / "img").string(), (d / "lab").string());
  const DataSplit gz = load_idx_pair((d / "img.gz").string(), (d / "lab.gz").string());
  CHECK(raw.images.sizes() == torch::IntArrayRef({3, 1, 16, 16}));
  CHECK(raw.raw.sizes() == torch::IntArrayRef({3, 1, 28, 28}));
  CHECK(torch::equal(raw.labels, torch::tensor({7, 0, 9}, torch::kInt64)));
  CHECK(torch::equal(raw.images, gz.images));
  CHECK(raw.raw[0][0][0][1].item<float>() == Approx(7 / 255.0));
}

TEST_CASE("IDX: truncated, trailing, foreign, mismatched and missing files are named") {
  const fs::path d = temp_dir("idx_bad");
  const std::string images = idx_bytes({3, 28, 28}, pixels(3 * 784));
  write(d / "short", images.substr(0, images.size() - 10));
  CHECK_THAT(error_of([&] { read_idx((d / "short").string()); }), Catch::Contains("short") && Catch::Contains("truncated"));
  write_gz(d / "short.gz", images.substr(0, 100));
  CHECK_THAT(error_of([&] { read_idx((d / "short.gz").string()); }), Catch::Contains("truncated"));
  write(d / "cut.gz", read(d / "short.gz").substr(0, 30));  // a gzip stream cut short
  CHECK_THAT(error_of([&] { read_idx((d / "cut.gz").string()); }), Catch::Contains("cut.gz"));
  write(d / "long", images + "xyz");
  CHECK_THAT(error_of([&] { read_idx((d / "long").string()); }), Catch::Contains("3 unexpected bytes"));
  write(d / "foreign", "PK\x03\x04 not idx at all");
  CHECK_THAT(error_of([&] { read_idx((d / "foreign").string()); }), Catch::Contains("not an unsigned-byte IDX"));
  CHECK_THAT(error_of([&] { read_idx((d / "missing").string()); }), Catch::Contains("missing") && Catch::Contains("not found"));
  write(d / "img", images), write(d / "lab2", idx_bytes({2}, {1, 2}));
  CHECK_THAT(error_of([&] { load_idx_pair((d / "img").string(), (d / "lab2").string()); }),
             Catch::Contains("3 images") && Catch::Contains("2 labels"));
  write(d / "img14", idx_bytes({1, 14, 14}, pixels(196)));
  CHECK_THAT(error_of([&] { load_idx_pair((d / "img14").string(), (d / "lab2").string()); }), Catch::Contains("28x28"));
  Config cfg;
  cfg.data_dir = (d / "nothing").string();
  CHECK_THAT(error_of([&] { load_split(cfg, true); }), Catch::Contains("train-images-idx3-ubyte") && Catch::Contains("setup.sh"));
}

TEST_CASE("downscale 28->16 matches Pillow's BILINEAR resize within 1/255") {
  const std::string bytes = read(std::string(BITNETMCU_SOURCE_DIR) + "/tests/training/fixtures/pil_resize_28to16.bin");
  REQUIRE(bytes.substr(0, 8) == "PILRSZ1\n");
  uint32_t count;
  std::memcpy(&count, bytes.data() + 8, 4);
  REQUIRE(bytes.size() == 12 + count * (784 + 256));
  const torch::Tensor r = resize_matrix(28, 16);
  CHECK(torch::allclose(r.sum(1), torch::ones({16})));
  double worst = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const char* p = bytes.data() + 12 + i * (784 + 256);
    const torch::Tensor in = torch::from_blob(const_cast<char*>(p), {28, 28}, torch::kUInt8).to(torch::kFloat32);
    const torch::Tensor pil = torch::from_blob(const_cast<char*>(p + 784), {16, 16}, torch::kUInt8).to(torch::kFloat32);
    const torch::Tensor ours = torch::matmul(torch::matmul(r, in), r.t());
    worst = std::max(worst, (ours - pil).abs().max().item<double>());
    // the full pipeline: normalized values agree after undoing the normalization
    const torch::Tensor norm = downscale_normalize(in.div(255).reshape({1, 1, 28, 28}));
    CHECK(torch::allclose(norm.reshape({16, 16}) * kMnistStd + kMnistMean, ours / 255, 1e-5, 1e-5));
  }
  INFO("largest difference " << worst << " / 255");
  CHECK(worst <= 1.0 + 1e-4);
}

TEST_CASE("augmentation: the affine sampling grid loop equals the tensor expression, value for value") {
  torch::manual_seed(12);
  const int64_t n = 300, size = 28;
  const torch::Tensor angle = (torch::rand({n}) * 2 - 1) * 0.35;
  const torch::Tensor inv_scale = 1.0 / (0.9 + 0.2 * torch::rand({n}));
  const torch::Tensor c = torch::cos(angle) * inv_scale, s = torch::sin(angle) * inv_scale;
  const torch::Tensor t = torch::round((torch::rand({n, 2}) * 2 - 1) * 2.8) * (2.0 / 28);
  const torch::Tensor tx = t.select(1, 0), ty = t.select(1, 1);  // strided views, as in the Augmenter
  const torch::Tensor mirror = 1 - 2 * (torch::rand({n}) < 0.5).to(torch::kFloat32);
  const torch::Tensor coord = (torch::arange(size, torch::kFloat32) * 2 + 1) / static_cast<double>(size) - 1;
  auto per_image = [n](const torch::Tensor& v) { return v.view({n, 1, 1}); };
  const torch::Tensor gx = coord.view({1, 1, size}).expand({n, size, size}) * per_image(mirror);
  const torch::Tensor gy = coord.view({1, size, 1}).expand({n, size, size});
  const torch::Tensor expected =
      torch::stack({per_image(c) * gx + per_image(s) * gy - per_image(c * tx + s * ty),
                    per_image(-s) * gx + per_image(c) * gy + per_image(s * tx - c * ty)},
                   3);
  const torch::Tensor grid = Augmenter::affine_grid(c, s, tx, ty, mirror, coord);
  REQUIRE(grid.sizes() == expected.sizes());
  CHECK(torch::equal(grid, expected));
  // the Augmenter warps in parts of 2048 images: the downscale of a part equals its rows of the
  // whole batch's downscale
  const torch::Tensor images = torch::rand({5000, 1, 28, 28});
  const torch::Tensor whole = downscale_normalize(images);
  CHECK(torch::equal(torch::cat({downscale_normalize(images.narrow(0, 0, 2048)),
                                 downscale_normalize(images.narrow(0, 2048, 2048)),
                                 downscale_normalize(images.narrow(0, 4096, 904))}),
                     whole));
}

TEST_CASE("augmentation: batched, seeded, shapes kept; elastic changes images") {
  Config cfg;
  torch::manual_seed(0);
  const torch::Tensor raw = torch::rand({64, 1, 28, 28}).pow(4);
  const Augmenter plain(cfg);
  torch::manual_seed(1);
  const torch::Tensor a = plain(raw);
  torch::manual_seed(1);
  const torch::Tensor b = plain(raw);
  CHECK(a.sizes() == torch::IntArrayRef({64, 1, 16, 16}));
  CHECK(torch::equal(a, b));
  CHECK(!torch::equal(a, downscale_normalize(raw)));
  // rotation, shift <= 10 % and scale 0.9-1.1 keep a centred blob's mass (ink) roughly unchanged
  torch::Tensor blob = torch::zeros({64, 1, 28, 28});
  blob.narrow(2, 10, 8).narrow(3, 10, 8).fill_(1.0f);
  const torch::Tensor ink = (plain(blob) * kMnistStd + kMnistMean).sum({1, 2, 3}) / (64.0 * 256.0 / 784.0);
  CHECK(ink.min().item<double>() > 0.75);
  CHECK(ink.max().item<double>() < 1.3);
  cfg.rotation1 = cfg.rotation2 = 0;
  // hflip 1: every image mirrored. A blob in the left half lands in the right half.
  {
    Config flip = cfg;
    flip.augmentation_hflip = 1;
    torch::Tensor left = torch::zeros({8, 1, 28, 28});
    left.narrow(2, 10, 8).narrow(3, 2, 8).fill_(1.0f);
    torch::manual_seed(3);
    const torch::Tensor m = Augmenter(flip)(left) * kMnistStd + kMnistMean;  // ink in [0,1]
    const double left_ink = m.narrow(3, 0, 8).sum().item<double>(), right_ink = m.narrow(3, 8, 8).sum().item<double>();
    CHECK(right_ink > 4 * left_ink);
    flip.augmentation_hflip = 0;
    torch::manual_seed(3);
    const torch::Tensor k = Augmenter(flip)(left) * kMnistStd + kMnistMean;
    CHECK(k.narrow(3, 0, 8).sum().item<double>() > 4 * k.narrow(3, 8, 8).sum().item<double>());
  }
  cfg.elastictransformprobability = 1;
  torch::manual_seed(1);
  const torch::Tensor e = Augmenter(cfg)(raw);
  CHECK(torch::isfinite(e).all().item<bool>());
  CHECK(!torch::equal(e, a));
}

TEST_CASE("MNIST test split: label counts of SPEC §2 (needs data/mnist)") {
  Config cfg;
  cfg.data_dir = BITNETMCU_DATA_DIR;
  if (!fs::exists(fs::path(cfg.data_dir) / "mnist")) {
    WARN("data/mnist missing: run scripts/setup.sh");
    return;
  }
  const DataSplit test = load_split(cfg, false);
  CHECK(torch::equal(torch::bincount(test.labels), torch::tensor({980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}, torch::kInt64)));
  CHECK(test.images.mean().item<double>() == Approx(0.0).margin(0.1));  // normalized
}

TEST_CASE("checkpoint meta: text format, old files' lines, and errors naming the line") {
  CheckpointMeta m;
  m.creator = "bitnetmcu-train (C++, LibTorch 1.13.0)";
  m.epochs_done = 60;
  m.complete = true;
  m.train_seconds = 204.38;
  m.test_accuracy = 0.9904;
  m.test_loss = 0.0304996;
  // the layout every shipped checkpoint has (modeldata/zoo), byte for byte
  const std::string text =
      "creator: bitnetmcu-train (C++, LibTorch 1.13.0)\nepochs_done: 60\ncomplete: true\ntrain_seconds: 204.38\n"
      "test_accuracy: 0.9904\ntest_loss: 0.0304996\n";
  CHECK(meta_to_text(m) == text);
  const CheckpointMeta back = meta_from_text(text, "x.pt");
  CHECK(meta_to_text(back) == text);
  CHECK(!back.interrupted);
  m.interrupted = true;
  CHECK(meta_from_text(meta_to_text(m), "x.pt").interrupted);
  CHECK(meta_from_text("", "x.pt").epochs_done == 0);  // absent keys: defaults
  CHECK(meta_from_text("creator: python/train.py\nepochs_done: 2\ncomplete: true\n", "x.pt").complete);
  CHECK_THROWS_WITH(meta_from_text("creator: a\nepochs_done: three\n", "x.pt"),
                    Catch::Contains("x.pt (meta line 2)") && Catch::Contains("epochs_done"));
  CHECK_THROWS_WITH(meta_from_text("complete: maybe\n", "x.pt"), Catch::Contains("true or false"));
  CHECK_THROWS_WITH(meta_from_text("no colon here\n", "x.pt"), Catch::Contains("expected 'key: value'"));
}

TEST_CASE("checkpoint: round trip, atomic write, and errors on damaged or foreign files") {
  const fs::path d = temp_dir("ckpt");
  Checkpoint ck;
  ck.config_yaml = "model: \"FCMNIST\"\n";
  ck.meta.creator = "test";
  ck.meta.epochs_done = 3;
  ck.meta.train_seconds = 0.1;  // not exact in binary: written in its shortest exact form
  ck.meta.other = {{"note", "kept"}};
  ck.metrics_csv = "epoch,lr\n1,0.001\n";
  ck.tensors["model/fc1.weight"] = torch::randn({4, 3});
  ck.tensors["clip/fc1"] = torch::tensor({0.5f});
  ck.tensors["optim/step"] = torch::tensor({42}, torch::kInt64);
  ck.tensors["empty"] = torch::zeros({0, 5});
  ck.other_text["note"] = "x";
  const std::string path = (d / "a.pt").string();
  save_checkpoint_atomic(path, ck);
  CHECK(std::distance(fs::directory_iterator(d), fs::directory_iterator()) == 1);  // no temp left
  const Checkpoint back = load_checkpoint(path);
  CHECK(back.config_yaml == ck.config_yaml);
  CHECK(back.meta.epochs_done == 3);
  CHECK(back.meta.creator == "test");
  CHECK(back.meta.train_seconds == 0.1);
  CHECK(back.meta.other == ck.meta.other);
  CHECK(meta_to_text(back.meta) == meta_to_text(ck.meta));
  CHECK(back.metrics_csv == ck.metrics_csv);
  CHECK(back.other_text.at("note") == "x");
  REQUIRE(back.tensors.size() == 4);
  CHECK(torch::equal(back.tensors.at("model/fc1.weight"), ck.tensors.at("model/fc1.weight")));
  CHECK(back.tensors.at("optim/step").item<int64_t>() == 42);
  CHECK(back.tensors.at("empty").sizes() == torch::IntArrayRef({0, 5}));

  const std::string bytes = read(path);
  for (size_t cut : {size_t{3}, size_t{12}, size_t{20}, bytes.size() / 2, bytes.size() - 5, bytes.size() - 1}) {
    INFO("cut at " << cut);
    write(d / "cut.pt", bytes.substr(0, cut));
    const std::string err = error_of([&] { load_checkpoint((d / "cut.pt").string()); });
    CHECK_THAT(err, Catch::Contains("cut.pt"));
    CHECK_THAT(err, Catch::Contains("truncated") || Catch::Contains("not a bitnetmcu checkpoint") || Catch::Contains("CRC32"));
  }
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  write(d / "flip.pt", flipped);
  CHECK_THAT(error_of([&] { load_checkpoint((d / "flip.pt").string()); }), Catch::Contains("CRC32 mismatch") || Catch::Contains("flip.pt"));
  write(d / "pickle.pt", std::string("\x80\x02}q\x00", 5) + std::string(100, 'x'));
  CHECK_THAT(error_of([&] { load_checkpoint((d / "pickle.pt").string()); }), Catch::Contains("not a bitnetmcu checkpoint"));
  CHECK_THAT(error_of([&] { load_checkpoint((d / "nope.pt").string()); }), Catch::Contains("nope.pt") && Catch::Contains("cannot open"));
}

TEST_CASE("checkpoint: a model's tensors round-trip with the documented names") {
  for (const char* yaml : {"model: FCMNIST\nQuantType: Ternary\nWScale: PerOutput\nNormType: BatchNorm\n",
                           "model: CNNMNIST\ncnn_width: 4\nnetwork_width3: 0\nQuantType: NF4\n"}) {
    Config cfg = config_from_yaml_text(yaml, "t");
    QatModel model = build_model(cfg);
    model->update_clipping(cfg);
    model->forward(torch::randn({8, 1, 16, 16}));  // moves BatchNorm statistics
    Checkpoint ck;
    ck.config_yaml = config_to_yaml(cfg);
    ck.tensors = model->state_tensors();
    for (const std::string& layer : cfg.layer_names()) {
      CHECK(ck.tensors.count("model/" + layer + ".weight") == 1);
      CHECK(ck.tensors.count("clip/" + layer) == 1);
    }
    const fs::path path = temp_dir("model") / "m.pt";
    save_checkpoint_atomic(path.string(), ck);
    QatModel back = load_model_from_checkpoint(load_checkpoint(path.string()));
    model->eval(), back->eval();
    const torch::Tensor x = torch::randn({4, 1, 16, 16});
    CHECK(torch::equal(model->forward(x), back->forward(x)));
    for (const std::string& layer : cfg.layer_names())
      CHECK(torch::equal(model->layer(layer).codes(), back->layer(layer).codes()));
  }
}
