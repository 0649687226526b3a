"""bitnetmcu_torch.config against the C++ configuration it twins (training/config.cpp): the
schema file Python reads is `bitnetmcu-train --dump-config-schema`; defaults, every key's bounds
and choices, run_name and layer_scheme agree over a grid of configurations, and both reject the
same invalid ones; config_to_yaml round-trips any text. The bulk runs through config_twin_tool
(config.cpp without LibTorch, one process for all cases); a few cases through the trainer's
`--check` itself, whose output the same functions make."""
import itertools
import json
import os
import subprocess

import pytest
import yaml

from conftest import find_tool, find_trainer
from bitnetmcu_torch import config


@pytest.fixture(scope="module")
def trainer():
    path = find_trainer()
    if not path:
        pytest.skip("bitnetmcu-train not built (the training part of the build)")
    return path


@pytest.fixture(scope="module")
def cpp_cases():
    """A function: list of override lists (or (yaml text, override list) pairs) -> list of
    (0 or 1, config dict, run name, schemes, error)."""
    tool = find_tool("config_twin_tool", "BITNETMCU_CONFIG_TWIN_TOOL")
    if not tool:
        pytest.skip("config_twin_tool not built (the training part of the build)")

    def run(cases):
        requests = [{"yaml": c[0], "set": c[1]} if isinstance(c, tuple) else {"yaml": "", "set": c} for c in cases]
        stdin = "".join(json.dumps(r) + "\n" for r in requests)
        out = subprocess.run([tool], input=stdin, capture_output=True, text=True, check=True).stdout
        results = []
        for line in out.splitlines():
            r = json.loads(line)
            if r["ok"]:
                results.append((0, yaml.safe_load(r["yaml"]), r["run_name"], dict(r["schemes"]), ""))
            else:
                results.append((1, None, None, None, r["error"]))
        assert len(results) == len(cases)
        return results
    return run


@pytest.fixture(scope="module")
def empty_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "empty.yaml"
    path.write_text("")
    return str(path)


def cpp_check(trainer, yaml_path, overrides):
    """(returncode, config dict, run name, {layer: scheme or None}, stderr) of --check."""
    cmd = [trainer, yaml_path, "--check"] + [a for o in overrides for a in ("--set", o)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return p.returncode, None, None, None, p.stderr
    run_name, schemes = None, None
    for line in p.stdout.splitlines():
        if line.startswith("# run name: "):
            run_name = line[len("# run name: "):]
        if line.startswith("# layer schemes:"):
            schemes = {}
            for item in line[len("# layer schemes:"):].split():
                layer, _, scheme = item.partition("=")
                schemes[layer] = None if scheme == "None" else scheme
    return 0, yaml.safe_load(p.stdout), run_name, schemes, p.stderr


def py_check(yaml_path, overrides):
    try:
        cfg = config.load_config(yaml_path, overrides)
    except config.ConfigError as e:
        return 1, None, None, None, str(e)
    schemes = {layer: config.layer_scheme(cfg, layer) for layer in config.layer_names(cfg)}
    return 0, cfg, config.run_name(cfg), schemes, ""


def test_schema_file_is_the_trainers(trainer):
    dumped = subprocess.run([trainer, "--dump-config-schema"], check=True, capture_output=True, text=True).stdout
    with open(config._SCHEMA_PATH, encoding="utf-8") as f:
        assert f.read() == dumped, "regenerate: bitnetmcu-train --dump-config-schema > " + config._SCHEMA_PATH
    keys = [k["name"] for k in json.loads(dumped)["keys"]]
    assert keys == list(config.KEYS)


def test_defaults_agree(trainer, empty_yaml):
    rc, cpp, _, _, err = cpp_check(trainer, empty_yaml, [])
    assert rc == 0, err
    assert cpp == config.default_config()
    # and the Python YAML dump reads back in C++ as the same configuration
    assert yaml.safe_load(config.config_to_yaml(config.default_config())) == cpp


GRID = {
    "model": ["FCMNIST", "CNNMNIST"],
    "QuantType": ["4bitsym", "Binary", "NF4", "None"],
    "network_width3": ["64", "0"],
    "optimizer": ["Adam", "Muon"],
}
EXTRA = [
    [],
    ["QuantType_fc1=8bit", "QuantType_fcl=None", "runtag=x_", "num_epochs=3", "NormType=Lin"],
    ["QuantType_conv2=FP130", "cnn_width=24", "network_width1=96"],  # FCMNIST: rejected by both
    ["QuantType_fc3=Ternary"],                                          # width3 0: rejected by both
    ["runtag=a/b"],                                                     # rejected by both
    ["distill_teacher=teacher.pt", "distill_weight=0.7", "distill_temperature=3"],  # run name _kd
    ["ema_decay=0.999", "activation_sparsity=0.5"],                    # run name _ema_sparse
]


def compare(cpp_cases, empty_yaml, cases, check_values=True):
    for overrides, c in zip(cases, cpp_cases(cases)):
        p = py_check(empty_yaml, overrides)
        assert (c[0] == 0) == (p[0] == 0), (overrides, c[4], p[4])
        if check_values:
            assert c[1:4] == p[1:4], overrides
    return cases


def test_grid_agrees(cpp_cases, empty_yaml):
    """Every combination of GRID with each EXTRA on top: same verdict; when valid, the same
    configuration, run name and per-layer schemes."""
    cases = [[f"{k}={v}" for k, v in zip(GRID, combo)] + extra
             for extra in EXTRA for combo in itertools.product(*GRID.values())]
    compare(cpp_cases, empty_yaml, cases)


def test_grid_agrees_through_the_trainer_cli(trainer, empty_yaml):
    """A few grid cases through `bitnetmcu-train --check` itself (one process each)."""
    for overrides in (["model=CNNMNIST", "QuantType=NF4"], ["network_width3=0", "optimizer=Muon", "runtag=r_"],
                      ["QuantType=None"], ["QuantType_fc3=Ternary", "network_width3=0"]):
        c, p = cpp_check(trainer, empty_yaml, overrides), py_check(empty_yaml, overrides)
        assert (c[0] == 0) == (p[0] == 0), (overrides, c[4], p[4])
        assert c[1:4] == p[1:4], overrides


def test_ranges_agree(cpp_cases, empty_yaml):
    """Each numeric key at its bounds is accepted, one step outside rejected, by both."""
    cases, verdicts = [], []
    for key, (kind, _, rule, _) in config.KEYS.items():
        if kind not in ("int", "real"):
            continue
        lo, hi = rule
        step = 1 if kind == "int" else max(abs(hi) * 1e-3, 1e-9)
        for value, ok in ((lo, True), (hi, True), (lo - step, False), (hi + step, False)):
            text = str(int(value)) if kind == "int" else repr(float(value))
            cases.append([f"{key}={text}"])
            verdicts.append(ok)
    for overrides, ok, c in zip(cases, verdicts, cpp_cases(cases)):
        p = py_check(empty_yaml, overrides)
        assert (c[0] == 0) == ok and (p[0] == 0) == ok, (overrides, c[4], p[4])
        if ok:
            assert c[1:4] == p[1:4], overrides


def test_choices_agree(cpp_cases, empty_yaml):
    """Every choice of every choice key (CNNMNIST, so that conv overrides are valid), a value
    that is none of them, and the boolean spellings."""
    cases, verdicts = [], []
    for key, (kind, _, rule, _) in config.KEYS.items():
        values = [(v, True) for v in rule] + [("bogus", False)] if kind == "choice" else \
            [(v, True) for v in ("true", "False", "yes", "off", "1", "0")] + [("maybe", False)] if kind == "bool" else []
        for value, ok in values:
            cases.append(["model=CNNMNIST", f"{key}={value}"])
            verdicts.append(ok)
    for overrides, ok, c in zip(cases, verdicts, cpp_cases(cases)):
        p = py_check(empty_yaml, overrides)
        assert (c[0] == 0) == ok and (p[0] == 0) == ok, (overrides, c[4], p[4])
        if ok:
            assert c[1:4] == p[1:4], overrides


def test_control_characters_round_trip(cpp_cases):
    """config_to_yaml escapes quotes, backslashes and control characters: Python's YAML reads
    back unchanged in Python and in C++, and C++ writes the same text for it."""
    cfg = config.default_config()
    cfg["runtag"] = 'a\nb\tc\x01"d\\e\x7f: \u00e9'
    cfg["class_names"] = "x, y\r\n"
    text = config.config_to_yaml(cfg)
    assert config.config_from_yaml_text(text) == cfg
    (ok, cpp, _, _, err), = cpp_cases([(text, [])])
    assert ok == 0, err
    assert cpp == cfg
    # the same values given as --set overrides: read as YAML scalars alike (trailing newline dropped)
    overrides = ["runtag=" + cfg["runtag"], "class_names=" + cfg["class_names"]]
    (ok, cpp, _, _, err), = cpp_cases([overrides])
    assert ok == 0, err
    py = config.default_config()
    for o in overrides:
        config.apply_override(py, o)
    assert cpp == py


SPELLINGS = {
    "num_epochs": ["5", "+5", " 5", "0x10", "1_0", "1e1", "5.0", "010", "", "~", "[1]", "'7'"],
    "learning_rate": ["0.5", "1e-3", "+.5", "5.", "0x1p-3", "1_0.0", ".inf", "nan", "1e", "'0.25'", "1,5"],
    "augmentation": ["yes", "No", "ON", "off", "1", "0", "y", "True", "2", ""],
    "runtag": ["yes", "0x1F", "1_000", "1.0", "~", "'q'", "\"a b\"", "a: b", "a #c", "[x]", "null", "é"],
}


def test_value_spellings_agree(cpp_cases, empty_yaml, tmp_path):
    """Odd spellings of numbers, booleans and text, as --set and as a YAML file line: both
    accept the same ones with the same value (C++ reads the scalar text with strtoll/strtod)."""
    cases = []
    for key, values in SPELLINGS.items():
        for v in values:
            cases.append([f"{key}={v}"])
            cases.append((f"{key}: {v}\n", []))
    for case, c in zip(cases, cpp_cases(cases)):
        if isinstance(case, tuple):
            path = tmp_path / "case.yaml"
            path.write_text(case[0])
            p = py_check(str(path), [])
        else:
            p = py_check(empty_yaml, case)
        assert (c[0] == 0) == (p[0] == 0), (case, c[4], p[4])
        assert c[1:4] == p[1:4], case
