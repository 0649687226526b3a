#!/usr/bin/python3
"""check_spec_refs.py: every "SPEC §n" citation in the tree names a section of docs/spec.md.

  check_spec_refs.py SOURCE_DIR

SPEC is docs/spec.md; a citation is "SPEC §n", a list or range of them ("SPEC §4/§5",
"SPEC §2-§4", "SPEC §3, §6"), or "spec.md §n". Fails on any §n without a "## n." heading in
docs/spec.md, and on any mention of the SPEC's old place outside the repository (shared/SPEC.md)."""
import os
import re
import sys

SKIP_DIRS = {".git", "data", "node_modules", "__pycache__"}
CITATION = re.compile(r"(?:\bSPEC|spec\.md)((?:\s*(?:,|/|-|–|and)?\s*§\d+(?:\.\d+)*)+)")
SECTION = re.compile(r"§(\d+)")
OLD_PLACE = re.compile(r"shared/SPEC\.md")


def sections(spec_path):
    with open(spec_path, encoding="utf-8") as f:
        return {m.group(1) for m in re.finditer(r"^## (\d+)\. \S", f.read(), re.M)}


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print("usage:", __doc__)
        return 0 if len(sys.argv) == 2 else 2
    src = sys.argv[1]
    have = sections(os.path.join(src, "docs", "spec.md"))
    if not have:
        print("ERROR: docs/spec.md has no '## n. Title' sections")
        return 1
    errors, cited = [], 0
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")]
        for name in files:
            path = os.path.join(root, name)
            if os.path.getsize(path) > 4_000_000:
                continue
            with open(path, "rb") as f:
                data = f.read()
            if b"\0" in data[:4096]:
                continue  # binary (checkpoints, images, model files)
            text = data.decode("utf-8", "replace")
            rel = os.path.relpath(path, src)
            for no, line in enumerate(text.splitlines(), 1):
                for m in CITATION.finditer(line):
                    for n in SECTION.findall(m.group(1)):
                        cited += 1
                        if n not in have:
                            errors.append(f"{rel}:{no}: cites SPEC §{n}, which docs/spec.md does not have")
                if OLD_PLACE.search(line) and rel != os.path.join("tests", "repo", "check_spec_refs.py"):
                    errors.append(f"{rel}:{no}: points at shared/SPEC.md; the SPEC is docs/spec.md")
    print(f"{cited} citations of docs/spec.md sections {sorted(have, key=int)}")
    for e in errors:
        print("ERROR:", e)
    return 1 if errors or not cited else 0


if __name__ == "__main__":
    sys.exit(main())
