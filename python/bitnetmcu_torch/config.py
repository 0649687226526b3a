"""trainingparameters.yaml -> a validated dict, with the keys, defaults and ranges of the C++
trainer, so that either trainer reads the other's files and the exporter reads the config stored
in a Python-written checkpoint. The keys are not restated here: config_schema.json is the output
of `bitnetmcu-train --dump-config-schema` (the key table of training/config.cpp);
tests/python/test_config_twin.py checks it and compares run_name/layer_scheme with the C++."""
import json
import math
import os
import re

import yaml

_SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config_schema.json")


def _load_schema(path=_SCHEMA_PATH):
    """{name: (kind, default, choices or (lo, hi), doc)} from the trainer's key table, as
    `bitnetmcu-train --dump-config-schema` prints it (ctest training.config_schema_current
    fails when the checked-in file differs from the binary's output)."""
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    keys = {}
    for k in schema["keys"]:
        kind, default = k["type"], k["default"]
        rule = None
        if kind == "choice":
            rule = k["choices"]
        elif kind in ("int", "real"):
            number = int if kind == "int" else float  # JSON writes 10.0 as 10
            default, rule = number(default), (number(k["min"]), number(k["max"]))
        keys[k["name"]] = (kind, default, rule, k["doc"])
    return keys


# name: (kind, default, choices or (lo, hi), doc)
KEYS = _load_schema()
# The weight scheme names, in engine order (the choices of QuantType without "None").
SCHEME_NAMES = [c for c in KEYS["QuantType"][2] if c != "None"]


class ConfigError(ValueError):
    """A configuration problem; the message names where (file or --set) and the key."""


# The number syntax of C's strtoll (base 10) and strtod, which the C++ trainer parses with: a
# value either accepts is accepted by both (PyYAML's own typing would read 0x10 or 1_000 too).
_SPACE = "[ \t\n\v\f\r]*"
_INT = re.compile(_SPACE + "[+-]?[0-9]+")
_REAL = re.compile(_SPACE + "[+-]?(?:(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                   "|0[xX](?:[0-9a-fA-F]+\\.?[0-9a-fA-F]*|\\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?)")


def _expected(key):
    kind, _, rule, _ = KEYS[key]
    if kind == "int":
        return f"an integer in [{int(rule[0])}, {int(rule[1])}]"
    if kind == "real":
        return f"a number in [{rule[0]:g}, {rule[1]:g}]"
    if kind == "choice":
        return "one of " + ", ".join(rule)
    return "true or false" if kind == "bool" else "a string"


def _convert(where, key, value):
    """The value of `key` from YAML scalar text (or a Python value), checked as the C++ does."""
    kind, _, rule, _ = KEYS[key]
    text = str(value)

    def fail():
        raise ConfigError(f"{where}: key '{key}': expected {_expected(key)}, got '{text}'")

    if kind == "bool":
        if isinstance(value, bool):
            return value
        low = text.lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        fail()
    if kind in ("int", "real"):
        if isinstance(value, bool):
            fail()
        number = None
        if kind == "int" and _INT.fullmatch(text):
            number = int(text)
        elif kind == "real" and _REAL.fullmatch(text):
            stripped = text.lstrip(" \t\n\v\f\r")
            unsigned = stripped.lstrip("+-")
            number = float.fromhex(stripped) if unsigned[:2] in ("0x", "0X") else float(stripped)
        if number is None or (kind == "real" and not math.isfinite(number)):
            fail()
        if not rule[0] <= number <= rule[1]:
            fail()
        return number
    if kind == "choice" and text not in rule:
        fail()
    return text


def _scalar_text(node):
    """The text of a YAML scalar node, as yaml-cpp's Scalar() gives it; None for a null (empty,
    ~, null) or a list or mapping. Text, not PyYAML's typed value: 'yes' stays 'yes'."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.style is None and node.tag == "tag:yaml.org,2002:null":
        return None
    return node.value


def _config_from_text(text, origin):
    """Parses YAML text as the C++ parse_yaml does: scalar texts, file:line in errors, a key
    given twice is an error."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{origin}: invalid YAML: {e}") from None
    cfg = default_config()
    if root is None or (isinstance(root, yaml.ScalarNode) and _scalar_text(root) is None):
        return cfg  # an empty file means "all defaults"
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{origin}:{root.start_mark.line + 1}: expected a mapping of key: value lines")
    seen = set()
    for key_node, value_node in root.value:
        key, at = str(key_node.value), f"{origin}:{key_node.start_mark.line + 1}"
        if key not in KEYS:
            raise ConfigError(f"{at}: unknown key '{key}'; valid keys: {', '.join(KEYS)}")
        value = _scalar_text(value_node)
        if value is None:
            got = "a list or mapping" if not isinstance(value_node, yaml.ScalarNode) else "nothing"
            raise ConfigError(f"{at}: key '{key}': expected {_expected(key)}, got {got}")
        if key in seen:
            raise ConfigError(f"{at}: key '{key}' given twice")
        seen.add(key)
        cfg[key] = _convert(at, key, value)
    _validate(cfg, origin)
    return cfg


def _validate(cfg, where):
    if cfg["model"] != "CNNMNIST":
        for conv in ("QuantType_conv1", "QuantType_conv2", "QuantType_conv3"):
            if cfg[conv] != "auto":
                raise ConfigError(f"{where}: key '{conv}': model FCMNIST has no conv layers; expected auto")
    if cfg["network_width3"] == 0 and cfg["QuantType_fc3"] != "auto":
        raise ConfigError(f"{where}: key 'QuantType_fc3': network_width3 is 0 (no fc3); expected auto")
    if "/" in cfg["runtag"]:
        raise ConfigError(f"{where}: key 'runtag': expected a file-name prefix without '/'")


def default_config():
    return {key: spec[1] for key, spec in KEYS.items()}


def config_from_mapping(mapping, where):
    """A configuration from a dict of Python values (keys checked, values converted)."""
    cfg = default_config()
    for key, value in (mapping or {}).items():
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key '{key}'; valid keys: {', '.join(KEYS)}")
        cfg[key] = _convert(where, key, value)
    _validate(cfg, where)
    return cfg


def load_config(path, overrides=()):
    """Reads a YAML file and applies "key=value" overrides in order."""
    with open(path, encoding="utf-8") as f:
        cfg = _config_from_text(f.read(), path)
    for item in overrides:
        apply_override(cfg, item)
    return cfg


def config_from_yaml_text(text, origin="config"):
    return _config_from_text(text, origin)


def apply_override(cfg, key_equals_value):
    where = f"--set {key_equals_value}"
    key, sep, value = key_equals_value.partition("=")
    if not sep or not key:
        raise ConfigError(f"{where}: expected key=value")
    if key not in KEYS:
        raise ConfigError(f"{where}: unknown key '{key}'; valid keys: {', '.join(KEYS)}")
    try:  # YAML scalar rules, so that --set runtag="x" behaves like the file (as the C++)
        scalar = _scalar_text(yaml.compose(value, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        scalar = None
    cfg[key] = _convert(where, key, value if scalar is None else scalar)
    _validate(cfg, where)


def _yaml_quoted(text):
    """A YAML double-quoted scalar that reads back as exactly `text`: quotes, backslashes and
    control characters escaped, as the C++ trainer's yaml_quoted (a raw newline or tab would
    change the value or break the stored config)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def config_to_yaml(cfg):
    """One `key: value` line per key, in table order (as the C++ trainer writes it)."""
    lines = []
    for key, (kind, _, _, _) in KEYS.items():
        value = cfg[key]
        if kind == "bool":
            text = "true" if value else "false"
        elif kind in ("choice", "text"):
            text = _yaml_quoted(str(value))
        else:
            text = repr(value)
        lines.append(f"{key}: {text}")
    return "\n".join(lines) + "\n"


def layer_names(cfg):
    """Layer names in forward order (docs/checkpoint-format.md)."""
    names = ["conv1", "conv2", "conv3"] if cfg["model"] == "CNNMNIST" else []
    names += ["fc1", "fc2"] + (["fc3"] if cfg["network_width3"] > 0 else []) + ["fcl"]
    return names


def layer_scheme(cfg, layer):
    """Resolved weight scheme name of a layer, or None for float (QuantType None)."""
    name = cfg["QuantType_" + layer]
    if name == "auto":
        if cfg["QuantType"] == "None":
            name = "None"
        elif layer.startswith("conv"):
            name = "8bit"
        elif layer == "fc1" and cfg["model"] == "CNNMNIST":
            name = "2bitsym"
        else:
            name = cfg["QuantType"]
    return None if name == "None" else name


def run_name(cfg):
    name = (f"{cfg['runtag']}{cfg['model']}_{cfg['QuantType']}_{cfg['NormType']}_w{cfg['network_width1']}"
            f"_{cfg['network_width2']}_{cfg['network_width3']}")
    if cfg["model"] == "CNNMNIST":
        name += f"_cnn{cfg['cnn_width']}"
    if cfg["optimizer"] != "Adam":
        name += f"_{cfg['optimizer']}"
    if cfg["distill_teacher"]:
        name += "_kd"
    if cfg["ema_decay"] > 0:
        name += "_ema"
    if cfg["activation_sparsity"] > 0:
        name += "_sparse"
    return name + f"_e{cfg['num_epochs']}"
