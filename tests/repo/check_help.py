#!/usr/bin/python3
"""check_help.py: every tool answers --help with a usage line and exit status 0.

  check_help.py SOURCE_DIR COMMAND...

Each COMMAND is one tool invocation, its words joined by '|' (e.g. 'build/x|--help'). Runs each
(60 s limit), and fails on an exit status other than 0 or output (stdout + stderr) without a line
starting with 'usage'. Also fails when a tool of the source tree -- scripts/*.sh, scripts/*.py,
tools/* (not C++ sources), python/*.py -- is missing from the commands, so a new tool cannot
skip the check."""
import glob
import os
import re
import subprocess
import sys


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print("usage:", __doc__)
        return 0 if len(sys.argv) == 2 else 2
    src, commands = sys.argv[1], [c.split("|") for c in sys.argv[2:]]
    errors = []
    for argv in commands:
        shown = " ".join(os.path.relpath(a, src) if a.startswith(src) else a for a in argv)
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            errors.append(f"{shown}: {e}")
            continue
        out = p.stdout + p.stderr
        usage = re.search(r"^\s*usage", out, re.I | re.M)
        print(f"{'ok  ' if p.returncode == 0 and usage else 'FAIL'} {shown} (exit {p.returncode})")
        if p.returncode != 0:
            errors.append(f"{shown}: exit status {p.returncode}\n{out[-2000:]}")
        elif not usage:
            errors.append(f"{shown}: no line starting with 'usage' in\n{out[-2000:]}")
    used = {os.path.realpath(a) for argv in commands for a in argv if os.path.exists(a)}
    tools = [p for pattern in ("scripts/*.sh", "scripts/*.py", "tools/*", "python/*.py")
             for p in glob.glob(os.path.join(src, pattern))
             if os.path.isfile(p) and not p.endswith((".cpp", ".hpp", ".md"))]
    for tool in sorted(tools):
        if os.path.realpath(tool) not in used:
            errors.append(f"{os.path.relpath(tool, src)}: a tool without a --help check (add it to tests/repo/CMakeLists.txt)")
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
