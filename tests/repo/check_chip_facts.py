#!/usr/bin/python3
"""check_chip_facts.py: chip facts have one definition, the table of include/bitnetmcu/targets.hpp: fails when a copy
drifts from it or a size is written down again somewhere the build reads it.

  check_chip_facts.py SOURCE_DIR [FIRMWARE_DIR NM]

Checks (1) the sweep's CHIPS (python/bitnetmcu_sweep/spec.py) equal the table; (2) the files that
once held the sizes -- linker script, firmware/benchmark CMake, size report, sweep, exporter --
hold no flash/RAM size literal; (3) with FIRMWARE_DIR: every linked chip image was linked with
the table's sizes (its __flash_size / __ram_size symbols), for the table's -march, and its size report states them."""
import glob
import os
import re
import subprocess
import sys

ROW = re.compile(r'^constexpr Target k\w+\{"(\w+)", "(\w+)", (\d+), (\d+), (true|false)\};$', re.M)
# Files the sizes must come into from the table (CMake -D, --defsym, parsing), never be written in.
NO_LITERALS = ["mcu/ch32v003/ch32v003.ld", "mcu/ch32v003/CMakeLists.txt", "mcu/ch32v003/cmake/size_report.cmake",
               "bench/firmware/CMakeLists.txt", "bench/firmware/bench_firmware.cmake", "python/bitnetmcu_sweep/*.py",
               "training/exporter/*.cpp", "training/exporter/*.hpp", "tests/export/*.cpp"]


def main():
    if len(sys.argv) not in (2, 4) or sys.argv[1] in ("-h", "--help"):
        print("usage:", __doc__)
        return 0 if len(sys.argv) == 2 else 2
    src = sys.argv[1]
    errors = []
    with open(os.path.join(src, "include/bitnetmcu/targets.hpp"), encoding="utf-8") as f:
        table = {name: {"march": march, "flash": int(flash), "ram": int(ram), "mul": mul == "true"}
                 for name, march, flash, ram, mul in ROW.findall(f.read())}
    if not table:
        errors.append("include/bitnetmcu/targets.hpp: no chip rows in the form the build parses")
    print("table:", table)

    sys.path.insert(0, os.path.join(src, "python"))
    from bitnetmcu_sweep.spec import CHIPS  # noqa: E402
    want = {n: {"flash": t["flash"], "ram": t["ram"]} for n, t in table.items()}
    if CHIPS != want:
        errors.append(f"python/bitnetmcu_sweep/spec.py CHIPS {CHIPS} differ from targets.hpp {want}")

    sizes = sorted({str(v) for t in table.values() for v in (t["flash"], t["ram"])} |
                   {f"{v // 1024}K" for t in table.values() for v in (t["flash"], t["ram"])} |
                   {f"{v // 1024} \\* 1024" for t in table.values() for v in (t["flash"], t["ram"])})
    literal = re.compile(r"(?<![\w.])(" + "|".join(sizes) + r")(?![\w.])")
    for pattern in NO_LITERALS:
        for path in sorted(glob.glob(os.path.join(src, pattern))):
            with open(path, encoding="utf-8") as f:
                for no, line in enumerate(f, 1):
                    code = re.split(r"//|#(?!include)|/\*", line)[0] if not path.endswith(".ld") else line.split("/*")[0]
                    m = literal.search(code)
                    if m:
                        errors.append(f"{os.path.relpath(path, src)}:{no}: chip size '{m.group(1)}' written out "
                                      "(take it from include/bitnetmcu/targets.hpp)")

    if len(sys.argv) >= 4:
        fw, nm = sys.argv[2], sys.argv[3]
        checked = 0
        for chip, t in table.items():
            for elf in sorted(glob.glob(os.path.join(fw, f"*-{chip}.elf"))):
                out = subprocess.run([nm, elf], capture_output=True, text=True, check=True).stdout
                syms = {s: int(v, 16) for v, _, s in (l.split() for l in out.splitlines() if len(l.split()) == 3)}
                got = (syms.get("__flash_size"), syms.get("__ram_size"))
                if got != (t["flash"], t["ram"]):
                    errors.append(f"{os.path.basename(elf)}: linked with flash/RAM {got}, the table says "
                                  f"{(t['flash'], t['ram'])}")
                readelf = os.path.join(os.path.dirname(nm), os.path.basename(nm).replace("nm", "readelf"))
                attrs = subprocess.run([readelf, "-A", elf], capture_output=True, text=True, check=True).stdout
                arch = re.search(r'Tag_RISCV_arch: "([^"]+)"', attrs)
                if not arch or ("_m2p0" in arch.group(1)) != t["mul"] or not arch.group(1).startswith(t["march"][:5]):
                    errors.append(f"{os.path.basename(elf)}: built for {arch and arch.group(1)}, the table says "
                                  f"-march={t['march']}")
                report = elf[:-4] + ".size.txt"
                with open(report, encoding="utf-8") as f:
                    first = f.readline()
                if f"/ {t['flash']} B" not in first or f"/ {t['ram']} B" not in first:
                    errors.append(f"{os.path.basename(report)}: '{first.strip()}' does not state the table's sizes")
                checked += 1
        print(f"{checked} linked chip images checked")
        if not checked:
            errors.append(f"{fw}: no chip images (*-<chip>.elf) found")
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
