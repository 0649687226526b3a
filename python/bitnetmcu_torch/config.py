"""trainingparameters.yaml -> a validated dict, with the keys, defaults and ranges of the C++
trainer (training/config.cpp), so that either trainer reads the other's files and the exporter
reads the config stored in a Python-written checkpoint."""
import math

import yaml

SCHEME_NAMES = ["Binary", "Ternary", "2bitsym", "4bitsym", "4bit", "8bit", "FP130", "NF4"]
_QUANT = SCHEME_NAMES + ["None"]
_QUANT_AUTO = _QUANT + ["auto"]

# name: (kind, default, choices or (lo, hi))
KEYS = {
    "model": ("choice", "FCMNIST", ["FCMNIST", "CNNMNIST"]),
    "dataset": ("choice", "MNIST", ["MNIST", "FashionMNIST", "idx", "npy", "npz", "csv", "images"]),
    "data_dir": ("text", "data", None),
    "data_train": ("text", "", None),
    "data_train_labels": ("text", "", None),
    "data_test": ("text", "", None),
    "data_test_labels": ("text", "", None),
    "test_fraction": ("real", 0.2, (0.01, 0.9)),
    "label_column": ("text", "label", None),
    "csv_header": ("bool", True, None),
    "csv_skip_rows": ("int", 0, (0, 1000000)),
    "class_names": ("text", "", None),
    "input_side": ("int", 16, (4, 64)),
    "input_quantization": ("choice", "auto", ["auto", "per_image", "global", "per_feature"]),
    "input_features": ("int", 0, (0, 65536)),
    "classes": ("int", 0, (0, 256)),
    "network_width1": ("int", 64, (1, 4096)),
    "network_width2": ("int", 64, (1, 4096)),
    "network_width3": ("int", 64, (0, 4096)),
    "cnn_width": ("int", 32, (1, 1024)),
    "QuantType": ("choice", "4bitsym", _QUANT),
    "QuantType_conv1": ("choice", "auto", _QUANT_AUTO),
    "QuantType_conv2": ("choice", "auto", _QUANT_AUTO),
    "QuantType_conv3": ("choice", "auto", _QUANT_AUTO),
    "QuantType_fc1": ("choice", "auto", _QUANT_AUTO),
    "QuantType_fc2": ("choice", "auto", _QUANT_AUTO),
    "QuantType_fc3": ("choice", "auto", _QUANT_AUTO),
    "QuantType_fcl": ("choice", "auto", _QUANT_AUTO),
    "NormType": ("choice", "RMS", ["RMS", "Lin", "BatchNorm", "LayerNorm", "None"]),
    "WScale": ("choice", "PerTensor", ["PerTensor", "PerOutput"]),
    "maxw_algo": ("choice", "octav", ["octav", "prop"]),
    "maxw_update_until_epoch": ("int", 60, (0, 1e6)),
    "maxw_quantscale": ("real", 0.25, (1e-6, 1e6)),
    "num_epochs": ("int", 10, (1, 100000)),
    "batch_size": ("int", 128, (1, 1 << 20)),
    "optimizer": ("choice", "Adam", ["Adam", "Muon"]),
    "learning_rate": ("real", 0.001, (1e-12, 10)),
    "muon_learning_rate": ("real", 0.01, (1e-12, 10)),
    "scheduler": ("choice", "Cosine", ["StepLR", "Cosine", "CosineWarmRestarts"]),
    "lr_decay": ("real", 0.1, (1e-9, 1)),
    "step_size": ("int", 10, (1, 100000)),
    "T_0": ("int", 10, (1, 100000)),
    "T_mult": ("int", 1, (1, 1000)),
    "halve_lr_epoch": ("int", -1, (-1, 100000)),
    "augmentation": ("bool", True, None),
    "rotation1": ("real", 10.0, (0, 180)),
    "rotation2": ("real", 10.0, (0, 180)),
    "elastictransformprobability": ("real", 0.0, (0, 1)),
    "augmentation_interpolation": ("choice", "nearest", ["nearest", "bilinear"]),
    "runtag": ("text", "", None),
    "output_dir": ("text", "modeldata", None),
    "seed": ("int", 1, (0, 2147483647)),
    "num_threads": ("int", 0, (0, 1024)),
    "train_subset": ("int", 0, (0, 1e9)),
    "test_subset": ("int", 0, (0, 1e9)),
}


class ConfigError(ValueError):
    """A configuration problem; the message names where (file or --set) and the key."""


def _convert(where, key, value):
    kind, _, rule = KEYS[key]
    text = str(value)

    def fail():
        if kind == "int":
            expected = f"an integer in [{int(rule[0])}, {int(rule[1])}]"
        elif kind == "real":
            expected = f"a number in [{rule[0]:g}, {rule[1]:g}]"
        elif kind == "choice":
            expected = "one of " + ", ".join(rule)
        else:
            expected = "true or false" if kind == "bool" else "a string"
        raise ConfigError(f"{where}: key '{key}': expected {expected}, got '{text}'")

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
        try:
            number = int(text) if kind == "int" else float(text)
        except ValueError:
            number = None
        if number is None or (kind == "real" and not math.isfinite(number)):
            fail()
        if not rule[0] <= number <= rule[1]:
            fail()
        return number
    if kind == "choice" and text not in rule:
        fail()
    return text


def _validate(cfg, where):
    if cfg["model"] != "CNNMNIST":
        for conv in ("QuantType_conv1", "QuantType_conv2", "QuantType_conv3"):
            if cfg[conv] != "auto":
                raise ConfigError(f"{where}: key '{conv}': model FCMNIST has no conv layers; expected auto")
    if cfg["network_width3"] == 0 and cfg["QuantType_fc3"] != "auto":
        raise ConfigError(f"{where}: key 'QuantType_fc3': network_width3 is 0 (no fc3); expected auto")


def default_config():
    return {key: spec[1] for key, spec in KEYS.items()}


def config_from_mapping(mapping, where):
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
        mapping = yaml.safe_load(f)
    if mapping is not None and not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value lines")
    cfg = config_from_mapping(mapping, path)
    for item in overrides:
        apply_override(cfg, item)
    return cfg


def config_from_yaml_text(text, origin="config"):
    return config_from_mapping(yaml.safe_load(text), origin)


def apply_override(cfg, key_equals_value):
    where = f"--set {key_equals_value}"
    key, sep, value = key_equals_value.partition("=")
    if not sep or not key:
        raise ConfigError(f"{where}: expected key=value")
    if key not in KEYS:
        raise ConfigError(f"{where}: unknown key '{key}'; valid keys: {', '.join(KEYS)}")
    parsed = yaml.safe_load(value) if value else ""
    cfg[key] = _convert(where, key, parsed if parsed is not None else value)
    _validate(cfg, where)


def config_to_yaml(cfg):
    """One `key: value` line per key, in table order (as the C++ trainer writes it)."""
    lines = []
    for key, (kind, _, _) in KEYS.items():
        value = cfg[key]
        if kind == "bool":
            text = "true" if value else "false"
        elif kind in ("choice", "text"):
            text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
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
    return name + f"_e{cfg['num_epochs']}"
