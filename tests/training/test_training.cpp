// Schedulers, the training smoke test (small FCMNIST, one epoch on 5,000 images, > 90 %),
// deterministic resume and SIGINT handling. Needs data/mnist (scripts/setup.sh).
#include "test_common.hpp"

#include "training/checkpoint.hpp"
#include "training/data.hpp"
#include "training/models.hpp"
#include "training/trainer.hpp"
#include "training/weight_average.hpp"

#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <sstream>
#include <thread>

using namespace bitnetmcu::train;
namespace fs = std::filesystem;

namespace {
bool have_mnist() {
  if (fs::exists(fs::path(BITNETMCU_DATA_DIR) / "mnist" / "train-images-idx3-ubyte")) return true;
  WARN("data/mnist missing: run scripts/setup.sh");
  return false;
}
Config small_config(const std::string& name) {
  Config cfg;
  cfg.data_dir = BITNETMCU_DATA_DIR;
  cfg.output_dir = (fs::temp_directory_path() / ("bitnetmcu_training_tests_" + std::to_string(getpid()))).string();
  cfg.runtag = name + "_";
  cfg.num_threads = 1;
  return cfg;
}
}  // namespace

TEST_CASE("learning-rate schedules") {
  Config cfg;
  cfg.learning_rate = 1.0, cfg.num_epochs = 10;
  cfg.scheduler = "Cosine";
  CHECK(learning_rate_at(cfg, 0) == Approx(1.0));
  CHECK(learning_rate_at(cfg, 5) == Approx(0.5));
  cfg.scheduler = "StepLR", cfg.step_size = 3, cfg.lr_decay = 0.1;
  CHECK(learning_rate_at(cfg, 2) == Approx(1.0));
  CHECK(learning_rate_at(cfg, 3) == Approx(0.1));
  CHECK(learning_rate_at(cfg, 7) == Approx(0.01));
  cfg.scheduler = "CosineWarmRestarts", cfg.T_0 = 4, cfg.T_mult = 2;  // cycles 0-3, 4-11, 12-27
  CHECK(learning_rate_at(cfg, 4) == Approx(1.0));
  CHECK(learning_rate_at(cfg, 8) == Approx(0.5));
  CHECK(learning_rate_at(cfg, 12) == Approx(1.0));
  cfg.T_mult = 1;
  CHECK(learning_rate_at(cfg, 6) == Approx(0.5));
  cfg.halve_lr_epoch = 5;
  CHECK(learning_rate_at(cfg, 6) == Approx(0.25));
}

TEST_CASE("durations in the epoch lines' time left read like the sweep's progress lines") {
  CHECK(duration_text(0.4) == "0 s");
  CHECK(duration_text(42) == "42 s");
  CHECK(duration_text(99) == "99 s");
  CHECK(duration_text(100) == "2 min");
  CHECK(duration_text(1019) == "17 min");
  CHECK(duration_text(5900) == "98 min");
  CHECK(duration_text(7500) == "2 h 05 min");
}

TEST_CASE("automatic CNN thread count: one per core idle at start") {
  CHECK(threads_for_idle(1.0, 2) == 2);
  CHECK(threads_for_idle(0.9, 2) == 2);   // a little background work
  CHECK(threads_for_idle(0.5, 2) == 1);   // one core of two busy
  CHECK(threads_for_idle(0.0, 2) == 1);   // never fewer than one
  CHECK(threads_for_idle(0.5, 8) == 4);
  CHECK(threads_for_idle(-1.0, 4) == 4);  // unknown: every core
}

TEST_CASE("CPU time of other processes between two readings (the per-epoch thread count)") {
  CpuTimes a, b;
  a.total = 1000, a.idle = 400, a.own = 100, a.ok = true;
  b.total = 1200, b.idle = 450, b.own = 150, b.ok = true;
  // 200 ticks: 150 busy, 50 of them ours -> others 100 / 200
  CHECK(other_processes_share(a, b) == Approx(0.5));
  b.own = 400;  // more of ours than busy time (ticks sampled apart): never negative
  CHECK(other_processes_share(a, b) == 0.0);
  b.total = a.total;
  CHECK(other_processes_share(a, b) == -1.0);
  a.ok = false;
  CHECK(other_processes_share(a, b) == -1.0);
  // the real files: this process's CPU time grows while it computes
  const CpuTimes t0 = read_cpu_times();
  REQUIRE(t0.ok);
  CHECK(t0.total > 0);
  CpuTimes t1 = t0;
  volatile double sink = 0;
  for (const auto start = std::chrono::steady_clock::now();
       t1.own == t0.own && std::chrono::steady_clock::now() - start < std::chrono::seconds(5);) {
    for (int i = 0; i < 1000000; ++i) sink = sink + 1.0;
    t1 = read_cpu_times();
  }
  CHECK(t1.own > t0.own);
}

TEST_CASE("smoke: small FCMNIST, one epoch on 5,000 images, above 90 % test accuracy") {
  if (!have_mnist()) return;
  Config cfg = small_config("smoke");
  cfg.network_width1 = 128, cfg.network_width2 = 64, cfg.network_width3 = 0;
  cfg.train_subset = 5000, cfg.num_epochs = 1, cfg.batch_size = 16, cfg.learning_rate = 0.0015;
  cfg.augmentation = false;
  std::ostringstream log;
  TrainOptions opt;
  opt.out = &log;
  const TrainResult r = train(cfg, opt);
  INFO(log.str());
  CHECK(r.epochs_done == 1);
  CHECK(r.test_accuracy > 0.90);
  // --eval reproduces the accuracy from the checkpoint alone
  const EvalResult e = evaluate_checkpoint(r.checkpoint_path, {});
  CHECK(e.accuracy == Approx(r.test_accuracy));
  CHECK(e.count == 10000);
  CHECK(load_checkpoint(r.checkpoint_path).meta.complete);
}

TEST_CASE("resume continues exactly where a run stopped, optimizer state included") {
  if (!have_mnist()) return;
  Config cfg = small_config("resume");
  cfg.optimizer = GENERATE(as<std::string>{}, "Adam", "Muon");
  INFO("optimizer " << cfg.optimizer);
  cfg.network_width1 = cfg.network_width2 = 16, cfg.network_width3 = 0;
  cfg.train_subset = 512, cfg.test_subset = 256, cfg.batch_size = 64;
  cfg.scheduler = "StepLR";  // rate independent of num_epochs
  cfg.QuantType = "2bitsym";
  std::ostringstream log;
  TrainOptions opt;
  opt.out = &log;
  cfg.num_epochs = 3;
  const TrainResult full = train(cfg, opt);
  cfg.num_epochs = 2;
  const TrainResult part = train(cfg, opt);
  opt.resume_path = part.checkpoint_path;
  opt.overrides = {"num_epochs=3"};
  const TrainResult resumed = train(cfg, opt);
  INFO(log.str());
  CHECK(resumed.epochs_done == 3);
  const Checkpoint a = load_checkpoint(full.checkpoint_path), b = load_checkpoint(resumed.checkpoint_path);
  for (const auto& [name, t] : a.tensors) {
    INFO(name);
    CHECK(torch::equal(t, b.tensors.at(name)));
  }
  CHECK(a.metrics_csv.substr(0, a.metrics_csv.find(",seconds")) == b.metrics_csv.substr(0, b.metrics_csv.find(",seconds")));
}

// The same case as tests/python/test_torch_training.py (the Python twin): weights 0, then 1, 2, 4
// after three steps, ema_decay 0.2 -> averages 0.9, 1.8, 3.56 (d = 1/10, 2/11, then the cap 0.2).
TEST_CASE("weight average: the moving average of the weights, step by step") {
  CHECK(average_decay(0.2, 1) == Approx(0.1));
  CHECK(average_decay(0.2, 2) == Approx(2.0 / 11));
  CHECK(average_decay(0.2, 3) == Approx(0.2));
  CHECK(average_decay(0.999, 891) == Approx(0.99));
  Config cfg;
  cfg.network_width1 = 8, cfg.network_width2 = 8, cfg.network_width3 = 0, cfg.input_side = 4;
  cfg.ema_decay = 0.2, cfg.maxw_update_until_epoch = 0;
  QatModel model = build_model(cfg);
  const auto set_all = [&](float v) {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.fill_(v);
  };
  set_all(0);
  WeightAverage average(cfg, model);
  const float expected[] = {0.9f, 1.8f, 3.56f};
  const float weights[] = {1, 2, 4};
  for (int step = 0; step < 3; ++step) {
    set_all(weights[step]);
    average.update();
    for (const auto& p : average.model().parameters()) {
      CHECK(p.min().item<float>() == Approx(expected[step]));
      CHECK(p.max().item<float>() == Approx(expected[step]));
    }
  }
  // checkpoint entries: the average under model/, the trained weights and the count under training/
  std::map<std::string, torch::Tensor> entries;
  average.save(entries);
  CHECK(entries.at("model/fc1.weight").max().item<float>() == Approx(3.56));
  CHECK(entries.at("training/model/fc1.weight").max().item<float>() == 4.0f);
  CHECK(entries.at("training/average_updates").item<int64_t>() == 3);
  WeightAverage loaded(cfg, build_model(cfg));
  loaded.load(entries);
  CHECK(loaded.updates() == 3);
  CHECK(loaded.model().parameters().front().max().item<float>() == Approx(3.56));
  // off: the trained model itself, saved as it is
  cfg.ema_decay = 0;
  WeightAverage off(cfg, model);
  off.update();
  CHECK(&off.model() == model.get());
  entries.clear();
  off.save(entries);
  CHECK(entries.count("training/average_updates") == 0);
}

TEST_CASE("weight average: the trained weights are those of a run without it; --eval and resume use the average") {
  if (!have_mnist()) return;
  Config cfg = small_config("ema");
  cfg.network_width1 = cfg.network_width2 = 16, cfg.network_width3 = 0;
  cfg.train_subset = 512, cfg.test_subset = 256, cfg.batch_size = 64, cfg.num_epochs = 2;
  cfg.scheduler = "StepLR";
  std::ostringstream log;
  TrainOptions opt;
  opt.out = &log;
  const TrainResult plain = train(cfg, opt);
  cfg.ema_decay = 0.9;
  const TrainResult averaged = train(cfg, opt);
  INFO(log.str());
  CHECK(averaged.checkpoint_path != plain.checkpoint_path);  // run name ..._ema_e2
  const Checkpoint a = load_checkpoint(plain.checkpoint_path), b = load_checkpoint(averaged.checkpoint_path);
  // averaging does not change what is trained (same seed, same steps)
  CHECK(torch::equal(a.tensors.at("model/fc1.weight"), b.tensors.at("training/model/fc1.weight")));
  CHECK_FALSE(torch::equal(b.tensors.at("model/fc1.weight"), b.tensors.at("training/model/fc1.weight")));
  CHECK(b.tensors.at("training/average_updates").item<int64_t>() == 2 * (2 * 512) / 64);  // 2 epochs of 512 + 512 augmented
  // the epoch line's accuracy is the average's, as --eval and the exporter see it
  CHECK(evaluate_checkpoint(averaged.checkpoint_path, {}).accuracy == Approx(averaged.test_accuracy));
  // resume: the interrupted-and-resumed run equals the uninterrupted one
  cfg.num_epochs = 1;
  const TrainResult part = train(cfg, opt);
  opt.resume_path = part.checkpoint_path;
  opt.overrides = {"num_epochs=2"};
  const TrainResult resumed = train(cfg, opt);
  const Checkpoint c = load_checkpoint(resumed.checkpoint_path);
  for (const auto& [name, t] : b.tensors) {
    INFO(name);
    CHECK(torch::equal(t, c.tensors.at(name)));
  }
}

TEST_CASE("SIGINT saves a resumable checkpoint and reports the interruption") {
  if (!have_mnist()) return;
  Config cfg = small_config("sigint");
  cfg.network_width1 = cfg.network_width2 = 16, cfg.network_width3 = 0;
  cfg.train_subset = 2000, cfg.test_subset = 100, cfg.batch_size = 4, cfg.num_epochs = 1000;
  std::ostringstream log;
  TrainOptions opt;
  opt.out = &log;
  // Interrupt once the first epoch's checkpoint exists: the trainer's handler is installed by
  // then however slow the machine is (a fixed delay raced data loading on a loaded CI box).
  const fs::path first_checkpoint = fs::path(cfg.output_dir) / (cfg.run_name() + ".pt");
  fs::remove(first_checkpoint);
  std::thread killer([first_checkpoint] {
    for (int i = 0; i < 6000 && !fs::exists(first_checkpoint); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::raise(SIGINT);
  });
  const TrainResult r = train(cfg, opt);
  killer.join();
  CHECK(r.interrupted);
  CHECK(r.epochs_done < 1000);
  const Checkpoint ck = load_checkpoint(r.checkpoint_path);
  CHECK(ck.meta.interrupted);
  CHECK(!ck.meta.complete);
  CHECK(ck.meta.epochs_done == r.epochs_done);
}

// One case worked by hand, the same in tests/python/test_torch_training.py (the Python twin):
// student logits (0, 0), teacher (ln 3, 0), label 0, w = 0.5, T = 2. The teacher's softmax at T
// is (sqrt 3, 1) / (1 + sqrt 3), the student's (1/2, 1/2); CE = ln 2.
TEST_CASE("distillation loss: (1 - w) CE + w T^2 KL(teacher || student) on a case worked by hand") {
  Config cfg;
  cfg.distill_weight = 0.5, cfg.distill_temperature = 2;
  const torch::Tensor student = torch::zeros({1, 2}), y = torch::zeros({1}, torch::kInt64);
  const torch::Tensor teacher = torch::tensor({{std::log(3.0f), 0.0f}});
  const double p = std::sqrt(3.0) / (1 + std::sqrt(3.0)), kl = p * std::log(2 * p) + (1 - p) * std::log(2 * (1 - p));
  CHECK(training_loss(student, y, teacher, cfg).item<double>() == Approx(0.5 * std::log(2.0) + 0.5 * 4 * kl).epsilon(1e-6));
  CHECK(training_loss(student, y, torch::Tensor(), cfg).item<double>() == Approx(std::log(2.0)).epsilon(1e-6));
  CHECK(training_loss(teacher, y, teacher, cfg).item<double>() ==
        Approx(0.5 * torch::nn::functional::cross_entropy(teacher, y).item<double>()).epsilon(1e-6));
  // with a sparsity measure of 0.25 and activation_sparsity 2: + 0.5
  cfg.activation_sparsity = 2;
  CHECK(training_loss(student, y, teacher, cfg, torch::tensor(0.25f)).item<double>() ==
        Approx(0.5 * std::log(2.0) + 0.5 * 4 * kl + 0.5).epsilon(1e-6));
}

TEST_CASE("distillation: a student learns from the teacher's outputs alone; a teacher for other input is refused") {
  if (!have_mnist()) return;
  std::ostringstream log;
  TrainOptions opt;
  opt.out = &log;
  Config teacher_cfg = small_config("teacher");
  teacher_cfg.network_width1 = 128, teacher_cfg.network_width2 = 64, teacher_cfg.network_width3 = 0;
  teacher_cfg.train_subset = 5000, teacher_cfg.test_subset = 2000, teacher_cfg.num_epochs = 1;
  teacher_cfg.batch_size = 16, teacher_cfg.learning_rate = 0.0015, teacher_cfg.augmentation = false;
  const TrainResult teacher = train(teacher_cfg, opt);
  REQUIRE(teacher.test_accuracy > 0.85);

  // distill_weight 1: the labels' term has weight 0, so everything the student learns comes
  // through the teacher's softened outputs (without them it would stay at chance, ~10 %).
  Config cfg = small_config("student");
  cfg.network_width1 = cfg.network_width2 = 32, cfg.network_width3 = 0;
  cfg.train_subset = 5000, cfg.test_subset = 2000, cfg.num_epochs = 2, cfg.batch_size = 32;
  cfg.augmentation = false;
  cfg.distill_teacher = teacher.checkpoint_path, cfg.distill_weight = 1, cfg.distill_temperature = 2;
  const TrainResult student = train(cfg, opt);
  INFO(log.str());
  CHECK(log.str().find("distillation: teacher " + teacher.checkpoint_path) != std::string::npos);
  CHECK(fs::path(student.checkpoint_path).filename().string().find("_kd_e2.pt") != std::string::npos);
  CHECK(student.test_accuracy > 0.75);

  // SIGINT with augmentation on, where a worker makes the next epoch's augmented copies and the
  // teacher's logits for them: the run stops after the first epoch with a resumable checkpoint
  // (the worker sees the signal and returns without its samples; the run does not use them).
  {
    Config stop = cfg;
    stop.runtag = "student_stop_", stop.augmentation = true, stop.num_epochs = 1000;
    const fs::path first_checkpoint = fs::path(stop.output_dir) / (stop.run_name() + ".pt");
    fs::remove(first_checkpoint);
    std::thread killer([first_checkpoint] {
      for (int i = 0; i < 6000 && !fs::exists(first_checkpoint); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::raise(SIGINT);
    });
    const TrainResult r = train(stop, opt);
    killer.join();
    CHECK(r.interrupted);
    CHECK(r.epochs_done >= 1);
    CHECK(r.epochs_done < 1000);
    const Checkpoint ck = load_checkpoint(r.checkpoint_path);
    CHECK(ck.meta.interrupted);
    CHECK(ck.meta.epochs_done == r.epochs_done);
  }

  cfg.input_side = 12;  // the teacher takes 16x16 images
  CHECK_THROWS_WITH(train(cfg, opt), Catch::Contains("distill_teacher") && Catch::Contains("input_side 16"));
  cfg.input_side = 16, cfg.distill_teacher = teacher.checkpoint_path + ".missing";
  CHECK_THROWS_WITH(train(cfg, opt), Catch::Contains("no such checkpoint file"));
}

// Rows worked by hand: (sum h)^2 / (n sum h^2). The same cases in tests/python/test_torch_training.py.
TEST_CASE("activation sparsity measure: (sum h)^2 / (n sum h^2) per row, averaged; 0 for a zero row") {
  const auto measure = [](std::vector<float> row) {
    return activation_sparsity_measure(torch::tensor(row, torch::kFloat32).reshape({1, -1})).item<double>();
  };
  CHECK(measure({1, 1, 1, 1}) == Approx(1.0));
  CHECK(measure({2, 2, 0, 0}) == Approx(0.5));
  CHECK(measure({3, 0, 0, 0}) == Approx(0.25));
  CHECK(measure({0.001f, 0, 0, 0}) == Approx(0.25));  // scale-free
  CHECK(measure({1, 2, 0, 0}) == Approx(9.0 / 20));
  CHECK(measure({0, 0, 0, 0}) == 0.0);
  const torch::Tensor rows = torch::tensor({1.0f, 1.0f, 1.0f, 1.0f, 3.0f, 0.0f, 0.0f, 0.0f}).reshape({2, 4});
  CHECK(activation_sparsity_measure(rows).item<double>() == Approx((1 + 0.25) / 2));
  // no NaN in the gradient of an all-zero row
  const torch::Tensor zero = torch::zeros({1, 4}, torch::requires_grad());
  activation_sparsity_measure(zero).backward();
  CHECK(torch::isfinite(zero.grad()).all().item<bool>());

  // the model's term: the mean of the measures of the inputs of fc2, fc3 and fcl
  torch::manual_seed(3);
  QatModel model = build_model(Config{});
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({5, 1, 16, 16});
  torch::Tensor term;
  CHECK(torch::equal(model->forward(x, &term), model->forward(x)));
  auto dense = [&](const char* name, const torch::Tensor& h) {
    return torch::relu(dynamic_cast<BitLinearImpl&>(model->layer(name)).forward(h));
  };
  const torch::Tensor h1 = dense("fc1", x.flatten(1)), h2 = dense("fc2", h1), h3 = dense("fc3", h2);
  const double want = (activation_sparsity_measure(h1).item<double>() + activation_sparsity_measure(h2).item<double>() +
                       activation_sparsity_measure(h3).item<double>()) / 3;
  CHECK(term.item<double>() == Approx(want).epsilon(1e-5));
}

TEST_CASE("activation sparsity: training with the term leaves fewer nonzero hidden activations") {
  if (!have_mnist()) return;
  std::ostringstream log;
  TrainOptions opt;
  opt.out = &log;
  Config cfg = small_config("sparse");
  cfg.network_width1 = cfg.network_width2 = 64, cfg.network_width3 = 0;
  cfg.train_subset = 5000, cfg.test_subset = 1000, cfg.num_epochs = 2, cfg.batch_size = 32;
  cfg.augmentation = false;
  // the share of the test images' fc1 and fc2 ReLU outputs that are exactly zero
  const auto zero_share = [&](const TrainResult& r) {
    QatModel model = load_model_from_checkpoint(load_checkpoint(r.checkpoint_path));
    model->eval();
    torch::NoGradGuard no_grad;
    const DataSplit test = load_split(cfg, false);
    torch::Tensor h = test.images.flatten(1);
    double zeros = 0, total = 0;
    for (const char* name : {"fc1", "fc2"}) {
      h = torch::relu(dynamic_cast<BitLinearImpl&>(model->layer(name)).forward(h));
      zeros += h.eq(0).sum().item<double>(), total += static_cast<double>(h.numel());
    }
    return zeros / total;
  };
  const TrainResult plain = train(cfg, opt);
  cfg.activation_sparsity = 5;
  const TrainResult sparse = train(cfg, opt);
  INFO(log.str());
  CHECK(fs::path(sparse.checkpoint_path).filename().string().find("_sparse_e2.pt") != std::string::npos);
  const double before = zero_share(plain), after = zero_share(sparse);
  INFO("zero share without the term " << before << ", with it " << after);
  CHECK(after > before + 0.1);
  CHECK(sparse.test_accuracy > 0.85);
}
