#include "trainer.hpp"

#include "optimizer.hpp"
#include "weight_average.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <future>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <fstream>
#include <iomanip>
#include <iterator>
#include <iostream>
#include <sstream>
#include <cstdlib>
#include <thread>
#include <unistd.h>

namespace bitnetmcu::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

// Installs the SIGINT/SIGTERM handlers for the lifetime of a training run.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    previous_int_ = std::signal(SIGINT, on_stop_signal);
    previous_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
    g_stop_signal = 0;  // a later run in this process (tests) starts without it
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  static bool requested() { return g_stop_signal != 0; }

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};

// A live progress bar on a terminal; silent otherwise (the epoch lines are the plain output).
class ProgressBar {
 public:
  ProgressBar(bool enabled, int epoch, int num_epochs, int64_t batches, int64_t batch_size)
      : enabled_(enabled && isatty(STDERR_FILENO)), epoch_(epoch), num_epochs_(num_epochs),
        batches_(batches), batch_size_(batch_size), start_(Clock::now()), last_(start_) {}
  bool due() const { return enabled_ && Clock::now() - last_ > std::chrono::milliseconds(200); }
  void show(int64_t done, double loss) {
    last_ = Clock::now();
    const double secs = std::chrono::duration<double>(last_ - start_).count();
    const double rate = static_cast<double>(done * batch_size_) / std::max(secs, 1e-9);
    const double eta = secs / static_cast<double>(std::max<int64_t>(done, 1)) * static_cast<double>(batches_ - done);
    const int width = 30, filled = static_cast<int>(width * done / std::max<int64_t>(batches_, 1));
    std::fprintf(stderr, "\r epoch %d/%d [%s%s] %lld/%lld loss %.4f %.0f samples/s ETA %.0fs ", epoch_,
                 num_epochs_, std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(width - filled), '.').c_str(), static_cast<long long>(done),
                 static_cast<long long>(batches_), loss, rate, eta);
  }
  void clear() const {
    if (enabled_) std::fprintf(stderr, "\r%s\r", std::string(100, ' ').c_str());
  }

 private:
  bool enabled_;
  int epoch_, num_epochs_;
  int64_t batches_, batch_size_;
  Clock::time_point start_, last_;
};

torch::Device pick_device() { return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU); }

std::string metrics_header(const QatModelImpl& model) {
  std::string h = "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,eval_seconds";
  for (const QuantLayerImpl* l : model.layers()) h += "," + l->layer_name() + "_clip," + l->layer_name() + "_entropy";
  return h + "\n";
}

// "fc1 s=0.123 H=3.21" per quantized layer, and the matching CSV cells.
void layer_stats(const QatModelImpl& model, std::string& line, std::string& csv) {
  std::ostringstream l, c;
  for (const QuantLayerImpl* layer : model.layers()) {
    if (!layer->scheme()) {
      c << ",,";
      continue;
    }
    const double clip = layer->clip().mean().item<double>();
    const double entropy = code_entropy_bits(layer->codes());
    l << " | " << layer->layer_name() << " s=" << std::setprecision(4) << clip << " H=" << std::setprecision(3) << entropy;
    c << "," << std::setprecision(6) << clip << "," << entropy;
  }
  line = l.str(), csv = c.str();
}

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    if (!f) throw std::runtime_error(path + ": cannot write");
  }
  fs::rename(tmp, path);
}

}  // namespace

double schedule_factor(const Config& cfg, int epoch) {
  double f = 1.0;
  if (cfg.scheduler == "StepLR") {
    f *= std::pow(cfg.lr_decay, epoch / cfg.step_size);
  } else if (cfg.scheduler == "Cosine") {
    f *= 0.5 * (1 + std::cos(M_PI * epoch / cfg.num_epochs));
  } else {  // CosineWarmRestarts, as torch.optim.lr_scheduler.CosineAnnealingWarmRestarts
    double t_cur = epoch, t_i = cfg.T_0;
    if (cfg.T_mult == 1) {
      t_cur = epoch % cfg.T_0;
    } else if (epoch >= cfg.T_0) {
      const double n = std::floor(std::log(epoch / static_cast<double>(cfg.T_0) * (cfg.T_mult - 1) + 1) / std::log(cfg.T_mult));
      t_cur = epoch - cfg.T_0 * (std::pow(cfg.T_mult, n) - 1) / (cfg.T_mult - 1);
      t_i = cfg.T_0 * std::pow(cfg.T_mult, n);
    }
    f *= 0.5 * (1 + std::cos(M_PI * t_cur / t_i));
  }
  if (cfg.halve_lr_epoch >= 0 && epoch >= cfg.halve_lr_epoch) f *= 0.5;
  return f;
}

double learning_rate_at(const Config& cfg, int epoch) { return cfg.learning_rate * schedule_factor(cfg, epoch); }

namespace {
double idle_fraction(int ms);

int hardware_cores() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// num_threads 0: 1 for FCMNIST; for CNNMNIST one per core that was idle at start. OpenMP threads
// wait for each other at every op, so a thread whose core is busy elsewhere holds all of them
// up: with one core of two busy, 2 threads took 36.0 s per CNN-64 epoch against 11.3 s for one
// (bench_train --threads 1,2 beside `yes > /dev/null`); on an idle machine 2 threads took 7.6 s
// against 12.5 s.
int default_threads(const Config& cfg) {
  if (!cfg.is_cnn()) return 1;
  const int cores = hardware_cores();
  return cores == 1 ? 1 : threads_for_idle(idle_fraction(200), cores);
}
}  // namespace

int threads_for_idle(double idle, int cores) {
  if (idle < 0) return cores;  // unknown (no /proc/stat)
  return std::clamp(static_cast<int>(idle * cores + 0.3), 1, std::max(cores, 1));
}

void configure_compute(const Config& cfg) {
  torch::set_num_threads(cfg.num_threads > 0 ? cfg.num_threads : default_threads(cfg));
#ifdef __GLIBC__
  // Blocks up to 32 MB (glibc's maximum) from the heap, and freed memory kept there (not
  // trimmed) for the next step's tensors of the same sizes; both are needed.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

CpuTimes read_cpu_times() {
  CpuTimes t;
  std::ifstream stat("/proc/stat");
  std::string cpu;
  uint64_t v[8] = {};
  if (!(stat >> cpu) || cpu != "cpu") return t;
  for (uint64_t& x : v) stat >> x;  // user nice system idle iowait irq softirq steal
  if (!stat) return t;
  t.idle = v[3] + v[4];
  for (uint64_t x : v) t.total += x;
  // /proc/self/stat: utime and stime are fields 14 and 15, counted after the ")" that ends the
  // command name (which may hold spaces); both files count in the same clock ticks
  std::ifstream self("/proc/self/stat");
  const std::string line((std::istreambuf_iterator<char>(self)), std::istreambuf_iterator<char>());
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return t;
  std::istringstream fields(line.substr(close + 1));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  t.own = utime + stime;
  t.ok = static_cast<bool>(fields);
  return t;
}

double other_processes_share(const CpuTimes& a, const CpuTimes& b) {
  if (!a.ok || !b.ok || b.total <= a.total) return -1;
  const double total = static_cast<double>(b.total - a.total);
  const double busy = total - static_cast<double>(b.idle - a.idle);
  const double own = static_cast<double>(b.own >= a.own ? b.own - a.own : 0);
  return std::clamp((busy - own) / total, 0.0, 1.0);
}

namespace {
// Fraction of the machine's CPU time spent idle over `ms` milliseconds (/proc/stat), or -1.
double idle_fraction(int ms) {
  const CpuTimes a = read_cpu_times();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  const CpuTimes b = read_cpu_times();
  if (!a.ok || !b.ok || b.total <= a.total) return -1;
  return static_cast<double>(b.idle - a.idle) / static_cast<double>(b.total - a.total);
}
}  // namespace

void choose_openmp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;  // the user's, or chosen already
  if (idle_fraction(200) >= 0.75)
    setenv("GOMP_SPINCOUNT", "10000", 1);
  else
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: run on with the default policy
}

DataSplit epoch_samples(const Config& cfg, const DataSplit& train, const Augmenter& augment, uint64_t seed) {
  if (!cfg.augmentation) return train;
  std::vector<torch::Tensor> parts{train.images};
  const int64_t n = train.raw.size(0), chunk = 8192;  // images [N,1,H,W] (augmentation is for images only)
  torch::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const bool on_cpu = train.raw.device().is_cpu();
  for (int64_t i = 0; i < n; i += chunk)
    parts.push_back(on_cpu ? augment(train.raw.narrow(0, i, std::min(chunk, n - i)), gen)
                           : augment(train.raw.narrow(0, i, std::min(chunk, n - i))));
  DataSplit s;
  s.images = torch::cat(parts);
  s.labels = torch::cat({train.labels, train.labels});
  return s;
}

EvalResult evaluate(QatModelImpl& model, const DataSplit& split, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const auto device = model.parameters().front().device();
  double loss = 0;
  int64_t correct = 0;
  const int64_t n = split.labels.size(0);
  for (int64_t i = 0; i < n; i += batch_size) {
    const int64_t m = std::min(batch_size, n - i);
    const torch::Tensor x = split.images.narrow(0, i, m).to(device), y = split.labels.narrow(0, i, m).to(device);
    const torch::Tensor logits = model.forward(x);
    loss += torch::nn::functional::cross_entropy(logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)).item<double>();
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
  }
  model.train(was_training);
  return {loss / static_cast<double>(std::max<int64_t>(n, 1)), static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(n, 1)), n};
}

EvalResult evaluate_checkpoint(const std::string& path, const std::vector<std::string>& overrides) {
  const Checkpoint ck = load_checkpoint(path);
  Config cfg = config_from_yaml_text(ck.config_yaml, "checkpoint " + path + " (config entry)");
  for (const auto& o : overrides) apply_override(cfg, o);
  configure_compute(cfg);
  QatModel model = build_model(cfg);
  model->load_state_tensors(ck.tensors);
  model->to(pick_device());
  return evaluate(*model, load_split(cfg, false));
}

namespace {

// num_threads 0 with a CNN: the thread count is chosen again before each epoch from the CPU
// time other processes took during the last one (configure_compute sees only the start, and
// load that comes later costs the most: a thread whose core is busy holds the others up at
// every op). It never exceeds the count chosen at start, whose OpenMP wait policy was chosen
// for it (choose_openmp_wait_policy).
class ThreadGovernor {
 public:
  explicit ThreadGovernor(const Config& cfg)
      : active_(cfg.num_threads == 0 && cfg.is_cnn() && torch::get_num_threads() > 1),
        start_threads_(torch::get_num_threads()), last_(read_cpu_times()) {}
  // Adjusts the count; returns a console line when it changed.
  std::string update(int epoch) {
    if (!active_) return {};
    const CpuTimes now = read_cpu_times();
    const double others = other_processes_share(last_, now);
    last_ = now;
    if (others < 0) return {};
    const int cores = hardware_cores();
    const int threads = std::min(start_threads_, threads_for_idle(1.0 - others, cores));
    const int before = torch::get_num_threads();
    if (threads == before) return {};
    torch::set_num_threads(threads);
    std::ostringstream line;
    line << "threads: " << before << " -> " << threads << " (other processes used " << std::fixed
         << std::setprecision(1) << others * cores << " of " << cores << " cores during epoch " << epoch << ")\n";
    return line.str();
  }

 private:
  bool active_;
  int start_threads_;
  CpuTimes last_;
};

// What a run carries across epochs besides model and optimizer; the checkpoint's meta and
// metrics entries are made from it.
struct RunProgress {
  int epochs_done = 0;
  double train_seconds = 0;
  double test_accuracy = 0, test_loss = 0;  // of the last completed epoch
  std::string metrics;                      // CSV, header row first
};

// --resume: the checkpoint's configuration with the overrides on top; else the given one.
Config run_config(const Config& cfg_in, const TrainOptions& options, Checkpoint& resumed) {
  if (options.resume_path.empty()) return cfg_in;
  resumed = load_checkpoint(options.resume_path);
  Config cfg = config_from_yaml_text(resumed.config_yaml, "checkpoint " + options.resume_path + " (config entry)");
  for (const auto& o : options.overrides) apply_override(cfg, o);
  return cfg;
}

// Restores weights, optimizer state and progress from `resumed` (null: a fresh run, which
// gets its initial clipping scalars instead).
RunProgress resume(const Checkpoint* resumed, const std::string& path, const Config& cfg, QatModelImpl& model,
                   WeightAverage& average, Optimizer& optimizer, std::ostream& out) {
  RunProgress p;
  p.metrics = metrics_header(model);
  if (!resumed) {
    model.update_clipping(cfg);  // initial s (octav from 0.25 mean|w|), even when maxw_update_until_epoch is 0
    average.restart();
    return p;
  }
  average.load(resumed->tensors);
  if (!optimizer.load(resumed->tensors)) out << "note: no matching optimizer state in the checkpoint; the optimizer restarts\n";
  p.epochs_done = resumed->meta.epochs_done;
  p.train_seconds = resumed->meta.train_seconds;
  // a finished run resumed has nothing left to train: it reports what it recorded
  p.test_accuracy = resumed->meta.test_accuracy;
  p.test_loss = resumed->meta.test_loss;
  if (!resumed->metrics_csv.empty()) p.metrics = resumed->metrics_csv;
  out << "resuming " << path << " after epoch " << p.epochs_done << "\n";
  return p;
}

// The checkpoint of the current epoch boundary.
Checkpoint snapshot(const Config& cfg, const WeightAverage& average, const Optimizer& optimizer,
                    const InputQuantizer& quantizer, const RunProgress& p) {
  Checkpoint ck;
  ck.config_yaml = config_to_yaml(cfg);
  ck.metrics_csv = p.metrics;
  average.save(ck.tensors);
  optimizer.save(ck.tensors);
  save_input_quantizer(ck, quantizer);
  ck.meta.creator = std::string("bitnetmcu-train (C++, LibTorch ") + TORCH_VERSION + ")";
  ck.meta.epochs_done = p.epochs_done;
  ck.meta.complete = p.epochs_done >= cfg.num_epochs;
  ck.meta.train_seconds = p.train_seconds;
  ck.meta.test_accuracy = p.test_accuracy;
  ck.meta.test_loss = p.test_loss;
  return ck;
}

// Knowledge distillation: the distill_teacher checkpoint's model, on `device` in eval mode,
// after checking that it takes the same input and classes as this run.
QatModel load_teacher(const Config& cfg, torch::Device device) {
  const std::string& path = cfg.distill_teacher;
  const auto fail = [&](const std::string& why) {
    throw std::runtime_error("config key distill_teacher: " + path + ": " + why);
  };
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail("no such checkpoint file");
  Checkpoint ck;
  try {
    ck = load_checkpoint(path);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  const Config t = config_from_yaml_text(ck.config_yaml, "checkpoint " + path + " (config entry)");
  const auto same = [&](const char* key, const std::string& teacher, const std::string& student) {
    if (teacher != student)
      fail(std::string("the teacher was trained with ") + key + " " + teacher + ", this run has " + student +
           "; expected a teacher for the same input and classes");
  };
  same("dataset", t.dataset, cfg.dataset);
  same("input_side", std::to_string(t.input_side), std::to_string(cfg.input_side));
  same("inputs", std::to_string(t.num_inputs()), std::to_string(cfg.num_inputs()));
  same("classes", std::to_string(t.num_classes()), std::to_string(cfg.num_classes()));
  QatModel teacher = build_model(t);
  try {
    teacher->load_state_tensors(ck.tensors);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  teacher->to(device);
  teacher->eval();
  return teacher;
}

// The teacher's logits for every sample; undefined when a stop signal arrives first (a CNN
// teacher takes a minute or more for an epoch's augmented copies on a loaded machine).
torch::Tensor teacher_outputs(QatModelImpl& teacher, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  const int64_t n = images.size(0), bs = 1024;
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < n; i += bs) {
    if (StopSignals::requested()) return torch::Tensor();
    parts.push_back(teacher.forward(images.narrow(0, i, std::min(bs, n - i))));
  }
  return parts.empty() ? torch::Tensor() : torch::cat(parts);
}

}  // namespace

torch::Tensor training_loss(const torch::Tensor& logits, const torch::Tensor& y, const torch::Tensor& teacher,
                            const Config& cfg, const torch::Tensor& sparsity) {
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
  if (teacher.defined()) {
    const double temp = cfg.distill_temperature, w = cfg.distill_weight;
    const torch::Tensor log_s = torch::log_softmax(logits / temp, 1), log_t = torch::log_softmax(teacher / temp, 1);
    const torch::Tensor kl = (log_t.exp() * (log_t - log_s)).sum(1).mean();
    loss = (1 - w) * loss + (w * temp * temp) * kl;
  }
  if (sparsity.defined()) loss = loss + cfg.activation_sparsity * sparsity;
  return loss;
}

namespace {

// One epoch's samples and, when distilling, the teacher's logits for each of them.
struct EpochData {
  DataSplit samples;
  torch::Tensor teacher;
};

struct EpochTotals {
  double train_loss = 0, train_accuracy = 0;
};

// One optimizer pass over the epoch's samples in a random order (the caller seeded torch);
// returns early, with partial totals, when a stop signal arrives.
EpochTotals run_epoch(QatModelImpl& model, Optimizer& optimizer, WeightAverage& average, const DataSplit& samples,
                      const Config& cfg, int epoch, double schedule, torch::Device device, bool progress_bar,
                      const torch::Tensor& teacher) {
  // teacher: logits per sample of `samples`, or undefined
  const int64_t n = samples.labels.size(0), bs = cfg.batch_size;
  const torch::Tensor order = torch::randperm(n, torch::TensorOptions().dtype(torch::kInt64).device(device));
  const int64_t batches = (n + bs - 1) / bs;
  ProgressBar bar(progress_bar, epoch + 1, cfg.num_epochs, batches, bs);
  model.train();
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(device));
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  for (int64_t b = 0; b < batches && !StopSignals::requested(); ++b) {
    const torch::Tensor idx = order.narrow(0, b * bs, std::min(bs, n - b * bs));
    const torch::Tensor x = samples.images.index_select(0, idx), y = samples.labels.index_select(0, idx);
    torch::Tensor sparsity;
    const torch::Tensor logits = model.forward(x, cfg.activation_sparsity > 0 ? &sparsity : nullptr);
    const torch::Tensor loss =
        training_loss(logits, y, teacher.defined() ? teacher.index_select(0, idx) : teacher, cfg, sparsity);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step(schedule);
    average.update();
    loss_sum += loss.detach() * idx.size(0);
    correct += logits.detach().argmax(1).eq(y).sum();
    if (bar.due()) bar.show(b + 1, loss.item<double>());
  }
  bar.clear();
  EpochTotals t;
  t.train_loss = loss_sum.item<double>() / static_cast<double>(n);
  t.train_accuracy = static_cast<double>(correct.item<int64_t>()) / static_cast<double>(n);
  return t;
}

// The console lines that open a run: the data, the sample counts, threads, device, optimizer.
void log_run_start(std::ostream& out, const Config& cfg, const DataInfo& info, const DataSplit& train_set,
                   const DataSplit& test_set, const Optimizer& optimizer, torch::Device device) {
  out << "data: " << info.description << ", " << info.num_classes << " classes\n";
  out << "run " << cfg.run_name() << ": " << train_set.labels.size(0) << " training samples"
      << (cfg.augmentation ? " (+ as many augmented)" : "") << ", " << test_set.labels.size(0)
      << " test samples, " << torch::get_num_threads() << " threads, " << (device.is_cuda() ? "CUDA" : "CPU") << ", "
      << (cfg.optimizer == "Muon" ? "Muon for " + std::to_string(optimizer.muon_parameters().size()) + " weights + Adam"
                                  : std::string("Adam")) << "\n"
      << std::flush;
}

// Records a completed epoch: its metrics CSV row and its console line.
}  // namespace

std::string duration_text(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  if (s < 100) return std::to_string(s) + " s";
  const long minutes = (s + 30) / 60;
  if (minutes < 100) return std::to_string(minutes) + " min";
  const long m = minutes % 60;
  return std::to_string(minutes / 60) + " h " + (m < 10 ? "0" : "") + std::to_string(m) + " min";
}

namespace {

// left_seconds: the epochs still to come at this run's pace so far (0: the last epoch).
void log_epoch(std::ostream& out, const Config& cfg, const QatModelImpl& model, int epoch, double lr,
               const EpochTotals& totals, const EvalResult& test, double secs, double eval_secs, double left_seconds,
               RunProgress& p) {
  std::string stats_line, stats_csv;
  layer_stats(model, stats_line, stats_csv);
  std::ostringstream row;
  row << epoch + 1 << "," << lr << "," << totals.train_loss << "," << totals.train_accuracy << "," << test.loss << ","
      << test.accuracy << "," << secs << "," << eval_secs << stats_csv << "\n";
  p.metrics += row.str();
  out << std::fixed << "epoch " << epoch + 1 << "/" << cfg.num_epochs << std::setprecision(6) << "  lr " << lr
      << std::setprecision(4) << "  train loss " << totals.train_loss << " acc " << std::setprecision(2)
      << 100 * totals.train_accuracy << "%  test loss " << std::setprecision(4) << test.loss << " acc "
      << std::setprecision(2) << 100 * test.accuracy << "%  " << std::setprecision(1) << secs << " s + eval "
      << eval_secs << " s" << std::defaultfloat << (left_seconds >= 0.5 ? ", ~" + duration_text(left_seconds) + " left" : "")
      << stats_line << "\n"
      << std::flush;
}

}  // namespace

TrainResult train(const Config& cfg_in, const TrainOptions& options) {
  std::ostream& out = options.out ? *options.out : std::cout;
  const bool resuming = !options.resume_path.empty();
  Checkpoint resumed;
  Config cfg = run_config(cfg_in, options, resumed);
  configure_compute(cfg);
  const torch::Device device = pick_device();
  Dataset data = load_dataset(cfg);
  resolve_data_shape(cfg, data.info);
  if (cfg.augmentation && !(data.info.images && data.info.quantizer.mode == "per_image")) {
    out << "note: augmentation needs images quantized per_image; this data is trained without it\n";
    cfg.augmentation = false;
  }
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  QatModel model = build_model(cfg);
  model->to(device);
  Optimizer optimizer(model->named_parameters(), cfg);
  WeightAverage average(cfg, model);
  RunProgress progress = resume(resuming ? &resumed : nullptr, options.resume_path, cfg, *model, average, optimizer, out);

  TrainResult result;
  result.checkpoint_path = resuming ? options.resume_path : (fs::path(cfg.output_dir) / (cfg.run_name() + ".pt")).string();
  if (!fs::path(result.checkpoint_path).parent_path().empty())
    fs::create_directories(fs::path(result.checkpoint_path).parent_path());
  const std::string csv_path = fs::path(result.checkpoint_path).replace_extension(".csv").string();

  DataSplit train_set = std::move(data.train), test_set = std::move(data.test);
  train_set.images = train_set.images.to(device), train_set.labels = train_set.labels.to(device);
  train_set.raw = train_set.raw.to(device);
  const Augmenter augment(cfg);
  // Distillation: the teacher's logits on the training images once, on each epoch's augmented
  // copies in the worker that makes them.
  QatModel teacher{nullptr};
  torch::Tensor teacher_train;
  if (!cfg.distill_teacher.empty() && progress.epochs_done < cfg.num_epochs) {
    const auto t0 = Clock::now();
    teacher = load_teacher(cfg, device);
    teacher_train = teacher_outputs(*teacher, train_set.images);
    const double acc = teacher_train.argmax(1).eq(train_set.labels).to(torch::kFloat64).mean().item<double>();
    out << "distillation: teacher " << cfg.distill_teacher << ", " << std::fixed << std::setprecision(2) << 100 * acc
        << " % on the " << train_set.labels.size(0) << " training images (" << std::setprecision(1)
        << std::chrono::duration<double>(Clock::now() - t0).count() << " s; the augmented copies take it again every epoch), weight "
        << std::defaultfloat << cfg.distill_weight << ", temperature " << cfg.distill_temperature << "\n"
        << std::flush;
  }

  Checkpoint boundary = snapshot(cfg, average, optimizer, data.info.quantizer, progress);
  // The next epoch's samples are made on a worker thread while this epoch trains.
  auto prepare = [&](int epoch) {
    return std::async(std::launch::async, [&cfg, &train_set, &augment, &teacher, &teacher_train, epoch] {
      torch::set_num_threads(1);
      EpochData d;
      // A stopping run uses nothing of this: return at once, since the run waits for this thread.
      if (StopSignals::requested()) return d;
      d.samples = epoch_samples(cfg, train_set, augment, static_cast<uint64_t>(cfg.seed) * 1000003ull + 500009ull + static_cast<uint64_t>(epoch));
      if (!teacher.is_empty()) {  // the training images come first (epoch_samples)
        const int64_t n = teacher_train.size(0), total = d.samples.images.size(0);
        if (total == n) {
          d.teacher = teacher_train;
        } else {
          const torch::Tensor copies = teacher_outputs(*teacher, d.samples.images.narrow(0, n, total - n));
          if (copies.defined()) d.teacher = torch::cat({teacher_train, copies});
        }
      }
      return d;
    });
  };
  // Declared before the worker's future, so destroyed after it: a worker still running when the
  // run stops sees the signal (and returns at once) until the future is done waiting for it.
  StopSignals signals;
  std::future<EpochData> next_samples;
  if (progress.epochs_done < cfg.num_epochs) next_samples = prepare(progress.epochs_done);
  log_run_start(out, cfg, data.info, train_set, test_set, optimizer, device);
  if (average.enabled())
    out << "weight average: ema_decay " << cfg.ema_decay
        << " (the average of the weights is evaluated, saved and exported; the trained weights are kept for --resume)\n";

  const auto loop_start = Clock::now();
  const int first_epoch = progress.epochs_done;
  ThreadGovernor threads(cfg);
  for (int epoch = progress.epochs_done; epoch < cfg.num_epochs && !StopSignals::requested(); ++epoch) {
    if (epoch > first_epoch) out << threads.update(epoch) << std::flush;
    const auto t0 = Clock::now();
    torch::manual_seed(static_cast<uint64_t>(cfg.seed) * 1000003ull + static_cast<uint64_t>(epoch));
    const double schedule = schedule_factor(cfg, epoch), lr = cfg.learning_rate * schedule;
    // after each of the first maxw_update_until_epoch epochs (as the reference trainer does)
    if (epoch > 0 && epoch <= cfg.maxw_update_until_epoch) model->update_clipping(cfg);
    const EpochData epoch_data = next_samples.get();
    if (StopSignals::requested()) break;  // the worker may have returned without the samples
    const DataSplit& samples = epoch_data.samples;
    if (epoch + 1 < cfg.num_epochs) next_samples = prepare(epoch + 1);
    const EpochTotals totals =
        run_epoch(*model, optimizer, average, samples, cfg, epoch, schedule, device, options.progress_bar, epoch_data.teacher);
    if (StopSignals::requested()) break;

    const auto t1 = Clock::now();
    average.sync(cfg, epoch);
    const EvalResult test = evaluate(average.model(), test_set);
    const double secs = std::chrono::duration<double>(t1 - t0).count();
    const double eval_secs = std::chrono::duration<double>(Clock::now() - t1).count();
    progress.train_seconds += secs + eval_secs;
    progress.test_accuracy = test.accuracy, progress.test_loss = test.loss;
    const double per_epoch = std::chrono::duration<double>(Clock::now() - loop_start).count() / (epoch + 1 - first_epoch);
    log_epoch(out, cfg, average.model(), epoch, lr, totals, test, secs, eval_secs, per_epoch * (cfg.num_epochs - epoch - 1), progress);
    progress.epochs_done = epoch + 1;
    boundary = snapshot(cfg, average, optimizer, data.info.quantizer, progress);
    save_checkpoint_atomic(result.checkpoint_path, boundary);
    write_text_atomic(csv_path, progress.metrics);
  }
  result.epochs_done = progress.epochs_done;
  result.test_accuracy = progress.test_accuracy, result.test_loss = progress.test_loss;
  if (StopSignals::requested()) {
    boundary.meta.interrupted = true;
    save_checkpoint_atomic(result.checkpoint_path, boundary);
    result.interrupted = true;
    std::cerr << "\ninterrupted by signal " << g_stop_signal << ": saved a resumable checkpoint after epoch "
              << result.epochs_done << " to " << result.checkpoint_path << " (the unfinished epoch is repeated on resume)\n"
              << "resume with: bitnetmcu-train --resume " << result.checkpoint_path << "\n";
  }
  return result;
}

}  // namespace bitnetmcu::train
