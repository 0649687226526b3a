// The training loop: Adam, schedulers, per-epoch clipping updates, progress output, metrics
// CSV, atomic per-epoch checkpoints, resume, and SIGINT/SIGTERM handling.
#pragma once
#include "checkpoint.hpp"
#include "config.hpp"
#include "data.hpp"
#include "models.hpp"

#include <iosfwd>
#include <string>

namespace bitnetmcu::train {

// The schedule's factor for an epoch (0-based; 1 at the start): the scheduler, then
// halve_lr_epoch. It scales learning_rate (Adam) and muon_learning_rate alike.
double schedule_factor(const Config& cfg, int epoch);
// learning_rate * schedule_factor: the Adam rate of an epoch.
double learning_rate_at(const Config& cfg, int epoch);
// A duration as the epoch lines write the time left: "42 s", "17 min", "2 h 05 min"
// (bitnetmcu-sweep's progress lines, python/bitnetmcu_sweep/progress.py, read alike).
std::string duration_text(double seconds);

struct TrainOptions {
  std::string resume_path;        // continue this checkpoint (its config, plus `overrides`)
  std::vector<std::string> overrides;  // applied on top of the resumed config
  std::ostream* out = nullptr;    // epoch lines (default std::cout)
  bool progress_bar = true;       // live bar on stderr, only when stderr is a terminal
};

struct TrainResult {
  std::string checkpoint_path;
  int epochs_done = 0;
  double test_accuracy = 0, test_loss = 0;
  bool interrupted = false;       // SIGINT/SIGTERM: a resumable checkpoint was written
};

// Trains `cfg` from scratch (options.resume_path empty) or resumes a checkpoint.
TrainResult train(const Config& cfg, const TrainOptions& options);

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t count = 0;
};
// Float (QAT) loss and accuracy of a model on a split.
EvalResult evaluate(QatModelImpl& model, const DataSplit& split, int64_t batch_size = 500);
// --eval: a checkpoint's test loss/accuracy; `overrides` may change e.g. data_dir.
EvalResult evaluate_checkpoint(const std::string& path, const std::vector<std::string>& overrides);

// Sets torch's intra-op thread count of the calling thread: cfg.num_threads, or when 0: one
// per core that was idle at start for CNNMNIST (a thread on a busy core holds the others up at
// every op), 1 for FCMNIST (its layers are too small to split; the augmented copy of the next
// epoch is made on a worker thread meanwhile). Measured in bench/train.
// Also keeps freed memory for reuse (glibc): by default each tensor over 128 KB-32 MB (a CNN-64
// activation at batch 128 is 6.4 MB) is a fresh mmap whose pages fault in on first touch and
// are returned on free; that cost ~3.5 ms per such tensor, more than the convolution itself
// (bench_train --profile showed high system time; conv1's forward timed alone at batch 128,
// minimum of 60 calls: 4.7 ms -> 1.0 ms).
void configure_compute(const Config& cfg);
// Its CNNMNIST rule: the cores idle at start (fraction `idle` of the machine's CPU time, or -1
// when unknown: all of them), at least 1. A run re-applies it before each epoch to the CPU time
// other processes used during the last one (never above the start's count).
int threads_for_idle(double idle, int cores);

// CPU time so far in clock ticks: the machine's (all cores; /proc/stat) and this process's
// (/proc/self/stat utime + stime). ok is false where the files cannot be read.
struct CpuTimes {
  uint64_t total = 0, idle = 0, own = 0;
  bool ok = false;
};
CpuTimes read_cpu_times();
// The share of the machine's CPU time between two readings that other processes used (busy time
// minus this process's), in [0, 1]; -1 when unknown.
double other_processes_share(const CpuTimes& a, const CpuTimes& b);

// Call first thing in main(): unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, re-executes the
// program with a wait policy for LibTorch's OpenMP (libgomp) threads, which fork and join for
// every op: a joined thread spins, then sleeps. libgomp reads the policy when it is loaded,
// before main, hence the re-exec (Linux /proc/self/exe; on failure it just returns). It only
// matters with 2 or more intra-op threads. Measured with bench_train --cases cnn-aug --threads 2
// --profile (2 cores; median ms per CNN step):
//   idle machine:  passive 27-38, spin 10,000 18-26, libgomp's default (long spin) 16-19
//   load ~15:      passive 240-330, spin 10,000 500-550, default spin ~1,500
//   one core of two busy (`yes > /dev/null`), s per CNN-64 epoch: spin 10,000 36.0, passive 15.9
//   (and one thread 11.3, which is what num_threads 0 then picks, configure_compute)
// So: when at least three quarters of the machine's CPU time was idle over 200 ms at start
// (/proc/stat; the load average lags by a minute), GOMP_SPINCOUNT=10000 (a short spin, then
// sleep); otherwise OMP_WAIT_POLICY=PASSIVE (sleep at once).
void choose_openmp_wait_policy(char** argv);

// The samples of one epoch: the plain training set, plus one augmented copy of it when
// cfg.augmentation (SPEC §2), built in large batches from a generator seeded with `seed`.
DataSplit epoch_samples(const Config& cfg, const DataSplit& train, const Augmenter& augment, uint64_t seed);

// The training loss of a batch: cross entropy of logits against labels y and, when `teacher`
// (the distillation teacher's logits for the same samples) is defined,
// (1 - w) CE + w T^2 KL(softmax(teacher / T) || softmax(logits / T)), w = distill_weight,
// T = distill_temperature; plus activation_sparsity * `sparsity` when that is defined (the
// model's sparsity measure, QatModelImpl::forward). python/train.py training_loss is its twin
// (both tested on one case).
torch::Tensor training_loss(const torch::Tensor& logits, const torch::Tensor& y, const torch::Tensor& teacher,
                            const Config& cfg, const torch::Tensor& sparsity = {});

}  // namespace bitnetmcu::train
