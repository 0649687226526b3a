"""bitnetmcu-sweep: sweep-file errors (file:line), grid/random expansion, the results table,
resume and failure recording (python/bitnetmcu_sweep, tools/bitnetmcu-sweep)."""
import dataclasses
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import SOURCE_DIR, data_dir, find_exporter, find_trainer

from bitnetmcu_sweep import backends, frontier, progress, results, spec

SWEEP_TOOL = os.path.join(SOURCE_DIR, "tools", "bitnetmcu-sweep")
BASE = os.path.join(SOURCE_DIR, "trainingparameters.yaml")


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).replace("BASE", BASE))
    return str(path)


def error_of(path):
    with pytest.raises(spec.SweepError) as e:
        spec.load_sweep(path)
    return str(e.value)


# ---- sweep-file errors: each names the file, the line and what was expected ----------------

@pytest.mark.parametrize("text, line, message", [
    ("base: BASE\ngrid: {a: [1, 2]\ntarget: ch32v003\n", 3, "invalid YAML"),
    ("base: BASE\ngrids: {seed: [1, 2]}\ntarget: ch32v003\n", 2, "unknown section 'grids': expected one of"),
    ("base: BASE\ngrid:\n  seed: 3\ntarget: ch32v003\n", 3, "grid 'seed': expected a non-empty list"),
    ("base: BASE\ngrid:\n  seed: []\ntarget: ch32v003\n", 3, "grid 'seed': expected a non-empty list"),
    ("base: BASE\nrandom:\n  seed: {gauss: [1, 2]}\ntarget: ch32v003\nbudget: 2\n", 3,
     "random 'seed': unknown distribution 'gauss'"),
    ("base: BASE\nrandom:\n  learning_rate: {uniform: [0.1, 0.01]}\ntarget: ch32v003\nbudget: 2\n", 3,
     "low 0.1 is above high 0.01"),
    ("base: BASE\nrandom:\n  learning_rate: {log_uniform: [0, 0.01]}\ntarget: ch32v003\nbudget: 2\n", 3,
     "log_uniform: expected positive bounds"),
    ("base: BASE\nrandom:\n  network_width1: {int: [8, x]}\ntarget: ch32v003\nbudget: 2\n", 3,
     "expected an integer, got 'x'"),
    ("base: BASE\nrandom:\n  seed: {choice: [1, 2]}\ntarget: ch32v003\n", 1, "missing section 'budget'"),
    ("base: BASE\ngrid: {seed: [1]}\ntarget: ch32v004\n", 3, "target: expected one of ch32v003, ch32v002"),
    ("base: BASE\ngrid: {seed: [1]}\ntarget:\n  chip: ch32v002\n  flash: 20000\n", 4,
     "target flash: 20000 B is more than the ch32v002 has (16384 B)"),
    ("base: BASE\ngrid: {seed: [1]}\ntarget:\n  chip: ch32v003\n  speed: 3\n", 5, "target: unknown key 'speed'"),
    ("base: BASE\ngrid: {seed: [1]}\ntarget: {chip: ch32v003, ram: -5}\n", 3, "target ram: expected an integer >= 1"),
    ("base: BASE\nset:\n  seed: 2\ngrid:\n  seed: [1, 2]\ntarget: ch32v003\n", 5, "key 'seed' is already set at line 3"),
    ("base: BASE\nset:\n  runtag: x\ntarget: ch32v003\n", 3, "key 'runtag': set by the sweep"),
    ("base: BASE\nset:\n  seed: 1\n  seed: 2\ntarget: ch32v003\n", 4, "key 'seed' given twice (first at line 3)"),
    ("base: BASE\nset:\n  seed: [1, 2]\ntarget: ch32v003\n", 3, "set 'seed': expected a single value"),
    ("base: BASE\ngrid: {seed: [1]}\ntarget: ch32v003\nbudget: 0\n", 4, "budget: expected an integer >= 1"),
    ("grid: {seed: [1]}\ntarget: ch32v003\n", 1, "missing section 'base'"),
    ("base: nowhere.yaml\ngrid: {seed: [1]}\ntarget: ch32v003\n", 1, "base: configuration file"),
    ("base: BASE\ngrid: {seed: [1]}\n", 1, "missing section 'target'"),
    ("- base\n- target\n", 1, "sweep file: expected a mapping"),
])
def test_bad_sweep_file_names_file_line_and_expectation(tmp_path, text, line, message):
    path = write(tmp_path, text)
    err = error_of(path)
    assert err.startswith(f"{path}:{line}: "), err
    assert message in err, err


def test_missing_sweep_file(tmp_path):
    assert "cannot open sweep file" in error_of(str(tmp_path / "none.yaml"))


@pytest.fixture(scope="module")
def trainer():
    path = find_trainer()
    if not path:
        pytest.skip("bitnetmcu-train not built (the sweep checks keys and values with it)")
    return path


@pytest.mark.parametrize("text, line, message", [
    # the trainer's own message, at the sweep-file line of the value
    ("base: BASE\ngrid:\n  QuantType:\n    - 4bitsym\n    - 3bit\ntarget: ch32v003\n", 5,
     "key 'QuantType': expected one of Binary, Ternary, 2bitsym, 4bitsym, 4bit, 8bit, FP130, NF4, None, got '3bit'"),
    ("base: BASE\nset:\n  num_epoch: 3\ntarget: ch32v003\n", 3, "unknown key 'num_epoch'"),
    ("base: BASE\nrandom:\n  network_width1: {int: [0, 0]}\ntarget: ch32v003\nbudget: 1\n", 3,
     "key 'network_width1': expected an integer in [1, 4096], got '0'"),
    ("base: BASE\ngrid:\n  shape:\n    - {model: FCMNIST, QuantType_conv1: FP130}\ntarget: ch32v003\n", 4,
     "key 'QuantType_conv1': model FCMNIST has no conv layers"),
])
def test_bad_config_values_are_reported_at_their_line(tmp_path, trainer, text, line, message):
    path = write(tmp_path, text)
    sweep = spec.load_sweep(path)
    with pytest.raises(spec.SweepError) as e:
        spec.resolve(sweep, spec.expand(sweep), trainer)
    assert str(e.value).startswith(f"{path}:{line}: "), str(e.value)
    assert message in str(e.value)


def test_cli_reports_sweep_errors_with_exit_2(tmp_path):
    path = write(tmp_path, "base: BASE\ngrids: {seed: [1]}\ntarget: ch32v003\n")
    p = subprocess.run([sys.executable, SWEEP_TOOL, path, "--dry-run"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.startswith(f"bitnetmcu-sweep: {path}:2: unknown section 'grids'"), p.stderr


# ---- expansion -----------------------------------------------------------------------------

def test_grid_is_the_cartesian_product_in_file_order(tmp_path):
    sweep = spec.load_sweep(write(tmp_path, """\
        base: BASE
        set: {num_epochs: 2}
        grid:
          QuantType: [2bitsym, Ternary]
          network_width1: [16, 24, 32]
        target: ch32v003
        """))
    runs = spec.expand(sweep)
    assert [(r.overrides["QuantType"], r.overrides["network_width1"]) for r in runs] == [
        ("2bitsym", "16"), ("2bitsym", "24"), ("2bitsym", "32"), ("Ternary", "16"), ("Ternary", "24"), ("Ternary", "32")]
    assert all(r.overrides["num_epochs"] == "2" for r in runs)
    assert runs[4].lines == {"num_epochs": 2, "QuantType": 4, "network_width1": 5}


def test_budget_truncates_the_grid(tmp_path):
    sweep = spec.load_sweep(write(tmp_path, "base: BASE\ngrid: {seed: [1, 2, 3, 4, 5]}\ntarget: ch32v003\nbudget: 3\n"))
    assert [r.overrides["seed"] for r in spec.expand(sweep)] == ["1", "2", "3"]


def test_grid_bundles_set_several_keys_per_value(tmp_path):
    sweep = spec.load_sweep(write(tmp_path, """\
        base: BASE
        grid:
          shape:
            - {QuantType: Ternary, network_width1: 20}
            - {QuantType: Binary, network_width1: 32, network_width3: 0}
          seed: [1, 2]
        target: ch32v003
        """))
    runs = spec.expand(sweep)
    assert [r.overrides_text() for r in runs] == [
        "QuantType=Ternary network_width1=20 seed=1", "QuantType=Ternary network_width1=20 seed=2",
        "QuantType=Binary network_width1=32 network_width3=0 seed=1",
        "QuantType=Binary network_width1=32 network_width3=0 seed=2"]
    assert runs[2].lines["network_width3"] == 5


def test_random_runs_are_budget_many_in_range_and_reproducible(tmp_path):
    text = """\
        base: BASE
        grid: {QuantType: [2bitsym, Ternary]}
        random:
          learning_rate: {log_uniform: [0.0001, 0.01]}
          muon_learning_rate: {uniform: [0.005, 0.02]}
          network_width1: {int: [8, 10]}
          WScale: {choice: [PerTensor, PerOutput]}
        target: ch32v003
        budget: 40
        sweep_seed: 7
        """
    runs = spec.expand(spec.load_sweep(write(tmp_path, text)))
    assert len(runs) == 40
    assert [r.overrides["QuantType"] for r in runs[:4]] == ["2bitsym", "Ternary", "2bitsym", "Ternary"]
    assert all(1e-4 <= float(r.overrides["learning_rate"]) <= 1e-2 for r in runs)
    assert all(0.005 <= float(r.overrides["muon_learning_rate"]) <= 0.02 for r in runs)
    assert {r.overrides["network_width1"] for r in runs} == {"8", "9", "10"}
    assert {r.overrides["WScale"] for r in runs} == {"PerTensor", "PerOutput"}
    lrs = sorted(float(r.overrides["learning_rate"]) for r in runs)
    assert lrs[0] < 1e-3 < lrs[-1]  # log-uniform: both decades are sampled
    again = spec.expand(spec.load_sweep(write(tmp_path, text, "t.yaml")))
    assert [r.overrides for r in again] == [r.overrides for r in runs]
    other_seed = spec.expand(spec.load_sweep(write(tmp_path, text.replace("sweep_seed: 7", "sweep_seed: 8"), "u.yaml")))
    assert [r.overrides for r in other_seed] != [r.overrides for r in runs]


def test_runs_with_the_same_resolved_config_are_one_run(tmp_path, trainer):
    # 64 is the base's network_width1: both grid values resolve to the same configuration
    sweep = spec.load_sweep(write(tmp_path, "base: BASE\ngrid: {network_width1: [64, 32, '64']}\ntarget: ch32v003\n"))
    runs = spec.resolve(sweep, spec.expand(sweep), trainer)
    assert [r.overrides["network_width1"] for r in runs] == ["64", "32"]
    assert runs[0].run_name == "FCMNIST_4bitsym_RMS_w64_64_64_e10"
    assert runs[1].config["network_width1"] == 32


def test_runs_recorded_before_a_config_key_existed_keep_their_ids(tmp_path, trainer):
    """A row recorded by an older trainer lacks today's newer keys (its id hashed without them):
    the same run today takes the row's id, a run that sets the new key away from its default does not."""
    sweep = spec.load_sweep(write(tmp_path, "base: BASE\ngrid: {ema_decay: [0, 0.999]}\ntarget: ch32v003\n"))
    runs = spec.resolve(sweep, spec.expand(sweep), trainer)
    defaults = spec.config_defaults(trainer)
    assert defaults["ema_decay"] == 0 and defaults["network_width1"] == 64
    old = {k: v for k, v in runs[0].config.items() if k != "ema_decay"}
    old["output_dir"] = "elsewhere"  # not part of a run's identity
    rows = {"0123456789": {"run_id": "0123456789", "status": "ok", "config": old}}
    fresh = [r.run_id for r in runs]
    spec.adopt_recorded_ids(runs, rows, trainer)
    assert runs[0].run_id == "0123456789" and runs[1].run_id == fresh[1]
    old["network_width1"] = 32  # a different run
    runs = spec.resolve(sweep, spec.expand(sweep), trainer)
    spec.adopt_recorded_ids(runs, rows, trainer)
    assert [r.run_id for r in runs] == fresh


# ---- results table, pool size, frontier ----------------------------------------------------

def _append_many(args):
    out_dir, worker = args
    for i in range(40):
        results.append_row(out_dir, {"run_id": f"{worker}-{i}", "status": "ok", "overrides": "x=" + "y" * 500,
                                     "config": {"pad": "z" * 3000}})


def test_concurrent_appends_never_tear_or_lose_rows(tmp_path):
    with multiprocessing.Pool(6) as pool:
        pool.map(_append_many, [(str(tmp_path), w) for w in range(6)])
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 240 and all(json.loads(l)["config"]["pad"] == "z" * 3000 for l in lines)
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("run_id,index,status") and len(csv_lines) == 241
    assert len(results.load_rows(str(tmp_path))) == 240


def test_pool_size_keeps_runs_times_threads_within_the_cores():
    assert backends.pool_size(cores=2, threads=1) == 2
    assert backends.pool_size(cores=2, threads=2) == 1
    assert backends.pool_size(cores=2, threads=4) == 1
    assert backends.pool_size(cores=16, threads=4) == 4
    assert backends.pool_size(cores=16, threads=4, jobs=2) == 2
    assert backends.pool_size(cores=2, threads=1, jobs=8) == 2


# ---- progress of long runs ------------------------------------------------------------------

EPOCH_LINE = ("epoch {e}/{n}  lr 0.000872  train loss 0.0328 acc 98.99%  test loss 0.0235 acc {acc}%  "
              "60.1 s + eval 2.8 s | conv1 s=8.92\n")


def test_last_epoch_reads_the_trainers_last_epoch_line(tmp_path):
    log = tmp_path / "train.log"
    assert progress.last_epoch(str(log)) is None  # not there yet
    log.write_text("$ bitnetmcu-train ...\nloading MNIST\n")
    assert progress.last_epoch(str(log)) is None
    log.write_text("$ bitnetmcu-train ...\n" + "".join(EPOCH_LINE.format(e=e, n=60, acc=99.0 + e / 100) for e in (1, 2, 3))
                   + "epoch 4/60  lr 0.0008")  # a line being written
    assert progress.last_epoch(str(log)) == (3, 60, 99.03)
    # a long log: only its end is read
    log.write_text("".join(EPOCH_LINE.format(e=e, n=900, acc=98.5) for e in range(1, 901)))
    assert progress.last_epoch(str(log)) == (900, 900, 98.5)


def test_duration_reads_like_a_person_would_say_it():
    assert [progress.duration(s) for s in (0, 42, 99, 100, 1019, 5900, 7500)] == \
        ["0 s", "42 s", "99 s", "2 min", "17 min", "98 min", "2 h 05 min"]


def test_progress_reports_each_new_epoch_once_with_time_left(tmp_path):
    lines = []
    watch = progress.Progress(60, out=lambda text, flush=False: lines.append(text))
    fresh, resumed = tmp_path / "a.log", tmp_path / "b.log"
    fresh.write_text("$ bitnetmcu-train\n")
    resumed.write_text("".join(EPOCH_LINE.format(e=e, n=10, acc=97.0) for e in (1, 2, 3, 4)))
    watch.started("aaaa", "seed=1", str(fresh))
    watch.started("bbbb", "seed=2", str(resumed))
    assert lines[0] == f"[sweep] start aaaa  seed=1  (log {fresh})"
    assert lines[1] == f"[sweep] start bbbb, resuming after epoch 4  seed=2  (log {resumed})"
    t0 = time.time()
    watch.report(now=t0 + 1)
    assert len(lines) == 2  # no epoch finished since the start
    fresh.write_text(fresh.read_text() + EPOCH_LINE.format(e=1, n=60, acc=98.25))
    resumed.write_text(resumed.read_text() + EPOCH_LINE.format(e=5, n=10, acc=99.1) + EPOCH_LINE.format(e=6, n=10, acc=99.2))
    watch.report(now=t0 + 120)
    # one epoch in ~120 s with 59 left: ~1 h 58 min; two epochs (5, 6) in ~120 s with 4 left: ~4 min
    assert lines[2:] == ["[sweep] aaaa epoch 1/60  test 98.25 %  (2 min so far, ~1 h 58 min left)",
                         "[sweep] bbbb epoch 6/10  test 99.20 %  (2 min so far, ~4 min left)"]
    watch.report(now=t0 + 180)
    assert len(lines) == 4  # nothing new
    resumed.write_text(resumed.read_text() + "".join(EPOCH_LINE.format(e=e, n=10, acc=99.3) for e in (7, 8, 9, 10)))
    watch.finished("aaaa")
    fresh.write_text(fresh.read_text() + EPOCH_LINE.format(e=2, n=60, acc=98.5))
    watch.report(now=t0 + 240)
    assert lines[4:] == ["[sweep] bbbb epoch 10/10  test 99.30 %; training done, exporting  (4 min so far)"]
    assert watch.seen("aaaa") and not watch.seen("cccc")


def test_slurm_wait_reports_tasks_as_their_logs_appear_and_rows_land(tmp_path):
    out = tmp_path / "out"
    runs = [spec.Run(index=i, overrides={"seed": str(i)}, lines={}, run_id=f"run{i}") for i in range(3)]
    tasks = {"runs": [dataclasses.asdict(r) for r in runs]}
    job = {"job_id": "77", "submitted": time.time() - 5}
    (out / "runs" / "run2").mkdir(parents=True)
    stale = out / "runs" / "run2" / "train.log"  # left by an earlier attempt: not this job's task yet
    stale.write_text(EPOCH_LINE.format(e=3, n=10, acc=97.5))
    os.utime(stale, (job["submitted"] - 600, job["submitted"] - 600))
    lines = []
    watch = progress.Progress(60, out=lambda text, flush=False: lines.append(text))
    backends._watch_tasks(watch, str(out), tasks, job)
    assert lines == []
    (out / "runs" / "run0").mkdir()
    (out / "runs" / "run0" / "train.log").write_text("$ bitnetmcu-train\n")
    backends._watch_tasks(watch, str(out), tasks, job)
    assert lines == [f"[sweep] start run0 (task 77_0)  seed=0  (log {out}/runs/run0/train.log)"]
    (out / "runs" / "run0" / "train.log").write_text(EPOCH_LINE.format(e=1, n=2, acc=91.0))
    watch.report()
    assert lines[-1].startswith("[sweep] run0 epoch 1/2  test 91.00 %")
    results.append_row(str(out), dict(backends.runner.failed_row(runs[0], "ch32v003", ""), status="ok", slurm_job="77"))
    backends._watch_tasks(watch, str(out), tasks, job)
    (out / "runs" / "run0" / "train.log").write_text(EPOCH_LINE.format(e=2, n=2, acc=92.0))
    watch.report()
    assert len(lines) == 2  # finished: no more lines for it


def test_status_line_says_what_each_run_is_doing(tmp_path):
    log = tmp_path / "train.log"
    now = time.time()
    assert progress.status_line(None, str(log), now) == "not started"
    log.write_text("$ bitnetmcu-train\n")
    assert progress.status_line(None, str(log), now) == "started, no epoch yet"
    log.write_text(EPOCH_LINE.format(e=16, n=60, acc=99.21))
    os.utime(log, (now - 125, now - 125))
    assert progress.status_line(None, str(log), now) == "epoch 16/60, test 99.21 %, log written 2 min ago"
    failed = {"status": "failed", "engine_accuracy": None, "error": "train: killed by signal SIGKILL"}
    assert progress.status_line(failed, str(log), now) == \
        "epoch 16/60, test 99.21 %, log written 2 min ago (last try failed: train: killed by signal SIGKILL)"
    assert progress.status_line(failed, str(tmp_path / "none.log"), now) == "failed: train: killed by signal SIGKILL"
    ok = {"status": "no_fit", "engine_accuracy": 0.9913, "error": "flash 17000 > 16384"}
    assert progress.status_line(ok, str(log), now) == "no_fit engine 99.13 %"


def test_pareto_frontier_keeps_only_undominated_runs():
    rows = [{"run_id": n, "engine_accuracy": a, "flash_bytes": f, "status": "ok"} for n, a, f in
            [("a", 0.95, 4000), ("b", 0.97, 6000), ("c", 0.96, 7000), ("d", 0.99, 15000), ("e", 0.94, 3000),
             ("f", 0.97, 5000)]]
    assert [r["run_id"] for r in frontier.pareto(rows, "flash_bytes")] == ["e", "a", "f", "d"]
    rows.append({"run_id": "g", "engine_accuracy": 0.999, "flash_bytes": 100, "status": "no_fit"})
    assert [r["run_id"] for r in frontier.top(rows, 2)] == ["d", "f"]


# ---- a real sweep with injected failures: recording and resume -----------------------------

FAKE_TRAINER = """\
#!{python}
# The real trainer, except: seed 13 fails, seed 14 is killed (SIGKILL) -- until FIXED exists.
import os, signal, sys
real, log = {real!r}, {log!r}
args = sys.argv[1:]
if "--check" not in args:
    seed = next((a.split("=", 1)[1] for a in args if a.startswith("seed=")), "resume")
    with open(log, "a") as f:
        f.write(seed + "\\n")
    if not os.path.exists({fixed!r}):
        if seed == "13":
            print("boom: injected failure", file=sys.stderr)
            sys.exit(3)
        if seed == "14":
            os.kill(os.getpid(), signal.SIGKILL)
os.execv(real, [real] + args)
"""


def test_failures_are_recorded_and_a_rerun_resumes(tmp_path):
    trainer, exporter = find_trainer(), find_exporter()
    if not trainer or not exporter:
        pytest.skip("bitnetmcu-train / bitnetmcu-export not built")
    if not os.path.exists(os.path.join(data_dir(), "mnist", "t10k-images-idx3-ubyte")):
        pytest.skip("MNIST not found (run scripts/setup.sh)")
    log, fixed = tmp_path / "trained.txt", tmp_path / "FIXED"
    fake = tmp_path / "fake-train"
    fake.write_text(FAKE_TRAINER.format(python=sys.executable, real=trainer, log=str(log), fixed=str(fixed)))
    fake.chmod(0o755)
    sweep = write(tmp_path, f"""\
        base: BASE
        set: {{num_epochs: 1, train_subset: 2000, learning_rate: 0.01, network_width1: 8, network_width2: 8, network_width3: 0,
               data_dir: {data_dir()}}}
        grid:
          run:
            - {{seed: 1, network_width1: 16, network_width2: 16}}
            - {{seed: 13}}
            - {{seed: 14}}
        target: {{chip: ch32v003, weight_bytes: 1500}}
        """)
    out = tmp_path / "out"
    cmd = [sys.executable, SWEEP_TOOL, sweep, "--out", str(out), "--trainer", str(fake), "--exporter", exporter,
           "--no-firmware", "--jobs", "1"]

    def sweep_rows():
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout, {r["config"]["seed"]: r for r in results.load_rows(str(out)).values()}

    stdout, rows = sweep_rows()
    assert "3 runs (0 finished, 3 to run)" in stdout
    starts = [l for l in stdout.splitlines() if l.startswith("[sweep] start ")]  # one per run, naming its log
    assert len(starts) == 3 and all(l.endswith("train.log)") for l in starts), stdout
    # the progress reader understands the real trainer's epoch line (C++ log_epoch): the two must not drift
    epoch = progress.last_epoch(os.path.join(str(out), "runs", rows[1]["run_id"], "train.log"))
    assert epoch is not None and epoch[:2] == (1, 1) and abs(epoch[2] - 100 * rows[1]["float_accuracy"]) < 0.006
    ok = rows[1]
    assert ok["status"] == "no_fit" and ok["fits"] is False  # FC 16/16, 4bitsym: more than 1500 B of weights
    assert ok["error"] == f"weight_bytes {ok['weight_bytes']} > 1500" and ok["weight_bytes"] > 1500
    assert 0.25 < ok["engine_accuracy"] <= 1 and ok["float_accuracy"] > 0.25  # above chance (0.1)
    assert rows[13]["status"] == "failed" and "train: exit status 3" in rows[13]["error"]
    assert "boom: injected failure" in rows[13]["error"]
    assert rows[14]["status"] == "failed" and "train: killed by signal SIGKILL" in rows[14]["error"]
    assert log.read_text().split() == ["1", "13", "14"]
    assert (out / "frontier.md").exists() and (out / "frontier.png").exists() and (out / "frontier.svg").exists()

    # rerun: the finished run is skipped, the failed ones are tried again (and fail again)
    stdout, rows = sweep_rows()
    assert "3 runs (1 finished, 2 to run)" in stdout
    assert log.read_text().split() == ["1", "13", "14", "13", "14"]
    # fixed: the two run, then nothing is left
    fixed.write_text("")
    stdout, rows = sweep_rows()
    assert {s: r["status"] for s, r in rows.items()} == {1: "no_fit", 13: "ok", 14: "ok"}
    assert all(rows[s]["weight_bytes"] <= 1500 and rows[s]["flash_bytes"] <= 16384 for s in (13, 14))
    assert log.read_text().split() == ["1", "13", "14", "13", "14", "13", "14"]
    stdout, _ = sweep_rows()
    assert "3 runs (3 finished, 0 to run)" in stdout
    p = subprocess.run(cmd + ["--status"], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    states = {l.split()[0]: l.strip() for l in p.stdout.splitlines()[1:]}
    assert states[rows[1]["run_id"]].startswith(f"{rows[1]['run_id']} no_fit engine ")
    assert states[rows[13]["run_id"]].startswith(f"{rows[13]['run_id']} ok engine "), p.stdout
    assert len((out / "results.jsonl").read_text().splitlines()) == 7
    assert len((out / "results.csv").read_text().splitlines()) == 8  # header + 7 rows

    # the best fitting run, exported with its recipe
    best = max((rows[13], rows[14]), key=lambda r: r["engine_accuracy"])
    modeldata = tmp_path / "modeldata"
    p = subprocess.run(cmd + ["--export-best", "tiny_best", "--export-dir", str(modeldata)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    recipe = json.loads((modeldata / "zoo" / "tiny_best.sweep.json").read_text())
    assert recipe["row"]["run_id"] == best["run_id"] and recipe["config"]["seed"] == best["config"]["seed"]
    assert recipe["zoo_sh_entry"] == f"tiny_best|ch32v003|{best['overrides']}"
    report = json.loads((modeldata / "tiny_best.report.json").read_text())
    assert report["verification"]["int_accuracy"] == best["engine_accuracy"] and report["target"]["fits"]
    assert (modeldata / "tiny_best.h").exists() and len(list((modeldata / "zoo").glob("tiny_best_FCMNIST_*.pt"))) == 1
    # a chosen run instead of the best; one that does not fit, or is not there, is refused
    other = rows[14] if best is rows[13] else rows[13]
    p = subprocess.run(cmd + ["--export-best", "tiny_other", "--run", other["run_id"], "--export-dir", str(modeldata)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads((modeldata / "zoo" / "tiny_other.sweep.json").read_text())["row"]["run_id"] == other["run_id"]
    for bad, why in ((rows[1]["run_id"], "only a finished run that fits"), ("0123456789", "no such run")):
        p = subprocess.run(cmd + ["--export-best", "tiny_bad", "--run", bad, "--export-dir", str(modeldata)],
                           capture_output=True, text=True)
        assert p.returncode != 0 and why in p.stderr, p.stdout + p.stderr
    assert not (modeldata / "tiny_bad.h").exists()


SLOW_TRAINER = """\
#!{python}
# The real trainer, after noting that the run started and a pause (time to stop the sweep).
import os, sys, time
real, folder = {real!r}, {folder!r}
args = sys.argv[1:]
if "--check" not in args:
    seed = next(a.split("=", 1)[1] for a in args if a.startswith("seed="))
    open(os.path.join(folder, "started-" + seed), "w").close()
    time.sleep(3)
os.execv(real, [real] + args)
"""


def test_sigterm_stops_new_runs_and_lets_the_running_one_finish(tmp_path):
    trainer, exporter = find_trainer(), find_exporter()
    if not trainer or not exporter:
        pytest.skip("bitnetmcu-train / bitnetmcu-export not built")
    if not os.path.exists(os.path.join(data_dir(), "mnist", "t10k-images-idx3-ubyte")):
        pytest.skip("MNIST not found (run scripts/setup.sh)")
    slow = tmp_path / "slow-train"
    slow.write_text(SLOW_TRAINER.format(python=sys.executable, real=trainer, folder=str(tmp_path)))
    slow.chmod(0o755)
    sweep = write(tmp_path, f"""\
        base: BASE
        set: {{num_epochs: 1, train_subset: 500, network_width1: 8, network_width2: 8, network_width3: 0,
               data_dir: {data_dir()}}}
        grid: {{seed: [1, 2]}}
        target: ch32v003
        """)
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, SWEEP_TOOL, sweep, "--out", str(out), "--trainer", str(slow),
                          "--exporter", exporter, "--no-firmware", "--jobs", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(600):
        if (tmp_path / "started-1").exists():
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    output, _ = p.communicate(timeout=300)
    assert p.returncode == 130, output
    assert "interrupted" in output
    rows = list(results.load_rows(str(out)).values())
    assert [r["config"]["seed"] for r in rows] == [1] and rows[0]["status"] == "ok", output
    assert not (tmp_path / "started-2").exists()
