"""Progress of the running runs: a line when a run starts, then, every `interval` seconds, a line
for each running run whose training got further (epoch, test accuracy, time so far and left),
read from the epoch lines the trainer writes to the run's train.log."""
import os
import re
import sys
import threading
import time

_print_lock = threading.Lock()


def say(text, flush=True):
    """print() for lines from several threads: one write per line, never two lines run together."""
    with _print_lock:
        sys.stdout.write(text + "\n")
        if flush:
            sys.stdout.flush()

# bitnetmcu-train's per-epoch line: "epoch 16/60  lr ...  train loss ... acc 99.00%  test loss 0.0257 acc 99.21%  ..."
TAIL_BYTES = 8 << 10  # 30 epoch lines and more
EPOCH = re.compile(r"^epoch (\d+)/(\d+)\b.*?\btest loss \S+ acc ([\d.]+) ?%", re.M)


def last_epoch(log):
    """(epoch, epochs, test accuracy in %) of the last epoch line of a trainer log, or None."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))  # the last lines are enough, whatever the log's length
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    found = EPOCH.findall(text)
    if not found:
        return None
    epoch, epochs, acc = found[-1]
    return int(epoch), int(epochs), float(acc)


def duration(seconds):
    """42 s, 17 min, 2 h 05 min."""
    seconds = max(0, int(round(seconds)))
    if seconds < 100:
        return f"{seconds} s"
    minutes = (seconds + 30) // 60
    return f"{minutes} min" if minutes < 100 else f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """Thread-safe: the local pool's workers call started/finished, the waiting loop report."""

    def __init__(self, interval, out=say):
        self.interval = interval  # seconds between reports; 0 = start lines only
        self._out = out
        self._lock = threading.Lock()
        self._running = {}
        self._seen = set()

    def started(self, run_id, overrides, log, where=""):
        """A run began (or resumed: its log already has epochs, and time left counts from here)."""
        first = last_epoch(log)
        epoch = first[0] if first else 0
        with self._lock:
            self._running[run_id] = {"log": log, "t0": time.time(), "e0": epoch, "shown": epoch}
            self._seen.add(run_id)
        resumed = f", resuming after epoch {epoch}" if first else ""
        self._out(f"[sweep] start {run_id}{where}{resumed}  {overrides}  (log {log})", flush=True)

    def finished(self, run_id):
        with self._lock:
            self._running.pop(run_id, None)

    def seen(self, run_id):
        """Whether the run was started (and perhaps finished) while this object watched."""
        with self._lock:
            return run_id in self._seen

    def report(self, now=None):
        """One line per running run whose training passed another epoch since the last report."""
        now = time.time() if now is None else now
        with self._lock:
            runs = list(self._running.items())
        for run_id, s in runs:
            got = last_epoch(s["log"])
            if not got or got[0] <= s["shown"]:
                continue
            epoch, epochs, acc = got
            s["shown"] = epoch
            elapsed, done = now - s["t0"], epoch - s["e0"]
            left = f", ~{duration(elapsed / done * (epochs - epoch))} left" if 0 < done and epoch < epochs else ""
            done_text = "; training done, exporting" if epoch == epochs else ""
            self._out(f"[sweep] {run_id} epoch {epoch}/{epochs}  test {acc:.2f} %{done_text}  ({duration(elapsed)} so far{left})",
                      flush=True)


def status_line(row, log, now=None):
    """One run's state for --status: its result row if it has one, else what its train.log says
    (a run in progress, or one killed and waiting to be resumed), else that it has not started."""
    now = time.time() if now is None else now
    if row is not None and row["status"] != "failed":
        acc = "" if row["engine_accuracy"] is None else f" engine {100 * row['engine_accuracy']:.2f} %"
        return f"{row['status']}{acc}"
    got = last_epoch(log)
    if got:
        age = duration(now - os.path.getmtime(log))
        text = f"epoch {got[0]}/{got[1]}, test {got[2]:.2f} %, log written {age} ago"
        return text + (f" (last try failed: {row['error'][:120]})" if row is not None else "")
    if row is not None:
        return f"failed: {row['error'][:160]}"
    return "started, no epoch yet" if os.path.exists(log) else "not started"
