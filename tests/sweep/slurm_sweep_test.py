#!/usr/bin/python3
"""ctest sweep.slurm_job_array: starts a single-node Slurm cluster of its own (munged with a fresh
key, slurmctld and slurmd on localhost, configuration and state in a temporary folder, free
ports), runs a 4-run sweep of 1-epoch tiny models through `bitnetmcu-sweep --backend slurm`
(one job array), checks the rows, the per-task logs and the resume, and stops everything it
started. Exit 77 (ctest: SKIPPED) with the reason when the daemons cannot be started.

    tests/sweep/slurm_sweep_test.py --build-dir build [--data-dir data] [--keep]
"""
import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

SKIP = 77
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE = "bnmnode"


class Skip(Exception):
    pass


def die_with_parent():
    """Child setup: the daemon gets SIGTERM if this test dies (e.g. killed by a ctest timeout),
    so that nothing it started outlives it."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)\n"


class Cluster:
    """munged + slurmctld + slurmd, all in `tmp`; stop() ends exactly the processes it started."""

    def __init__(self, tmp):
        self.tmp, self.procs = tmp, []
        self.env = dict(os.environ, SLURM_CONF=os.path.join(tmp, "slurm.conf"))

    def start(self):
        missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol")
                   if not shutil.which(t) and not os.path.exists(f"/usr/sbin/{t}")]
        if missing:
            raise Skip(f"not installed: {', '.join(missing)} (Debian: slurm-wlm munge; scripts/setup.sh)")
        t = self.tmp
        for d in ("munge", "state", "spool"):
            os.makedirs(os.path.join(t, d))
        os.chmod(t, 0o755)
        os.chmod(os.path.join(t, "munge"), 0o755)
        key = os.path.join(t, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self.socket = os.path.join(t, "munge", "sock")
        munged = shutil.which("munged") or "/usr/sbin/munged"
        self.daemon("munged", [munged, "--foreground", f"--socket={self.socket}", f"--key-file={key}",
                               f"--pid-file={t}/munge/munged.pid", f"--log-file={t}/munge/munged.log",
                               f"--seed-file={t}/munge/seed", "--force"])
        for _ in range(100):
            if os.path.exists(self.socket) or self.procs[0].poll() is not None:
                break
            time.sleep(0.1)
        if not os.path.exists(self.socket):
            raise Skip(f"munged did not start:\n{tail(t + '/munged.out')}{tail(t + '/munge/munged.log')}")

        user = getpass.getuser()
        cpus = os.cpu_count() or 1
        with open(self.env["SLURM_CONF"], "w") as f:
            f.write(textwrap.dedent(f"""\
                # written by tests/sweep/slurm_sweep_test.py: a throw-away single-node cluster
                ClusterName=bnmsweeptest
                SlurmctldHost=localhost(127.0.0.1)
                SlurmctldPort={free_port()}
                SlurmdPort={free_port()}
                SlurmUser={user}
                SlurmdUser={user}
                AuthType=auth/munge
                AuthInfo=socket={self.socket}
                CredType=cred/munge
                StateSaveLocation={t}/state
                SlurmdSpoolDir={t}/spool
                SlurmctldPidFile={t}/slurmctld.pid
                SlurmdPidFile={t}/slurmd.pid
                SlurmctldLogFile={t}/slurmctld.log
                SlurmdLogFile={t}/slurmd.log
                ProctrackType=proctrack/linuxproc
                TaskPlugin=task/none
                JobAcctGatherType=jobacct_gather/none
                AccountingStorageType=accounting_storage/none
                JobCompType=jobcomp/none
                SelectType=select/cons_tres
                SelectTypeParameters=CR_CPU
                MpiDefault=none
                MailProg=/bin/true
                ReturnToService=2
                SchedulerType=sched/builtin
                NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname=localhost CPUs={cpus} State=UNKNOWN
                PartitionName=sweeptest Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
                """))
        for daemon, args in (("slurmctld", ["-D", "-i"]), ("slurmd", ["-D", "-N", NODE])):
            self.daemon(daemon, [shutil.which(daemon) or f"/usr/sbin/{daemon}", "-f", self.env["SLURM_CONF"], *args])
            time.sleep(1)
        deadline = time.time() + 60
        while time.time() < deadline:
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                break
            p = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env)
            if p.returncode == 0 and p.stdout.strip() == "idle":
                return
            time.sleep(1)
        raise Skip("the Slurm daemons did not bring the node up within 60 s:\n"
                   + "".join(f"--- {d}:\n{tail(os.path.join(t, d))}" for d in
                             ("slurmctld.out", "slurmctld.log", "slurmd.out", "slurmd.log")))

    def daemon(self, name, cmd):
        log = open(os.path.join(self.tmp, f"{name}.out"), "w")
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                           preexec_fn=die_with_parent))

    def stop(self):
        """slurmd and slurmctld first (scontrol shutdown, then SIGTERM, then SIGKILL), munged last."""
        if len(self.procs) > 1:
            subprocess.run(["scontrol", "shutdown"], env=self.env, capture_output=True, timeout=30)
        for p in reversed(self.procs):
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig:
                    p.send_signal(sig)
                try:
                    p.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    continue
        left = [p.pid for p in self.procs if p.poll() is None]
        if left:
            raise AssertionError(f"processes still running after stop: {left}")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def run_sweep(args, cluster, sweep, out):
    cmd = [sys.executable, os.path.join(ROOT, "tools", "bitnetmcu-sweep"), sweep, "--backend", "slurm",
           "--out", out, "--build-dir", args.build_dir] + ([] if args.firmware else ["--no-firmware"])
    p = subprocess.run(cmd, capture_output=True, text=True, env=cluster.env, timeout=1500)
    print(p.stdout + p.stderr)
    check(p.returncode == 0, f"bitnetmcu-sweep exited {p.returncode}")
    return p.stdout


def test(args, cluster):
    tmp = cluster.tmp
    sweep = os.path.join(tmp, "tiny.yaml")
    with open(sweep, "w") as f:
        f.write(textwrap.dedent(f"""\
            name: slurm_test
            base: {ROOT}/trainingparameters.yaml
            set: {{num_epochs: 1, train_subset: 3000, learning_rate: 0.01, augmentation: false,
                   network_width1: 16, network_width2: 16, network_width3: 0, data_dir: {args.data_dir}}}
            grid:
              QuantType: [2bitsym, 4bitsym]
              seed: [1, 2]
            target: ch32v003
            """))
    out = os.path.join(tmp, "out")
    stdout = run_sweep(args, cluster, sweep, out)
    check("4 runs (0 finished, 4 to run)" in stdout, "the sweep did not plan 4 runs")
    job = json.load(open(os.path.join(out, "slurm", "job.json")))["job_id"]
    rows = [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))]
    check(len(rows) == 4, f"expected 4 rows, got {len(rows)}")
    check(len({r["run_id"] for r in rows}) == 4, "run ids not distinct")
    for r in rows:
        what = f"row {r['run_id']} ({r['overrides']}): {r['status']} {r['error']}"
        check(r["status"] == "ok" and r["fits"] is True, what)
        check(r.get("slurm_job") == job, f"{what}: written by job {r.get('slurm_job')}, expected {job}")
        check(r["engine_accuracy"] > 0.25, f"{what}: engine accuracy {r['engine_accuracy']} (chance is 0.1)")
        if args.firmware:  # else flash/RAM are the exporter's estimates and there is no instruction count
            check(r["instructions"] and r["instructions"] > 1000, f"{what}: instructions {r['instructions']}")
        check(r["flash_bytes"] and 0 < r["flash_bytes"] <= 16384 and 0 < r["ram_bytes"] <= 2048,
              f"{what}: flash {r['flash_bytes']} RAM {r['ram_bytes']}")
    for i in range(4):
        log = os.path.join(out, "slurm", "logs", f"{job}_{i}.log")
        check(os.path.exists(log) and f"[sweep] task {i}: run" in open(log).read(), f"no task log {log}")
    p = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, env=cluster.env)
    check(not p.stdout.strip(), f"job {job} still queued: {p.stdout}")
    check(os.path.exists(os.path.join(out, "frontier.png")), "no frontier plot")
    # resume: everything finished, nothing is submitted again
    stdout = run_sweep(args, cluster, sweep, out)
    check("4 runs (4 finished, 0 to run)" in stdout and "submitted" not in stdout, "the rerun did not skip the runs")
    check(len(open(os.path.join(out, "results.jsonl")).readlines()) == 4, "the rerun added rows")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--data-dir", default=os.environ.get("BITNETMCU_DATA_DIR", os.path.join(ROOT, "data")))
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    args.build_dir, args.data_dir = os.path.abspath(args.build_dir), os.path.abspath(args.data_dir)
    # the firmware step needs the firmware part of the build (BITNETMCU_BUILD_FIRMWARE)
    args.firmware = os.path.exists(os.path.join(args.build_dir, "mcu", "generated", "test_images_200.h"))
    if not args.firmware:
        print("note: no firmware build in --build-dir: the sweep runs with --no-firmware")
    if not os.path.exists(os.path.join(args.data_dir, "mnist", "t10k-images-idx3-ubyte")):
        print(f"SKIPPED: MNIST not found in {args.data_dir}/mnist (scripts/setup.sh fetches it)")
        return SKIP
    tmp = tempfile.mkdtemp(prefix="bnm-slurm-", dir="/tmp")  # short: the munge socket path is limited
    cluster = Cluster(tmp)
    try:
        cluster.start()
        print(f"single-node Slurm up ({tmp})")
        test(args, cluster)
        print("PASSED: 4-task job array sweep through Slurm, rows, logs and resume checked")
        return 0
    except Skip as e:
        print(f"SKIPPED: {e}")
        return SKIP
    except AssertionError as e:
        print(f"FAILED: {e}\n--- slurmctld.log:\n{tail(tmp + '/slurmctld.log')}--- slurmd.log:\n{tail(tmp + '/slurmd.log')}")
        return 1
    finally:
        try:
            cluster.stop()
        except AssertionError as e:
            print(f"FAILED: {e}")
            return 1  # noqa: B012 (overrides the result: leaving processes behind is a failure)
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
