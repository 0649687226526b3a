// Seconds per training epoch of bitnetmcu-train for the reference configurations, next to the
// reference Python trainer's figures (PyTorch 1.13, 2 cores, its best thread setting):
//   FC 64/64/64 4bitsym, batch 128: 8.05 s per augmented epoch (120,000 samples),
//                                   1.74 s per plain epoch (60,000)
//   CNN width 64, fc 96/64, batch 128: 29.2 s per augmented epoch
// (fc-aug-muon: the FC case with optimizer Muon, against the same Adam reference figure.)
// An epoch here is what the trainer times as "seconds": making the epoch's samples (the
// augmented copy is prepared on a worker thread during the previous epoch) plus all optimizer
// steps; the test evaluation is reported separately. Also prints a per-step breakdown.
#include "training/optimizer.hpp"
#include "training/trainer.hpp"

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <algorithm>
#include <map>
#include <sstream>
#include <vector>

using namespace bitnetmcu::train;
using Clock = std::chrono::steady_clock;

namespace {

struct Case {
  const char* id;
  const char* label;
  const char* markdown;  // its row in --markdown's table
  const char* yaml;
  double reference_seconds;
};
const Case kCases[] = {
    {"fc-aug", "FC 64/64/64 4bitsym, augmented (120k)", "FC 64/64/64 4bitsym, augmented epoch (120,000 samples)",
     "augmentation: true\n", 8.05},
    {"fc-aug-muon", "FC 64/64/64 4bitsym, augmented, Muon", "the same with `optimizer: Muon` (reference: Adam)",
     "augmentation: true\noptimizer: Muon\n", 8.05},
    {"fc-plain", "FC 64/64/64 4bitsym, plain (60k)", "FC, plain epoch (60,000)", "augmentation: false\n", 1.74},
    {"cnn-aug", "CNN w64 fc 96/64, augmented (120k)", "CNN width 64, fc 96/64, augmented epoch",
     "model: CNNMNIST\ncnn_width: 64\nnetwork_width1: 96\nnetwork_width2: 64\nnetwork_width3: 0\naugmentation: true\n", 29.2},
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// Runs `epochs` epochs and returns the last epoch's "seconds" and "eval_seconds" from the CSV.
std::pair<double, double> epoch_seconds(Config cfg, int epochs) {
  cfg.num_epochs = epochs;
  std::ostringstream log;
  TrainOptions opt;
  opt.out = &log;
  opt.progress_bar = false;
  const TrainResult r = train(cfg, opt);
  const std::string csv = load_checkpoint(r.checkpoint_path).metrics_csv;
  const std::string last = csv.substr(csv.rfind('\n', csv.size() - 2) + 1);
  std::vector<std::string> cells = split(last);
  return {std::stod(cells.at(6)), std::stod(cells.at(7))};
}

// Milliseconds per optimizer step of the plain training loop, split into its parts.
void step_breakdown(const Config& cfg, int steps) {
  configure_compute(cfg);
  torch::manual_seed(0);
  QatModel model = build_model(cfg);
  model->update_clipping(cfg);
  Optimizer optimizer(model->named_parameters(), cfg);
  const torch::Tensor x = torch::randn({cfg.batch_size, 1, 16, 16});
  const torch::Tensor y = torch::randint(0, 10, {cfg.batch_size}, torch::kInt64);
  double fwd = 0, bwd = 0, opt = 0, cpu0 = 0;
  std::vector<double> totals;  // ms per step: the minimum and median resist a noisy machine
  for (int i = -20; i < steps; ++i) {  // 20 warm-up steps
    if (i == 0) cpu0 = cpu_seconds();
    const auto t0 = Clock::now();
    const torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    const auto t1 = Clock::now();
    optimizer.zero_grad();
    loss.backward();
    const auto t2 = Clock::now();
    optimizer.step(1.0);
    const auto t3 = Clock::now();
    if (i < 0) continue;
    fwd += std::chrono::duration<double, std::milli>(t1 - t0).count();
    bwd += std::chrono::duration<double, std::milli>(t2 - t1).count();
    opt += std::chrono::duration<double, std::milli>(t3 - t2).count();
    totals.push_back(std::chrono::duration<double, std::milli>(t3 - t0).count());
  }
  std::sort(totals.begin(), totals.end());
  const double cpu_ms = (cpu_seconds() - cpu0) * 1000.0 / steps;
  std::printf("    per step (batch %d, %d threads): forward %.3f ms, backward %.3f ms, optimizer %.3f ms; %.3f CPU ms; "
              "min %.3f ms, median %.3f ms\n",
              cfg.batch_size, torch::get_num_threads(), fwd / steps, bwd / steps, opt / steps, cpu_ms, totals.front(),
              totals[totals.size() / 2]);
}

// The OpenMP wait policy this process runs with (choose_openmp_wait_policy's choice, or the user's).
std::string openmp_wait() {
  if (const char* spin = std::getenv("GOMP_SPINCOUNT")) return std::string("spin ") + spin;
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  return policy ? policy : "default";
}

// An op's name, and for convolutions the first input's shape (one line per layer).
std::string op_label(const torch::autograd::profiler::LegacyEvent& e) {
  std::string label = e.name();
  const auto shapes = e.shapes();
  if (label.find("convolution") == std::string::npos || shapes.empty()) return label;
  label += " [";
  for (size_t i = 0; i < shapes[0].size(); ++i) label += (i ? "," : "") + std::to_string(shapes[0][i]);
  return label + "]";
}

// Where a training step's time goes: self CPU time per LibTorch op over `steps` steps (autograd
// profiler), and the augmentation's seconds per 60,000 images. Profile first, then optimize.
void op_profile(const Config& cfg, int steps) {
  configure_compute(cfg);
  torch::manual_seed(0);
  QatModel model = build_model(cfg);
  model->update_clipping(cfg);
  Optimizer optimizer(model->named_parameters(), cfg);
  const torch::Tensor x = torch::randn({cfg.batch_size, 1, 16, 16});
  const torch::Tensor y = torch::randint(0, 10, {cfg.batch_size}, torch::kInt64);
  auto step = [&] {
    const torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step(1.0);
  };
  for (int i = 0; i < 20; ++i) step();
  namespace prof = torch::autograd::profiler;
  prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU, true));
  const auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / steps;
  const prof::thread_event_lists lists = prof::disableProfilerLegacy();
  std::map<std::string, double> self_us;  // op name -> self time (its time minus its children's)
  for (const auto& list : lists) {
    std::vector<std::pair<const prof::LegacyEvent*, double>> stack;  // open op, its children's time
    for (const auto& e : list) {
      if (e.kindStr() == "push") {
        stack.push_back({&e, 0.0});
      } else if (e.kindStr() == "pop" && !stack.empty()) {
        const auto [open, children] = stack.back();
        stack.pop_back();
        const double us = open->cpuElapsedUs(e);
        self_us[op_label(*open)] += us - children;
        if (!stack.empty()) stack.back().second += us;
      }
    }
  }
  std::vector<std::pair<double, std::string>> ranked;
  for (const auto& [name, us] : self_us) ranked.push_back({us / 1000.0 / steps, name});
  std::sort(ranked.rbegin(), ranked.rend());
  std::printf("    op profile, %d steps of batch %d, %d threads: %.2f ms per step (profiled); self ms per step:\n",
              steps, cfg.batch_size, torch::get_num_threads(), wall_ms);
  for (size_t i = 0; i < ranked.size() && i < 25; ++i)
    std::printf("      %8.3f  %s\n", ranked[i].first, ranked[i].second.c_str());
  if (cfg.augmentation) {
    Config one = cfg;
    one.train_subset = 8192;
    const DataSplit train = load_split(one, true);
    const Augmenter augment(cfg);
    torch::NoGradGuard no_grad;
    at::Generator gen = at::detail::createCPUGenerator(1);
    torch::set_num_threads(1);  // as on the trainer's worker thread
    augment(train.raw, gen);
    const auto a0 = Clock::now();
    augment(train.raw, gen);
    const double s = std::chrono::duration<double>(Clock::now() - a0).count();
    std::printf("    augmentation (worker thread, 1 thread): %.2f s per 60,000 images\n", s * 60000.0 / 8192);
  }
}
}  // namespace

int main(int argc, char** argv) {
  choose_openmp_wait_policy(argv);  // as bitnetmcu-train does
  std::string data_dir = BITNETMCU_DATA_DIR, threads = "1,2", cases = "fc-aug,fc-aug-muon,fc-plain,cnn-aug";
  std::string markdown;  // --markdown FILE: the README's training table (best thread setting per case)
  int epochs = 1, profile_steps = 0;
  const auto usage = [](std::FILE* to) {
    std::fprintf(to, "usage: bench_train [--data-dir DIR] [--threads 1,2] [--cases fc-aug,fc-aug-muon,fc-plain,cnn-aug] "
                     "[--epochs N] [--profile STEPS] [--markdown FILE]\n"
                     "Seconds per training epoch of the reference configurations against the reference trainer.\n"
                     "  --profile STEPS: no epochs; self time per LibTorch op over STEPS steps, and the augmentation time\n"
                     "  --markdown FILE: also write the results as a table, each case at its fastest thread count\n"
                     "  -h, --help: this text\n");
  };
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {  // every other option takes a value
      usage(stderr);
      return 2;
    }
    if (a == "--data-dir") data_dir = argv[i + 1];
    else if (a == "--threads") threads = argv[i + 1];
    else if (a == "--cases") cases = argv[i + 1];
    else if (a == "--epochs") epochs = std::stoi(argv[i + 1]);
    else if (a == "--profile") profile_steps = std::stoi(argv[i + 1]);
    else if (a == "--markdown") markdown = argv[i + 1];
    else {
      usage(stderr);
      return 2;
    }
  }
  const std::string out_dir = (std::filesystem::temp_directory_path() / "bitnetmcu_bench_train").string();
  std::printf("bitnetmcu-train epoch times (LibTorch %s, %u hardware threads; last of %d epoch(s); OpenMP wait: %s)\n",
              TORCH_VERSION, std::thread::hardware_concurrency(), epochs, openmp_wait().c_str());
  std::printf("%-40s %7s %9s %9s %9s %10s %8s\n", "case", "threads", "s/epoch", "eval s", "cpu s", "reference", "speed-up");
  std::ostringstream table;
  table << "| case | bitnetmcu s/epoch (threads) | reference trainer s/epoch | speed-up |\n|---|---|---|---|\n";
  for (const Case& c : kCases) {
    if (("," + cases + ",").find("," + std::string(c.id) + ",") == std::string::npos) continue;
    double best = 0;
    std::string best_threads;
    for (const std::string& t : split(threads)) {
      Config cfg = config_from_yaml_text(c.yaml, c.id);
      cfg.data_dir = data_dir, cfg.output_dir = out_dir, cfg.num_threads = std::stoi(t);
      if (profile_steps > 0) {
        std::printf("%-40s %7s\n", c.label, t.c_str());
        step_breakdown(cfg, profile_steps);
        op_profile(cfg, profile_steps);
        continue;
      }
      try {
        const double cpu0 = cpu_seconds();
        const auto [secs, eval_secs] = epoch_seconds(cfg, epochs);
        const double cpu = (cpu_seconds() - cpu0) / epochs;
        std::printf("%-40s %7s %9.2f %9.2f %9.2f %10.2f %7.2fx\n", c.label, t.c_str(), secs, eval_secs, cpu,
                    c.reference_seconds, c.reference_seconds / secs);
        if (best_threads.empty() || secs < best) best = secs, best_threads = t;
      } catch (const std::exception& e) {
        std::printf("%-40s %7s  failed: %s\n", c.label, t.c_str(), e.what());
        return 1;
      }
      std::fflush(stdout);
      step_breakdown(cfg, 200);
    }
    if (!best_threads.empty()) {
      char row[256];
      std::snprintf(row, sizeof row, "| %s | %.2f (%s) | %.2f | %.1fx |\n", c.markdown, best, best_threads.c_str(),
                    c.reference_seconds, c.reference_seconds / best);
      table << row;
    }
  }
  if (!markdown.empty() && profile_steps == 0) {
    const std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    table << "\nMeasured " << date << " by `cmake --build build --target bench-train` (bench_train --threads " << threads
          << " --epochs " << epochs << ", the last epoch; " << std::thread::hardware_concurrency()
          << " hardware threads; OpenMP wait: " << openmp_wait() << "). The reference trainer's figures were measured once on this machine (PyTorch 1.13, its best thread "
             "setting); this machine's speed varies from day to day by up to 2x.\n";
    std::ofstream(markdown) << table.str();
    std::printf("wrote %s\n", markdown.c_str());
  }
  return 0;
}
