// The exporter's whole run: checkpoint -> quantized tensors -> packed model -> fit check ->
// verification on the test set (float model, engine, LibTorch emulation) -> files.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "bitnetmcu/model_file.hpp"
#include "emulate.hpp"
#include "run_export.hpp"
#include "training/checkpoint.hpp"
#include "training/config.hpp"
#include "training/data.hpp"
#include "training/models.hpp"
#include "training/qat.hpp"

namespace bitnetmcu::exporter {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string file_crc32_hex(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", crc32(bytes.data(), bytes.size()));
  return buf;
}

template <class T>
std::vector<T> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

// Quantizes every layer of the model loaded from the checkpoint, with the checkpoint's clips.
std::vector<QuantizedTensor> quantize_layers(const train::QatModel& model, const std::string& path) {
  std::vector<QuantizedTensor> out;
  for (train::QuantLayerImpl* layer : model->layers()) {
    const std::string& name = layer->layer_name();
    if (!layer->scheme())
      throw ExportError(path + ": layer " + name +
                        " is not quantized (QuantType None): a float layer has no integer form to export");
    const SchemeId scheme = *layer->scheme();
    const torch::Tensor weight = layer->latent_weight().detach().to(torch::kFloat32).contiguous();
    // load_model_from_checkpoint set the clip/<layer> scalars of Clip schemes from the
    // checkpoint; Binary/Ternary compute theirs from the weights, as training does.
    const torch::Tensor clip = layer->clip();
    QuantizedTensor t;
    t.name = name;
    t.scheme = scheme;
    t.shape = weight.sizes().vec();
    t.codes = to_vector<uint8_t>(train::quantize_codes(weight, scheme, clip).to(torch::kUInt8));
    visit_scheme(scheme, [&](auto s) {
      using S = decltype(s);
      for (uint8_t c : t.codes) t.ints.push_back(S::decode(c));
    });
    out.push_back(std::move(t));
  }
  return out;
}

uint32_t count_equal(const torch::Tensor& a, const torch::Tensor& b) {
  return static_cast<uint32_t>(a.eq(b).sum().item<int64_t>());
}

Verification verify(train::QatModel model, const train::Config& cfg, const PackedModel& packed,
                    const train::InputQuantizer& quantizer, int limit) {
  Verification v;
  train::Config test_cfg = cfg;
  test_cfg.test_subset = limit > 0 ? limit : 0;  // the whole test set unless asked otherwise
  train::DataSplit split;
  if (quantizer.mode == "per_image") {
    split = train::load_split(test_cfg, /*train=*/false);
  } else {
    // The quantizer fitted to the data now must be the one the checkpoint was trained with.
    train::Dataset ds = train::load_dataset(test_cfg);
    if (ds.info.quantizer.offset != quantizer.offset || ds.info.quantizer.scale != quantizer.scale)
      throw ExportError("the input quantization fitted to " + cfg.data_train +
                        " differs from the checkpoint's: the training data changed since training");
    split = std::move(ds.test);
  }
  const torch::Tensor labels = split.labels.to(torch::kInt64);
  v.n_images = static_cast<uint32_t>(labels.size(0));

  torch::NoGradGuard no_grad;
  auto t0 = Clock::now();
  model->eval();
  std::vector<torch::Tensor> float_preds;
  for (int64_t i = 0; i < split.images.size(0); i += 1000)
    float_preds.push_back(model->forward(split.images.slice(0, i, i + 1000)).argmax(1));
  v.float_correct = count_equal(torch::cat(float_preds), labels);
  v.float_seconds = seconds_since(t0);

  const torch::Tensor images = train::engine_input(split, quantizer).to(torch::kInt8).contiguous();
  if (images.size(1) != packed.input_size)
    throw ExportError("the input quantization gave " + std::to_string(images.size(1)) + " values per sample, the model takes " +
                      std::to_string(packed.input_size));
  v.images = to_vector<int8_t>(images);
  if (quantizer.mode != "per_image") v.raw = to_vector<float>(split.raw.to(torch::kFloat32).contiguous());
  v.labels = to_vector<uint8_t>(labels.to(torch::kUInt8));

  t0 = Clock::now();
  std::vector<int32_t> engine_logits;
  run_engine(packed, v.images.data(), v.n_images, v.int_predictions, engine_logits);
  v.engine_seconds = seconds_since(t0);
  const torch::Tensor engine_preds =
      torch::tensor(std::vector<int64_t>(v.int_predictions.begin(), v.int_predictions.end()), torch::kInt64);
  v.int_correct = count_equal(engine_preds, labels);

  t0 = Clock::now();
  const Emulation emu = emulate_integer_model(packed.tensors, images, bitnetmcu::kCnnShift);
  v.emulation_seconds = seconds_since(t0);
  v.emulation_correct = count_equal(emu.predictions, labels);
  v.prediction_mismatches = v.n_images - count_equal(emu.predictions, engine_preds);
  const torch::Tensor engine_logit_tensor =
      torch::tensor(std::vector<int64_t>(engine_logits.begin(), engine_logits.end()), torch::kInt64)
          .view({v.n_images, static_cast<int64_t>(packed.num_classes)});
  v.logit_mismatches = static_cast<uint32_t>(emu.logits.ne(engine_logit_tensor).any(1).sum().item<int64_t>());
  return v;
}

std::string default_name(const std::string& checkpoint_path) {
  std::string stem = fs::path(checkpoint_path).stem().string();
  for (char& c : stem)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  if (stem.empty() || std::isdigit(static_cast<unsigned char>(stem[0]))) stem = "model_" + stem;
  return stem;
}

}  // namespace

ExportResult run_export(const ExportOptions& opt) {
  const auto log = [&](const std::string& line) {
    if (!opt.quiet) std::cout << line << std::endl;
  };
  const std::string name = opt.name.empty() ? default_name(opt.checkpoint_path) : opt.name;
  if (!is_valid_identifier(name))
    throw ExportError("--name '" + name + "' is not a C++ identifier (letters, digits, _; not starting with a digit)");
  const Target* target = nullptr;
  if (!opt.target.empty() && !(target = find_target(opt.target)))
    throw ExportError("--target '" + opt.target + "' is unknown (expected ch32v003 or ch32v002)");

  train::Checkpoint ckpt;
  train::Config cfg;
  train::QatModel model{nullptr};
  train::InputQuantizer quantizer;
  try {
    ckpt = train::load_checkpoint(opt.checkpoint_path);
    model = train::load_model_from_checkpoint(ckpt, &cfg);
    quantizer = train::load_input_quantizer(ckpt, cfg);
  } catch (const ExportError&) {
    throw;
  } catch (const std::exception& e) {
    throw ExportError(std::string("cannot export checkpoint ") + opt.checkpoint_path + ": " + e.what());
  }
  const std::string stored_config = train::config_to_yaml(cfg);  // before --data-dir
  if (!opt.data_dir.empty()) cfg.data_dir = opt.data_dir;

  ExportResult r;
  r.model = pack_model(quantize_layers(model, opt.checkpoint_path), bitnetmcu::kCnnShift,
                       static_cast<uint32_t>(cfg.num_inputs()));
  log(stats_table(r.model));
  // The chip image embeds the model's own samples when it has them, else one MNIST image.
  const uint32_t chip_samples = opt.samples > 0 ? std::min<uint32_t>(kChipSamples, uint32_t(opt.samples)) : 1;
  if (target) {
    r.fit = check_target(r.model, *target, chip_samples);
    r.target_checked = true;
    log(r.fit.describe());
    if (!r.fit.fits) throw ExportError("model " + name + " does not fit " + r.fit.describe());
  }

  const TargetFit ch32v003_fit = check_target(r.model, kCh32v003, chip_samples);
  HeaderMeta meta;
  meta.ch32v003_fit = &ch32v003_fit;
  meta.name = name;
  meta.generated_by = opt.command_line.empty() ? "bitnetmcu-export " + opt.checkpoint_path : opt.command_line;
  meta.dataset = cfg.dataset;
  meta.source_checkpoint = opt.checkpoint_path;
  meta.checkpoint_crc32 = file_crc32_hex(opt.checkpoint_path);
  meta.config_yaml = stored_config;
  meta.class_names = train::class_names_of(cfg);
  meta.input_quantization = quantizer.mode;
  meta.input_offset = quantizer.offset;
  meta.input_scale = quantizer.scale;
  const bool image_input = cfg.is_builtin_dataset() || cfg.input_features == cfg.input_side * cfg.input_side;
  meta.input_side = image_input && quantizer.mode == "per_image" ? static_cast<uint32_t>(cfg.input_side) : 0;
  meta.input_description =
      meta.input_side ? std::to_string(cfg.input_side) + "x" + std::to_string(cfg.input_side) +
                            " image, resized and normalized ((x - 0.1307) / 0.3081), int8 per sample: 127 / max|x| (SPEC §2)"
                      : std::to_string(cfg.num_inputs()) + " values, int8 " + quantizer.mode +
                            ": round((x - kInputOffset) * kInputScale), quantize_input()";
  try {
    r.verification = verify(model, cfg, r.model, quantizer, opt.verify_limit);
  } catch (const ExportError&) {
    throw;
  } catch (const std::exception& e) {
    throw ExportError(std::string("verification on the ") + cfg.dataset + " test set failed: " + e.what());
  }
  meta.verification = &r.verification;
  const Verification& v = r.verification;
  log("verified on " + std::to_string(v.n_images) + " test images: float QAT " + std::to_string(v.float_correct) +
      " correct (" + std::to_string(100.0 * v.float_accuracy()) + " %), engine " + std::to_string(v.int_correct) +
      " (" + std::to_string(100.0 * v.int_accuracy()) + " %), engine vs LibTorch emulation: " +
      std::to_string(v.prediction_mismatches) + " prediction / " + std::to_string(v.logit_mismatches) +
      " logit mismatches");

  const fs::path dir(opt.out_dir);
  r.report_path = (dir / (name + ".report.json")).string();
  write_file(r.report_path, report_json(r.model, meta, r.target_checked ? &r.fit : nullptr));
  if (v.prediction_mismatches || v.logit_mismatches)
    throw ExportError("engine and LibTorch integer emulation disagree on " + std::to_string(v.prediction_mismatches) +
                      " predictions and " + std::to_string(v.logit_mismatches) + " logit vectors of " +
                      std::to_string(v.n_images) + " images; no header written (report: " + r.report_path + ")");

  r.header_path = (dir / (name + ".h")).string();
  r.model_file_path = (dir / (name + ".bnm")).string();
  write_file(r.header_path, model_header_text(r.model, meta));
  write_file(r.model_file_path, model_file_bytes(r.model));
  if (opt.plots) {
    const std::string hist = (dir / (name + ".weights.svg")).string();
    const std::string first = (dir / (name + ".first_layer.png")).string();
    write_file(hist, weights_histogram_svg(r.model, name + ": integer weight histograms"));
    write_file(first, first_layer_png(r.model));
    r.other_paths.insert(r.other_paths.end(), {hist, first});
  }
  if (opt.test_images > 0) {
    const size_t n = std::min<size_t>(static_cast<size_t>(opt.test_images), v.n_images);
    const std::string path = (dir / "mnist_test_images.h").string();
    write_file(path, test_images_header_text(v.images.data(), v.labels.data(), n, r.model.input_size,
                                             meta.generated_by));
    r.other_paths.push_back(path);
  }
  if (opt.samples > 0) {
    const size_t n = std::min<size_t>(static_cast<size_t>(opt.samples), v.n_images);
    const std::string path = (dir / (name + ".samples.h")).string();
    write_file(path, samples_header_text(v.images.data(), v.raw.empty() ? nullptr : v.raw.data(), v.labels.data(), n,
                                         r.model.input_size, meta.input_side, kChipSamples,
                                         cfg.dataset + " (" + meta.input_description + ")", meta.generated_by));
    r.other_paths.push_back(path);
  }
  if (!opt.predictions_path.empty()) {
    write_file(opt.predictions_path, predictions_file_bytes(v, r.model.input_size));
    r.other_paths.push_back(opt.predictions_path);
  }
  log("wrote " + r.header_path + ", " + r.model_file_path + ", " + r.report_path);
  for (const auto& p : r.other_paths) log("wrote " + p);
  return r;
}

}  // namespace bitnetmcu::exporter
