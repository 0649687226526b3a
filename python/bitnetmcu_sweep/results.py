"""The results table of a sweep folder: results.csv and results.jsonl, one row per finished (or
failed) run, appended atomically: under an exclusive lock, each row is one write() of whole
lines, fsynced, so that concurrent runs (local pool, Slurm tasks on a shared folder) and a kill
at any moment never leave a partial row. The latest row of a run id is its result."""
import csv
import fcntl
import io
import json
import os

CSV_FIELDS = ["run_id", "index", "status", "fits", "engine_accuracy", "float_accuracy", "weight_bytes",
              "flash_bytes", "ram_bytes", "instructions", "train_seconds", "wall_seconds", "target",
              "overrides", "run_name", "checkpoint", "error"]
FINISHED = ("ok", "no_fit")  # a rerun skips these; failed runs are tried again


def _append(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def append_row(out_dir, row):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _append(os.path.join(out_dir, "results.jsonl"), json.dumps(row, sort_keys=True) + "\n")
            csv_path = os.path.join(out_dir, "results.csv")
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
            if not os.path.exists(csv_path) or os.path.getsize(csv_path) == 0:
                w.writeheader()
            w.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_FIELDS})
            _append(csv_path, buf.getvalue())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_rows(out_dir):
    """run_id -> its latest row (from results.jsonl; a torn last line, which append_row never
    writes, is ignored rather than fatal)."""
    rows = {}
    path = os.path.join(out_dir, "results.jsonl")
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row["run_id"]] = row
    return rows


def finished_ids(out_dir):
    return {rid for rid, row in load_rows(out_dir).items() if row["status"] in FINISHED}
