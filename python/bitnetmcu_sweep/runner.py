"""One sweep run: train -> export with --target -> firmware + QEMU twin -> one result row.

Every step's output goes to a log in the run's folder; a failing step ends the run with a row
that says which step failed and why (the sweep goes on). A checkpoint left by a killed run is
resumed (`bitnetmcu-train --resume`) the next time the run is started.
"""
import dataclasses
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import time

QEMU = ["qemu-system-riscv32", "-M", "virt", "-bios", "none", "-nographic", "-cpu", "rv32", "-icount", "shift=0",
        "-semihosting-config", "enable=on,target=native", "-kernel"]
INSTRET = re.compile(r"images (\d+) correct (\d+) mean_instret (\d+)")


@dataclasses.dataclass
class Tools:
    """Where the programs a run needs are (bitnetmcu-sweep fills it from --build-dir)."""
    trainer: str
    exporter: str
    source_dir: str          # repository root: mcu/ch32v003 and cmake/ for the firmware
    twin_images: str = None  # the 200-image header of the QEMU twins; None = no firmware step
    threads: int = 1         # intra-op threads of each run
    timeout: float = None    # seconds per step, None = none

    def as_dict(self):
        return dataclasses.asdict(self)


class StepFailed(Exception):
    pass


def _describe_exit(rc):
    if rc < 0:
        try:
            return f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return "interrupted (exit 130)" if rc == 130 else f"exit status {rc}"


def tail(path, n=6):
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def _step(name, cmd, log, tools, env=None, cwd=None):
    """Runs one step with its output in `log`; raises StepFailed naming the step and the cause."""
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=tools.timeout)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{name}: timed out after {tools.timeout:g} s (log {log})") from None
        except OSError as e:
            raise StepFailed(f"{name}: cannot run {cmd[0]}: {e.strerror}") from None
    if p.returncode != 0:
        raise StepFailed(f"{name}: {_describe_exit(p.returncode)}: {tail(log, 3)} (log {log})")


def _env(tools):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(tools.threads)
    return env


def train(run, base, rundir, tools):
    log = os.path.join(rundir, "train.log")  # progress.py reads its epoch lines
    existing = glob.glob(os.path.join(rundir, "*.pt"))
    if existing:  # a killed or interrupted run: continue it (a finished one returns at once)
        cmd = [tools.trainer, "--resume", existing[0], "--no-progress"]
    else:
        sets = dict(run.overrides)
        sets.setdefault("num_threads", str(tools.threads))
        sets.update({"runtag": f"{run.run_id}_", "output_dir": rundir})
        cmd = [tools.trainer, base, "--no-progress"] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    _step("train", cmd, log, tools, env=_env(tools))
    found = glob.glob(os.path.join(rundir, "*.pt"))
    if len(found) != 1:
        raise StepFailed(f"train: expected one checkpoint in {rundir}, found {len(found)}")
    return found[0]


def export(ckpt, rundir, target, tools, name):
    """Exports with --target; a model that does not fit is exported again without it, so that its
    accuracy is still known. Returns (report dict, fit message or None)."""
    outdir = os.path.join(rundir, "export")
    log = os.path.join(rundir, "export.log")
    base = [tools.exporter, ckpt, "--name", name, "--out-dir", outdir, "--quiet"]
    try:
        _step("export", base + ["--target", target.chip], log, tools, env=_env(tools))
        misfit = None
    except StepFailed as e:
        text = open(log, errors="replace").read()
        m = re.search(r"does not fit (.*)", text)
        if not m:
            raise
        misfit = "exporter: does not fit " + m.group(1).strip()
        _step("export", base, log, tools, env=_env(tools))
    with open(os.path.join(outdir, name + ".report.json")) as f:
        return json.load(f), misfit


def firmware(header, rundir, target, chip_image, tools):
    """Builds the chip image (when `chip_image`) and the QEMU twin of `header`, runs the twin.
    Returns (size dict or None, link failure or None, mean instructions per inference)."""
    fw = os.path.join(rundir, "fw")
    log = os.path.join(rundir, "firmware.log")
    name = os.path.splitext(os.path.basename(header))[0]

    def configure(with_chip):
        shutil.rmtree(fw, ignore_errors=True)
        models = [f"-DBITNETMCU_MODEL={header}"] if with_chip else [f"-DBITNETMCU_QEMU_ONLY_MODELS={header}"]
        _step("firmware configure", ["cmake", "-S", os.path.join(tools.source_dir, "mcu", "ch32v003"), "-B", fw,
                                     "-G", "Ninja", "--toolchain", os.path.join(tools.source_dir, "cmake", "riscv64-unknown-elf.cmake"),
                                     "-DBITNETMCU_BUILD_CHECKS=OFF", f"-DBITNETMCU_CHIPS={target.chip}",
                                     f"-DBITNETMCU_QEMU_IMAGES={tools.twin_images}"] + models, log, tools)

    size, link_failure = None, None
    if chip_image:
        configure(True)
        try:
            _step("firmware link", ["cmake", "--build", fw, "--target", f"{name}-{target.chip}"], log, tools)
            text = open(os.path.join(fw, f"{name}-{target.chip}.size.txt")).read()
            size = {k: int(re.search(rf"{k}=(\d+)", text).group(1)) for k in ("flash_bytes", "ram_bytes")}
            shutil.copy(os.path.join(fw, f"{name}-{target.chip}.size.txt"), rundir)
        except StepFailed:
            m = re.search(r"does not fit[^\n]*", open(log, errors="replace").read())
            if not m:
                raise
            link_failure = "firmware " + m.group(0).strip()
    if not chip_image or link_failure:
        configure(False)
    _step("firmware twin", ["cmake", "--build", fw, "--target", f"{name}-qemu"], log, tools)
    qemu_log = os.path.join(rundir, "qemu.log")
    _step("qemu", QEMU + [os.path.join(fw, f"{name}-qemu.elf")], qemu_log, tools)
    m = INSTRET.search(open(qemu_log, errors="replace").read())
    if not m:
        raise StepFailed(f"qemu: no 'images N correct C mean_instret I' line in {qemu_log}")
    shutil.rmtree(fw, ignore_errors=True)  # megabytes per run; the size report and logs stay
    return size, link_failure, int(m.group(3))


def failed_row(run, chip, error):
    """A run's row before (or without) any result."""
    return {"run_id": run.run_id, "index": run.index, "status": "failed", "fits": None, "error": error,
            "overrides": run.overrides_text(), "run_name": run.run_name, "target": chip,
            "float_accuracy": None, "engine_accuracy": None, "weight_bytes": None, "flash_bytes": None,
            "ram_bytes": None, "instructions": None, "train_seconds": None, "wall_seconds": None,
            "checkpoint": None, "config": run.config}


def run_dir(out_dir, run_id):
    """The folder of one run's checkpoint, logs and export."""
    return os.path.abspath(os.path.join(out_dir, "runs", run_id))


def train_log(out_dir, run_id):
    return os.path.join(run_dir(out_dir, run_id), "train.log")


def run_one(run, base, out_dir, target, tools):
    """Does one run and returns its row (never raises for a failing step)."""
    started = time.time()
    rundir = run_dir(out_dir, run.run_id)
    os.makedirs(rundir, exist_ok=True)
    row = failed_row(run, target.chip, "")
    misfits = []
    try:
        t0 = time.time()
        ckpt = train(run, base, rundir, tools)
        row["train_seconds"] = round(time.time() - t0, 1)
        row["checkpoint"] = os.path.relpath(ckpt, out_dir)
        name = f"m_{run.run_id}"
        report, misfit = export(ckpt, rundir, target, tools, name)
        v = report["verification"]
        row.update(float_accuracy=v["float_accuracy"], engine_accuracy=v["int_accuracy"], weight_bytes=report["weight_bytes"])
        if v["prediction_mismatches"] or v["logit_mismatches"]:
            raise StepFailed(f"export: engine and emulation disagree on {v['prediction_mismatches']} images")
        if misfit:
            misfits.append(misfit)
        elif "target" in report:  # the exporter's estimate until the firmware is measured
            row.update(flash_bytes=report["target"]["flash_needed"], ram_bytes=report["target"]["ram_needed"])
        if target.weight_bytes is not None and row["weight_bytes"] > target.weight_bytes:
            pass  # cannot fit whatever the firmware measures: spare the firmware build (the check below records it)
        elif tools.twin_images:
            header = os.path.join(rundir, "export", name + ".h")
            size, link_failure, instr = firmware(header, rundir, target, misfit is None, tools)
            row["instructions"] = instr
            if size:
                row.update(flash_bytes=size["flash_bytes"], ram_bytes=size["ram_bytes"])
            if link_failure:
                misfits.append(link_failure)
        for key, limit, value in (("flash", target.flash, row["flash_bytes"]), ("ram", target.ram, row["ram_bytes"]),
                                  ("instructions", target.instructions, row["instructions"]),
                                  ("weight_bytes", target.weight_bytes, row["weight_bytes"])):
            if limit is not None and value is not None and value > limit:
                misfits.append(f"{key} {value} > {limit}")
        row["fits"] = not misfits
        row["status"] = "ok" if not misfits else "no_fit"
        row["error"] = "; ".join(misfits)
    except StepFailed as e:
        row["error"] = str(e)
    except Exception as e:  # a bug or an unreadable file must not stop the sweep either
        row["error"] = f"{type(e).__name__}: {e}"
    row["wall_seconds"] = round(time.time() - started, 1)
    return row
