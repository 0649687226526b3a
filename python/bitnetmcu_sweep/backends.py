"""Where the runs execute: a local process pool, or one Slurm job array (Slurm schedules; this
only submits, waits and collects). Both append the rows with results.append_row."""
import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

from . import progress, results, runner, spec


def pool_size(cores, threads, jobs=None):
    """Runs at a time: runs x intra-op threads never exceed the cores (at least one run)."""
    most = max(1, cores // max(1, threads))
    return max(1, min(most, jobs)) if jobs else most


def _progress(row, done, total):
    acc = "" if row["engine_accuracy"] is None else f" engine {100 * row['engine_accuracy']:.2f} %"
    size = "" if row["flash_bytes"] is None else f" flash {row['flash_bytes']} B"
    instr = "" if row["instructions"] is None else f" {row['instructions']} instr."
    err = f"  ({row['error']})" if row["error"] else ""
    progress.say(f"[sweep] {done}/{total} {row['run_id']} {row['status']}{acc}{size}{instr}  {row['overrides']}{err}")


def run_local(sweep, runs, out_dir, tools, jobs, progress_every=60.0):
    """Runs `runs` on a pool of `jobs` workers, appending each row as it finishes and reporting
    the running runs' epochs every `progress_every` seconds (0: start and end lines only). Ctrl-C
    (or SIGTERM to the sweep) stops starting new runs and waits for the running ones: they
    finish, or, when the signal reached them too (a terminal's Ctrl-C), save their checkpoints
    and are recorded as failed, to be resumed by the next start."""
    stop = threading.Event()
    total, done = len(runs), 0
    watch = progress.Progress(progress_every)

    def work(run):
        if stop.is_set():
            return None
        os.makedirs(runner.run_dir(out_dir, run.run_id), exist_ok=True)
        watch.started(run.run_id, run.overrides_text(), runner.train_log(out_dir, run.run_id))
        try:
            row = runner.run_one(run, sweep.base, out_dir, sweep.target, tools)
        finally:
            watch.finished(run.run_id)
        results.append_row(out_dir, row)
        return row

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        pending = {pool.submit(work, r) for r in runs}
        try:
            while pending:
                finished, pending = concurrent.futures.wait(pending, timeout=progress_every or None,
                                                            return_when=concurrent.futures.FIRST_COMPLETED)
                if progress_every:
                    watch.report()
                for f in finished:
                    row = f.result()
                    if row:
                        done += 1
                        _progress(row, done, total)
        except KeyboardInterrupt:
            stop.set()
            print("[sweep] interrupted: waiting for the running runs to save their checkpoints", file=sys.stderr)
            pool.shutdown(wait=True, cancel_futures=True)
            raise


# ---- Slurm ----------------------------------------------------------------------------------

def _tasks_file(out_dir):
    return os.path.join(out_dir, "slurm", "tasks.json")


def submit_slurm(sweep, runs, out_dir, tools, sbatch_args=(), max_parallel=None):
    """Submits `runs` as one job array (task i = runs[i]); returns the job id."""
    slurm_dir = os.path.join(out_dir, "slurm")
    os.makedirs(os.path.join(slurm_dir, "logs"), exist_ok=True)
    tasks = {"base": sweep.base, "out_dir": os.path.abspath(out_dir), "target": dataclasses.asdict(sweep.target),
             "tools": tools.as_dict(), "runs": [dataclasses.asdict(r) for r in runs]}
    tmp = _tasks_file(out_dir) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(tasks, f, indent=1)
    os.replace(tmp, _tasks_file(out_dir))
    script = os.path.join(slurm_dir, "array.sh")
    sweep_tool = os.path.abspath(sys.argv[0])
    array = f"0-{len(runs) - 1}" + (f"%{max_parallel}" if max_parallel else "")
    with open(script, "w") as f:
        f.write("#!/bin/bash\n"
                f"#SBATCH --job-name=sweep-{sweep.name}\n"
                f"#SBATCH --array={array}\n"
                f"#SBATCH --output={os.path.abspath(slurm_dir)}/logs/%A_%a.log\n"
                f"#SBATCH --cpus-per-task={tools.threads}\n"
                f"exec {sys.executable} {sweep_tool} --run-task {os.path.abspath(_tasks_file(out_dir))} \"$SLURM_ARRAY_TASK_ID\"\n")
    p = subprocess.run(["sbatch", "--parsable", *sbatch_args, script], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"sbatch failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    job_id = p.stdout.strip().split(";")[0]
    with open(os.path.join(slurm_dir, "job.json"), "w") as f:
        json.dump({"job_id": job_id, "run_ids": [r.run_id for r in runs], "submitted": time.time()}, f)
    return job_id


def run_task(tasks_path, index):
    """The body of one array task (bitnetmcu-sweep --run-task): one run, one row."""
    with open(tasks_path) as f:
        tasks = json.load(f)
    run = spec.Run(**tasks["runs"][index])
    tools = runner.Tools(**tasks["tools"])
    target = spec.Target(**tasks["target"])
    print(f"[sweep] task {index}: run {run.run_id} {run.overrides_text()}", flush=True)
    row = runner.run_one(run, tasks["base"], tasks["out_dir"], target, tools)
    row["slurm_job"] = os.environ.get("SLURM_ARRAY_JOB_ID", "")
    results.append_row(tasks["out_dir"], row)
    _progress(row, 1, 1)
    return 0 if row["status"] in results.FINISHED else 1


def _job_active(job_id):
    p = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True)
    if p.returncode != 0:
        if "Invalid job id" in p.stderr:
            return False  # already purged from the controller: finished
        raise RuntimeError(f"squeue failed: {p.stderr.strip()}")
    return bool(p.stdout.strip())


def _watch_tasks(watch, out_dir, tasks, job):
    """The array's tasks as they start (their train.log is written after the submission) and
    end (their row appears)."""
    rows = results.load_rows(out_dir)
    for i, r in enumerate(tasks["runs"]):
        run_id, log = r["run_id"], runner.train_log(out_dir, r["run_id"])
        row = rows.get(run_id)
        if row is not None and row.get("slurm_job") == job["job_id"]:
            watch.finished(run_id)
        elif not watch.seen(run_id) and os.path.exists(log) and os.path.getmtime(log) >= job.get("submitted", 0):
            watch.started(run_id, spec.Run(**r).overrides_text(), log, where=f" (task {job['job_id']}_{i})")


def wait_and_collect(out_dir, poll=5.0, timeout=None, progress_every=60.0):
    """Waits for the submitted array to leave the queue, reporting its tasks' epochs every
    `progress_every` seconds, then records every task that left no row of its own (killed, out of
    time, node failure) as failed, with its log's last lines."""
    with open(os.path.join(out_dir, "slurm", "job.json")) as f:
        job = json.load(f)
    with open(_tasks_file(out_dir)) as f:
        tasks = json.load(f)
    job_id, started = job["job_id"], time.time()
    watch, reported = progress.Progress(progress_every), time.time()
    while _job_active(job_id):
        if timeout and time.time() - started > timeout:
            raise TimeoutError(f"Slurm job {job_id} still running after {timeout:g} s")
        if progress_every and time.time() - reported >= progress_every:
            _watch_tasks(watch, out_dir, tasks, job)
            watch.report()
            reported = time.time()
        time.sleep(poll)
    rows = results.load_rows(out_dir)
    missing = 0
    for i, r in enumerate(tasks["runs"]):
        row = rows.get(r["run_id"])
        if row and (row.get("slurm_job") == job_id or row["status"] in results.FINISHED):
            continue
        log = os.path.join(out_dir, "slurm", "logs", f"{job_id}_{i}.log")
        row = runner.failed_row(spec.Run(**r), tasks["target"]["chip"],
                                f"Slurm task {job_id}_{i} ended without a result: {runner.tail(log, 3) or 'no log'} (log {log})")
        row["slurm_job"] = job_id
        results.append_row(out_dir, row)
        missing += 1
    return job_id, missing
