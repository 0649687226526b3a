"""The sweep file: parsing with file:line errors, and its expansion into runs.

    name: tiny_fc                  # optional; default: the file's stem
    base: trainingparameters.yaml  # the trainer configuration the runs start from (relative to this file)
    set:    {num_epochs: 60, optimizer: Muon}      # fixed overrides of every run
    grid:   {QuantType: [2bitsym, Ternary], network_width1: [16, 24]}   # every combination
    # a grid axis whose items are mappings sets several keys together (one axis value each),
    # and may change a value of `set`:
    #   grid: {shape: [{QuantType: Ternary, network_width1: 20}, {QuantType: Binary, network_width1: 32}]}
    random:                                        # sampled per run (seeded: resume sees the same runs)
      muon_learning_rate: {log_uniform: [0.003, 0.03]}
      network_width2: {int: [8, 32]}
      seed: {choice: [1, 2, 3]}
    target: ch32v003               # or {chip: ch32v003, flash: 8192, ram: 1536, instructions: 100000, weight_bytes: 1229}
    budget: 8                      # at most this many runs
    sweep_seed: 1                  # seed of the random sampling

Without `random` the runs are the grid's combinations (the first `budget` of them); with it,
`budget` runs, each taking the next grid combination (cyclically) plus one random sample.
Keys and values are the trainer's: they are checked by `bitnetmcu-train --check`, whose
message is reported at the line of the sweep file that set the value.
"""
import dataclasses
import hashlib
import itertools
import json
import math
import os
import random
import re
import subprocess

import yaml

TARGETS_HPP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "include", "bitnetmcu", "targets.hpp")


def read_chips(path=TARGETS_HPP):
    """The chip table of include/bitnetmcu/targets.hpp (its one definition): {name: {flash, ram}}."""
    with open(path, encoding="utf-8") as f:
        rows = re.findall(r'^constexpr Target k\w+\{"(\w+)", "\w+", (\d+), (\d+), (?:true|false)\};$', f.read(), re.M)
    if not rows:
        raise RuntimeError(f"{path}: no chip rows found")
    return {name: {"flash": int(flash), "ram": int(ram)} for name, flash, ram in rows}


CHIPS = read_chips()
BUDGET_KEYS = ("flash", "ram", "instructions", "weight_bytes")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")
SECTIONS = ("name", "base", "set", "grid", "random", "target", "budget", "sweep_seed")
# set by the sweep for every run (its own folder and file names)
RESERVED_KEYS = ("runtag", "output_dir")
# resolved-config keys that do not change what a run computes (excluded from its identity)
NOT_IDENTITY = ("runtag", "output_dir", "data_dir")


class SweepError(Exception):
    """A bad sweep file; str() is 'file:line: what was expected'."""


@dataclasses.dataclass
class Target:
    chip: str
    flash: int
    ram: int
    instructions: int = None   # None = no limit
    weight_bytes: int = None

    def describe(self):
        parts = [f"{self.chip}", f"flash <= {self.flash} B", f"RAM <= {self.ram} B"]
        if self.instructions is not None:
            parts.append(f"<= {self.instructions} instructions/inference")
        if self.weight_bytes is not None:
            parts.append(f"weights <= {self.weight_bytes} B")
        return ", ".join(parts)


@dataclasses.dataclass
class Value:
    text: str   # as written in the sweep file (the trainer parses it with YAML scalar rules)
    line: int   # 1-based line in the sweep file


@dataclasses.dataclass
class Distribution:
    kind: str
    args: list   # [lo, hi] (numbers) or the choices (Values)
    line: int


@dataclasses.dataclass
class Sweep:
    path: str
    name: str
    base: str
    fixed: dict        # key -> Value
    grid: dict         # key -> [Value]
    random: dict       # key -> Distribution
    key_lines: dict    # key -> line of the key in the sweep file
    target: Target
    budget: int
    sweep_seed: int


@dataclasses.dataclass
class Run:
    index: int
    overrides: dict    # key -> value text, in the order fixed, grid, random
    lines: dict        # key -> sweep-file line of its value
    run_id: str = ""   # set by resolve(): hash of the resolved configuration
    run_name: str = ""
    config: dict = None

    def overrides_text(self):
        return " ".join(f"{k}={v}" for k, v in self.overrides.items())


def _err(path, node_or_line, message):
    line = node_or_line if isinstance(node_or_line, int) else node_or_line.start_mark.line + 1
    return SweepError(f"{path}:{line}: {message}")


def _scalar(path, node, what):
    if not isinstance(node, yaml.ScalarNode) or node.value == "" and node.tag.endswith(":null"):
        raise _err(path, node, f"{what}: expected a single value")
    return node.value


def _int(path, node, what, lo=None):
    text = _scalar(path, node, what)
    try:
        v = int(text)
    except ValueError:
        raise _err(path, node, f"{what}: expected an integer, got '{text}'") from None
    if lo is not None and v < lo:
        raise _err(path, node, f"{what}: expected an integer >= {lo}, got {v}")
    return v


def _number(path, node, what):
    text = _scalar(path, node, what)
    try:
        v = float(text)
    except ValueError:
        raise _err(path, node, f"{what}: expected a number, got '{text}'") from None
    if not math.isfinite(v):
        raise _err(path, node, f"{what}: expected a finite number, got '{text}'")
    return v


def _mapping(path, node, what):
    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, f"{what}: expected a mapping of key: value lines")
    seen = {}
    for k, v in node.value:
        key = _scalar(path, k, f"{what} key")
        if key in seen:
            raise _err(path, k, f"{what}: key '{key}' given twice (first at line {seen[key]})")
        seen[key] = k.start_mark.line + 1
        yield key, k, v


def _config_key(path, key, key_node):
    if key in RESERVED_KEYS:
        raise _err(path, key_node, f"key '{key}': set by the sweep for each run (its folder and file names)")


def _parse_target(path, node):
    if isinstance(node, yaml.ScalarNode):
        chip = _scalar(path, node, "target")
        if chip not in CHIPS:
            raise _err(path, node, f"target: expected one of {', '.join(CHIPS)} or a mapping of budgets, got '{chip}'")
        return Target(chip, **CHIPS[chip])
    values = {}
    chip, chip_node = "ch32v003", node
    for key, k, v in _mapping(path, node, "target"):
        if key == "chip":
            chip, chip_node = _scalar(path, v, "target chip"), v
        elif key in BUDGET_KEYS:
            values[key] = _int(path, v, f"target {key}", lo=1)
        else:
            raise _err(path, k, f"target: unknown key '{key}': expected chip, {', '.join(BUDGET_KEYS)}")
    if chip not in CHIPS:
        raise _err(path, chip_node, f"target chip: expected one of {', '.join(CHIPS)}, got '{chip}'")
    t = Target(chip, **CHIPS[chip])
    for key, v in values.items():
        if key in ("flash", "ram") and v > getattr(t, key):
            raise _err(path, node, f"target {key}: {v} B is more than the {chip} has ({getattr(t, key)} B)")
        setattr(t, key, v)
    return t


def _parse_distribution(path, key, node):
    items = list(_mapping(path, node, f"random '{key}'"))
    if len(items) != 1:
        raise _err(path, node, f"random '{key}': expected exactly one of {', '.join(DISTRIBUTIONS)}")
    kind, k, v = items[0]
    if kind not in DISTRIBUTIONS:
        raise _err(path, k, f"random '{key}': unknown distribution '{kind}': expected one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(v, yaml.SequenceNode) or not v.value:
        raise _err(path, v, f"random '{key}': {kind}: expected a list" + ("" if kind == "choice" else " [low, high]"))
    if kind == "choice":
        return Distribution(kind, [Value(_scalar(path, c, f"random '{key}' choice"), c.start_mark.line + 1) for c in v.value],
                            v.start_mark.line + 1)
    if len(v.value) != 2:
        raise _err(path, v, f"random '{key}': {kind}: expected [low, high], got {len(v.value)} values")
    conv = (lambda n, w: _int(path, n, w)) if kind == "int" else (lambda n, w: _number(path, n, w))
    lo, hi = (conv(n, f"random '{key}' {kind}") for n in v.value)
    if lo > hi:
        raise _err(path, v, f"random '{key}': {kind}: low {lo} is above high {hi}")
    if kind == "log_uniform" and lo <= 0:
        raise _err(path, v, f"random '{key}': log_uniform: expected positive bounds, got {lo}")
    return Distribution(kind, [lo, hi], v.start_mark.line + 1)


def load_sweep(path):
    """Parses a sweep file; raises SweepError('file:line: ...') on anything unexpected."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SweepError(f"{path}: cannot open sweep file: {e.strerror}") from None
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise SweepError(f"{path}:{mark.line + 1 if mark else 1}: invalid YAML: {e.problem or e}") from None
    if root is None:
        raise SweepError(f"{path}:1: empty sweep file: expected at least base, a grid or random section and a target")
    sections = {}
    for key, k, v in _mapping(path, root, "sweep file"):
        if key not in SECTIONS:
            raise _err(path, k, f"unknown section '{key}': expected one of {', '.join(SECTIONS)}")
        sections[key] = (k, v)

    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.splitext(os.path.basename(path))[0]
    if "name" in sections:
        name = _scalar(path, sections["name"][1], "name")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise _err(path, sections["name"][1], f"name: expected letters, digits, _ and -, got '{name}'")
    if "base" not in sections:
        raise SweepError(f"{path}:1: missing section 'base': the trainer configuration the runs start from")
    base_node = sections["base"][1]
    base = os.path.join(folder, _scalar(path, base_node, "base"))
    if not os.path.isfile(base):
        raise _err(path, base_node, f"base: configuration file {base} not found")

    fixed, grid, rand, key_lines = {}, {}, {}, {}

    def claim(key, k, over_set=False):
        _config_key(path, key, k)
        if key in key_lines and not (over_set and key in fixed):
            raise _err(path, k, f"key '{key}' is already set at line {key_lines[key]}")
        key_lines[key] = k.start_mark.line + 1

    if "set" in sections:
        for key, k, v in _mapping(path, sections["set"][1], "set"):
            claim(key, k)
            fixed[key] = Value(_scalar(path, v, f"set '{key}'"), v.start_mark.line + 1)
    if "grid" in sections:
        for key, k, v in _mapping(path, sections["grid"][1], "grid"):
            if not isinstance(v, yaml.SequenceNode) or not v.value:
                raise _err(path, v, f"grid '{key}': expected a non-empty list of values, e.g. [16, 32]")
            if all(isinstance(x, yaml.MappingNode) for x in v.value):  # a bundle: each item sets several keys
                grid[key] = [{sub: Value(_scalar(path, sv, f"grid '{key}' key '{sub}'"), sv.start_mark.line + 1)
                              for sub, sk, sv in _mapping(path, x, f"grid '{key}' item")} for x in v.value]
                for sub_key, sub_node in {sk.value: sk for x in v.value for sk, _ in x.value}.items():
                    claim(sub_key, sub_node, over_set=True)  # a bundle item may change a `set` value
            else:
                claim(key, k)
                grid[key] = [Value(_scalar(path, x, f"grid '{key}' value"), x.start_mark.line + 1) for x in v.value]
    if "random" in sections:
        for key, k, v in _mapping(path, sections["random"][1], "random"):
            claim(key, k)
            rand[key] = _parse_distribution(path, key, v)
    if "target" not in sections:
        raise SweepError(f"{path}:1: missing section 'target': expected {', '.join(CHIPS)} or a mapping of budgets")
    target = _parse_target(path, sections["target"][1])

    grid_size = math.prod(len(v) for v in grid.values())
    if "budget" in sections:
        budget = _int(path, sections["budget"][1], "budget", lo=1)
    elif rand:
        raise SweepError(f"{path}:1: missing section 'budget': a sweep with random ranges needs the number of runs")
    else:
        budget = grid_size
    seed = _int(path, sections["sweep_seed"][1], "sweep_seed", lo=0) if "sweep_seed" in sections else 1
    return Sweep(path, name, base, fixed, grid, rand, key_lines, target, budget, seed)


def _sample(dist, rng):
    if dist.kind == "choice":
        return rng.choice(dist.args)
    lo, hi = dist.args
    if dist.kind == "int":
        return Value(str(rng.randint(lo, hi)), dist.line)
    x = rng.uniform(lo, hi) if dist.kind == "uniform" else math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return Value(f"{x:.4g}", dist.line)


def expand(sweep):
    """The sweep's runs (deterministic for a given file: same runs on every call)."""
    combos = list(itertools.product(*sweep.grid.values())) or [()]
    grid_keys = list(sweep.grid)
    n = sweep.budget if sweep.random else min(sweep.budget, len(combos))
    rng = random.Random(sweep.sweep_seed)
    runs = []
    for i in range(n):
        values = dict(sweep.fixed)
        for key, value in zip(grid_keys, combos[i % len(combos)]):
            for k, v in (value if isinstance(value, dict) else {key: value}).items():
                values.pop(k, None)  # keeps the order fixed, grid, random
                values[k] = v
        for key, dist in sweep.random.items():
            values[key] = _sample(dist, rng)
        runs.append(Run(i, {k: v.text for k, v in values.items()}, {k: v.line for k, v in values.items()}))
    return runs


def parse_config_yaml(text):
    """The trainer's --check output -> (config dict, run name)."""
    config = yaml.safe_load(text)
    run_name = ""
    for line in text.splitlines():
        if line.startswith("# run name: "):
            run_name = line[len("# run name: "):].strip()
    return config, run_name


def run_id_of(config):
    ident = {k: v for k, v in config.items() if k not in NOT_IDENTITY}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


def config_defaults(trainer):
    """Every key's default, from `bitnetmcu-train --dump-config-schema`."""
    p = subprocess.run([trainer, "--dump-config-schema"], capture_output=True, text=True)
    if p.returncode != 0:
        raise SweepError(f"{trainer} --dump-config-schema failed: {p.stderr.strip()}")
    return {k["name"]: k["default"] for k in json.loads(p.stdout)["keys"]}


def _canonical(config, defaults):
    def norm(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    full = {**defaults, **config}
    return json.dumps({k: norm(v) for k, v in full.items() if k not in NOT_IDENTITY}, sort_keys=True)


def adopt_recorded_ids(runs, rows, trainer):
    """A run recorded before the trainer had one of today's config keys was hashed without it, so
    its id differs from what the same run resolves to now. A key is added with the default that
    computes what runs did before it, so a recorded row's missing keys are taken at their defaults;
    a run whose configuration then equals a recorded row's takes that row's id, and with it its
    result, folder and checkpoint (a rerun skips it; --status and --run find it). The trainer is
    asked for the defaults only when a row lacks a key."""
    keys = set().union(*(r.config for r in runs)) - set(NOT_IDENTITY)
    if not any(row.get("config") and keys - set(row["config"]) for row in rows.values()):
        return
    defaults = config_defaults(trainer)
    recorded = {_canonical(row["config"], defaults): run_id for run_id, row in rows.items() if row.get("config")}
    for run in runs:
        run.run_id = recorded.get(_canonical(run.config, defaults), run.run_id)


def resolve(sweep, runs, trainer):
    """Checks every run's configuration with `bitnetmcu-train --check` and fills in its resolved
    config, run name and id. A trainer error '--set key=value: ...' is reported at the sweep
    file's line of that value. Runs resolving to the same configuration are kept once."""
    seen, unique = set(), []
    checked = {}
    for run in runs:
        cmd = [trainer, sweep.base, "--check"] + [a for k, v in run.overrides.items() for a in ("--set", f"{k}={v}")]
        key = tuple(cmd)
        if key not in checked:
            checked[key] = subprocess.run(cmd, capture_output=True, text=True)
        p = checked[key]
        if p.returncode != 0:
            raise SweepError(_locate(sweep, run, p.stderr.strip()))
        run.config, run.run_name = parse_config_yaml(p.stdout)
        run.run_id = run_id_of(run.config)
        if run.run_id not in seen:
            seen.add(run.run_id)
            unique.append(run)
    return unique


def _locate(sweep, run, message):
    """Maps the trainer's error onto the sweep file."""
    message = message.removeprefix("bitnetmcu-train: error: ").removeprefix("bitnetmcu-train: ")
    if message.startswith("--set "):
        where, _, rest = message.partition(": ")
        key = where[len("--set "):].partition("=")[0]
        if key in run.lines:
            return f"{sweep.path}:{run.lines[key]}: {rest}"
    if message.startswith(sweep.base):
        return message + f" (base of {sweep.path})"
    return f"{sweep.path}:1: {message}"
