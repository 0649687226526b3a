"""bitnetmcu-sweep: command line (tools/bitnetmcu-sweep calls main())."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys

from . import backends, frontier, progress, results, runner, spec

USAGE_EPILOG = """
Each run: bitnetmcu-train -> bitnetmcu-export --target CHIP -> firmware + QEMU twin (instructions
per inference) -> one row appended to OUT/results.csv and OUT/results.jsonl. Runs that do not fit
the target are recorded (status no_fit), failed or killed runs too (status failed, with the
error); a rerun skips the finished runs and resumes a killed run from its checkpoint. Afterwards
OUT/frontier.md and OUT/frontier.{png,svg} hold the Pareto frontiers.

  bitnetmcu-sweep sweeps/tiny_fc.yaml                       # local, runs x threads <= cores
  bitnetmcu-sweep sweeps/tiny_fc.yaml --backend slurm       # one sbatch --array job, waits
  bitnetmcu-sweep sweeps/tiny_fc.yaml --backend slurm --no-wait; bitnetmcu-sweep sweeps/tiny_fc.yaml --collect
  bitnetmcu-sweep sweeps/tiny_fc.yaml --status              # each run: result, epoch reached, or not started
  bitnetmcu-sweep sweeps/tiny_fc.yaml --report --top 5      # tables and plot of what is there
  bitnetmcu-sweep sweeps/tiny_fc.yaml --export-best fc_tiny # best fitting run -> modeldata/ (zoo)
  bitnetmcu-sweep sweeps/tiny_fc.yaml --export-best fc_tiny2 --run 16d42a34b1  # that run instead
Exit status: 0 done (failed runs are rows, not errors), 1 error, 2 bad sweep file or usage.
"""


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bitnetmcu-sweep", description="Architecture and recipe search: "
                                 "trains, exports and measures the runs of a sweep file.",
                                 epilog=USAGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", nargs="?", help="the sweep file (see python/bitnetmcu_sweep/spec.py and sweeps/)")
    ap.add_argument("--out", help="results folder (default: sweeps/results/<name> next to the sweep file)")
    ap.add_argument("--backend", choices=("local", "slurm"), default="local")
    ap.add_argument("--jobs", type=int, help="local: runs at a time (default and maximum: cores / --threads)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per run (num_threads, OMP_NUM_THREADS)")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help=argparse.SUPPRESS)
    ap.add_argument("--build-dir", help="the build tree with the trainer, exporter and firmware inputs (default: build)")
    ap.add_argument("--trainer", help="bitnetmcu-train to use (default: in --build-dir)")
    ap.add_argument("--exporter", help="bitnetmcu-export to use (default: in --build-dir)")
    ap.add_argument("--no-firmware", action="store_true", help="skip the firmware + QEMU step (no instructions, "
                    "flash/RAM from the exporter's estimate)")
    ap.add_argument("--step-timeout", type=float, help="seconds a step of a run may take before it is killed")
    ap.add_argument("--progress-every", type=float, default=60.0, metavar="SECONDS",
                    help="print each running run's latest epoch (test accuracy, time so far and left) at most this "
                    "often (default 60; 0: only a line when a run starts and when it ends)")
    ap.add_argument("--dry-run", action="store_true", help="check the sweep file, list its runs, run nothing")
    ap.add_argument("--status", action="store_true", help="list every run's state (result, or the epoch its train.log "
                    "reached and when it last wrote, or not started), run nothing: for a sweep running elsewhere")
    ap.add_argument("--no-wait", action="store_true", help="slurm: submit and return (collect with --collect)")
    ap.add_argument("--collect", action="store_true", help="slurm: wait for the submitted array, record tasks "
                    "that left no result, write the frontier")
    ap.add_argument("--sbatch-arg", action="append", default=[], help="extra sbatch argument (repeatable), "
                    "e.g. --sbatch-arg=--partition=cpu --sbatch-arg=--time=02:00:00")
    ap.add_argument("--max-parallel", type=int, help="slurm: at most this many array tasks at once (%%N)")
    ap.add_argument("--report", action="store_true", help="write and print the frontier of the results there are, run nothing")
    ap.add_argument("--top", type=int, default=5, metavar="N", help="print the N best fitting runs (default 5)")
    ap.add_argument("--export-best", metavar="NAME", help="export the best fitting run into modeldata/ as NAME "
                    "(checkpoint into modeldata/zoo/, header, model file, report, plots, the sweep row)")
    ap.add_argument("--run", metavar="RUN_ID", help="with --export-best: export this run of the results table instead "
                    "of the best one (it must fit the target)")
    ap.add_argument("--export-dir", help="the modeldata folder --export-best writes to (default: the repository's modeldata/)")
    ap.add_argument("--run-task", nargs=2, metavar=("TASKS_JSON", "INDEX"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if not a.run_task and not a.sweep:
        ap.error("no sweep file given")
    if a.threads < 1 or (a.jobs is not None and a.jobs < 1):
        ap.error("--threads and --jobs expect a positive integer")
    if not a.progress_every >= 0:
        ap.error(f"--progress-every expects seconds >= 0, got {a.progress_every:g}")
    return a


def tools_from(a, source_dir):
    build = os.path.abspath(a.build_dir or os.path.join(source_dir, "build"))
    trainer = a.trainer or os.path.join(build, "training", "bitnetmcu-train")
    exporter = a.exporter or os.path.join(build, "training", "exporter", "bitnetmcu-export")
    for tool in (trainer, exporter):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"bitnetmcu-sweep: {tool} not found: build first (cmake --build build) or pass --build-dir")
    images = None
    if not a.no_firmware:
        images = os.path.join(build, "mcu", "generated", "test_images_200.h")
        missing = [p for p in (images,) if not os.path.exists(p)] + \
                  [t for t in ("riscv64-unknown-elf-g++", "qemu-system-riscv32", "ninja") if not shutil.which(t)]
        if missing:
            raise SystemExit(f"bitnetmcu-sweep: the firmware step needs {', '.join(missing)} "
                             "(build the firmware part, or pass --no-firmware)")
    return runner.Tools(os.path.abspath(trainer), os.path.abspath(exporter), source_dir, images, a.threads, a.step_timeout)


def write_report(sweep, out_dir, top_n):
    rows = list(results.load_rows(out_dir).values())
    if not rows:
        print(f"[sweep] no results in {out_dir} yet")
        return rows
    text = frontier.report(rows, sweep.name, sweep.target.describe())
    with open(os.path.join(out_dir, "frontier.md"), "w") as f:
        f.write(text)
    frontier.plot(rows, os.path.join(out_dir, "frontier"), f"sweep {sweep.name}: {sweep.target.describe()}")
    print(text)
    best = frontier.top(rows, top_n)
    print(frontier.table(best, f"top {top_n} runs that fit {sweep.target.chip}") if best else "no run fits the target")
    print(f"\n[sweep] {out_dir}/frontier.md, frontier.png, frontier.svg, results.csv, results.jsonl")
    return rows


def export_best(sweep, out_dir, name, tools, modeldata, run_id=None):
    """Copies the best fitting run's checkpoint (or run `run_id`'s) to <modeldata>/zoo/<name>_<run
    name>.pt (the zoo's naming, scripts/zoo.sh) and exports it into <modeldata>/ with --target;
    writes the sweep row, the sweep file and the recipe (its overrides) to <modeldata>/zoo/<name>.sweep.json."""
    rows = list(results.load_rows(out_dir).values())
    if run_id:
        row = next((r for r in rows if r["run_id"] == run_id), None)
        if row is None:
            raise SystemExit(f"bitnetmcu-sweep: --run {run_id}: no such run in {out_dir}/results.jsonl")
        if row["status"] != "ok" or not row["fits"]:
            raise SystemExit(f"bitnetmcu-sweep: --run {run_id}: status {row['status']}, fits {row['fits']}: "
                             f"only a finished run that fits {sweep.target.chip} can be exported")
    else:
        best = frontier.top(rows, 1)
        if not best:
            raise SystemExit(f"bitnetmcu-sweep: no run in {out_dir} fits {sweep.target.chip}: nothing to export")
        row = best[0]
    zoo = os.path.join(modeldata, "zoo")
    os.makedirs(zoo, exist_ok=True)
    ckpt = os.path.join(zoo, f"{name}_{row['run_name']}.pt")  # run_name: without the sweep's runtag
    shutil.copyfile(os.path.join(out_dir, row["checkpoint"]), ckpt)
    metrics = os.path.splitext(os.path.join(out_dir, row["checkpoint"]))[0] + ".csv"  # per-epoch metrics
    if os.path.exists(metrics):
        shutil.copyfile(metrics, os.path.splitext(ckpt)[0] + ".csv")
    # relative paths when exporting into this repository (the report records the checkpoint path)
    cwd = os.path.dirname(modeldata)
    cmd = [tools.exporter, os.path.relpath(ckpt, cwd), "--name", name, "--out-dir", os.path.basename(modeldata),
           "--target", sweep.target.chip, "--plots", "--quiet"]
    subprocess.run(cmd, check=True, cwd=cwd)
    here = os.getcwd()
    recipe = {"sweep_file": os.path.relpath(os.path.abspath(sweep.path), here), "base": os.path.relpath(sweep.base, here),
              "overrides": row["overrides"], "zoo_sh_entry": f"{name}|{sweep.target.chip}|{row['overrides']}",
              "row": {k: v for k, v in row.items() if k != "config"}, "config": row["config"]}
    with open(os.path.join(zoo, f"{name}.sweep.json"), "w") as f:
        json.dump(recipe, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"[sweep] exported run {row['run_id']} ({100 * row['engine_accuracy']:.2f} %) as {modeldata}/{name}.h; "
          f"recipe in {zoo}/{name}.sweep.json; scripts/zoo.sh entry:\n  \"{recipe['zoo_sh_entry']}\"")


def main(argv=None, source_dir=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    source_dir = os.path.abspath(source_dir or os.path.join(os.path.dirname(__file__), "..", ".."))
    if a.run_task:
        return backends.run_task(a.run_task[0], int(a.run_task[1]))
    try:
        sweep = spec.load_sweep(a.sweep)
    except spec.SweepError as e:
        print(f"bitnetmcu-sweep: {e}", file=sys.stderr)
        return 2
    out_dir = os.path.abspath(a.out or os.path.join(os.path.dirname(os.path.abspath(a.sweep)), "results", sweep.name))
    if a.report:
        write_report(sweep, out_dir, a.top)
        return 0
    tools = tools_from(a, source_dir)
    if a.export_best:
        export_best(sweep, out_dir, a.export_best, tools, os.path.abspath(a.export_dir or os.path.join(source_dir, "modeldata")),
                    a.run)
        return 0
    if a.collect:
        job_id, missing = backends.wait_and_collect(out_dir, progress_every=a.progress_every)
        print(f"[sweep] Slurm job {job_id} done; {missing} task(s) left no result (recorded as failed)")
        write_report(sweep, out_dir, a.top)
        return 0
    try:
        runs = spec.resolve(sweep, spec.expand(sweep), tools.trainer)
        spec.adopt_recorded_ids(runs, results.load_rows(out_dir), tools.trainer)
    except spec.SweepError as e:
        print(f"bitnetmcu-sweep: {e}", file=sys.stderr)
        return 2
    done = results.finished_ids(out_dir)
    todo = [r for r in runs if r.run_id not in done]
    print(f"[sweep] {sweep.name}: {len(runs)} runs ({len(runs) - len(todo)} finished, {len(todo)} to run), "
          f"target {sweep.target.describe()}, results in {out_dir}")
    if a.dry_run:
        for r in runs:
            print(f"  {r.run_id} {'done' if r.run_id in done else 'todo'}  {r.overrides_text()}")
        return 0
    if a.status:
        rows = results.load_rows(out_dir)
        for r in runs:
            state = progress.status_line(rows.get(r.run_id), runner.train_log(out_dir, r.run_id))
            print(f"  {r.run_id} {state}  {r.overrides_text()}")
        return 0
    os.makedirs(out_dir, exist_ok=True)
    if todo and a.backend == "local":
        jobs = backends.pool_size(a.cores, a.threads, a.jobs)
        print(f"[sweep] local pool: {jobs} run(s) at a time x {a.threads} thread(s), {a.cores} cores")
        # SIGINT and SIGTERM (also when started in the background, where SIGINT is ignored) stop
        # the sweep from starting new runs; a terminal's Ctrl-C also reaches the running trainers
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            backends.run_local(sweep, todo, out_dir, tools, jobs, a.progress_every)
        except KeyboardInterrupt:
            print("[sweep] interrupted; rerun the same command to continue", file=sys.stderr)
            return 130
    elif todo:
        job_id = backends.submit_slurm(sweep, todo, out_dir, tools, a.sbatch_arg, a.max_parallel)
        print(f"[sweep] submitted Slurm job array {job_id} ({len(todo)} tasks; logs in {out_dir}/slurm/logs)")
        if a.no_wait:
            print(f"[sweep] collect with: bitnetmcu-sweep {a.sweep} --collect" + (f" --out {a.out}" if a.out else ""))
            return 0
        job_id, missing = backends.wait_and_collect(out_dir, progress_every=a.progress_every)
        print(f"[sweep] Slurm job {job_id} done; {missing} task(s) left no result (recorded as failed)")
    write_report(sweep, out_dir, a.top)
    return 0
