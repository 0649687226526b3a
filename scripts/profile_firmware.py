#!/usr/bin/env python3
"""Where a QEMU twin's instructions go: retired instructions per function, per image.

Runs a firmware image (build/mcu/firmware/<model>-qemu.elf) once under QEMU with translation-block
tracing (-d exec,nochain,in_asm), weights every executed block by its instruction count and
attributes it to the function (the ELF's symbols) that holds it. The whole run is counted (start-up
and printing too, which appear as their own functions); divide by the images the twin runs.
--annotate FUNC prints the disassembly of the functions whose name contains FUNC with the
executions per image of each instruction.

  scripts/profile_firmware.py build/mcu/firmware/fc_4bitsym-qemu.elf
  scripts/profile_firmware.py build/mcu/firmware/fc_4bitsym-qemu.elf --annotate add_group_words
"""
import argparse
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from bitnetmcu_sweep.runner import INSTRET, QEMU  # noqa: E402  the twins' command line (ends with -kernel)


def fail(msg):
    sys.exit(f"profile_firmware: {msg}")


def trace(elf, log):
    """Returns (the instructions of each block, by start address; executions of each block start;
    the twin's image count from its summary line "... images N correct C mean_instret M")."""
    run = subprocess.run(QEMU[:-1] + ["-d", "exec,nochain,in_asm", "-D", log, "-kernel", elf], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, check=True, timeout=3600)
    m = INSTRET.search(run.stdout + run.stderr)  # semihosted output may land on either
    blocks, runs, start = {}, collections.Counter(), None
    with open(log) as f:
        for line in f:
            if line.startswith("Trace"):  # Trace 0: 0x... [00000000/80000536/...]
                runs[int(line.split("/")[1], 16)] += 1
            elif line.startswith("IN:"):
                start = None
            elif line.startswith("0x"):
                pc = int(line.split(":")[0], 16)
                if start is None:
                    start = pc
                    blocks[start] = []
                blocks[start].append(pc)
    return blocks, runs, int(m.group(1)) if m else 1


def functions(elf, tool_prefix):
    out = subprocess.run([tool_prefix + "nm", "-C", "-S", elf], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            syms.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    return sorted(syms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Needs qemu-system-riscv32 and the riscv64-unknown-elf binutils.")
    ap.add_argument("elf", help="a QEMU twin, e.g. build/mcu/firmware/fc_4bitsym-qemu.elf")
    ap.add_argument("--images", type=int, default=0,
                    help="divide by this many images (default: the twin's own count from its output)")
    ap.add_argument("--top", type=int, default=20, help="functions to list (default 20)")
    ap.add_argument("--annotate", metavar="FUNC", help="per-instruction counts of the functions named *FUNC*")
    ap.add_argument("--tool-prefix", default="riscv64-unknown-elf-", help="binutils prefix (default %(default)s)")
    args = ap.parse_args()
    if not os.path.isfile(args.elf):
        fail(f"{args.elf}: no such file (build the firmware first: cmake --build build)")
    for tool in (QEMU[0], args.tool_prefix + "nm", args.tool_prefix + "objdump"):
        if not shutil.which(tool):
            fail(f"{tool} not found (Debian: qemu-system-misc, binutils-riscv64-unknown-elf)")
    with tempfile.TemporaryDirectory() as tmp:
        blocks, runs, twin_images = trace(args.elf, os.path.join(tmp, "trace.log"))
    images = args.images if args.images > 0 else twin_images
    syms = functions(args.elf, args.tool_prefix)
    starts = [s[0] for s in syms]
    per_pc = collections.Counter()
    for start, n in runs.items():
        for pc in blocks.get(start, ()):
            per_pc[pc] += n
    per_fn, total = collections.Counter(), 0
    for pc, n in per_pc.items():
        i = bisect.bisect_right(starts, pc) - 1
        name = syms[i][2] if i >= 0 and pc < syms[i][0] + syms[i][1] else "?"
        per_fn[name] += n
        total += n
    print(f"{os.path.basename(args.elf)}: {total / images:,.0f} instructions per image over {images} images "
          f"(whole run)")
    for name, n in per_fn.most_common(args.top):
        print(f"{n / images:12,.0f} {100 * n / total:5.1f} %  {name[:120]}")
    if args.annotate:
        dis = subprocess.run([args.tool_prefix + "objdump", "-d", "-C", "--no-show-raw-insn", args.elf],
                             capture_output=True, text=True, check=True).stdout
        on = False
        for line in dis.splitlines():
            if line.endswith(">:"):
                on = args.annotate in line
                if on:
                    print("\n" + line)
            elif on and re.match(r"\s*[0-9a-f]+:", line):
                print(f"{per_pc[int(line.split(':')[0], 16)] / images:10.1f}  {line.strip()[:120]}")


if __name__ == "__main__":
    main()
