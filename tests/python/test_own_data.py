"""Your own data through the C++ trainer and exporter, from files NumPy itself writes: a CNN on
20x20 images from an .npz (any image size), and an FC model on feature vectors from .npy with a
global input quantizer. The exporter verifies each on its test split (engine = independent
LibTorch emulation on every sample); here the Python module must agree with the exported
header's quantizer and the exporter's predictions."""
import os
import re
import subprocess

import numpy as np
import pytest

import bitnetmcu
from conftest import find_exporter, find_trainer


@pytest.fixture(scope="module")
def tools():
    trainer, exporter = find_trainer(), find_exporter()
    if not trainer or not exporter:
        pytest.skip("bitnetmcu-train / bitnetmcu-export are not built")
    return trainer, exporter


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def c_floats(text, name):
    body = re.search(re.escape(name) + r"\[\] = \{(.*?)\};", text, re.S).group(1)
    return np.array([float(v.rstrip("f")) for v in body.split(",")], dtype=np.float32)


def train_and_export(tools, tmp_path, name, overrides):
    trainer, exporter = tools
    sets = []
    for kv in overrides + ["num_epochs=2", "batch_size=32", "num_threads=1", f"output_dir={tmp_path}",
                           f"runtag={name}_", "network_width2=16", "network_width3=0"]:
        sets += ["--set", kv]
    source = os.environ.get("BITNETMCU_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    run([trainer, os.path.join(source, "trainingparameters.yaml"), "--no-progress"] + sets)
    ckpt = next(p for p in os.listdir(tmp_path) if p.startswith(name + "_") and p.endswith(".pt"))
    out = run([exporter, str(tmp_path / ckpt), "--name", name, "--out-dir", str(tmp_path), "--samples", "50",
               "--predictions", str(tmp_path / f"{name}.pred")])
    m = re.search(r"verified on (\d+) test images: .* engine (\d+) .* (\d+) prediction / (\d+) logit mismatches", out)
    assert m, out
    assert m.group(3) == "0" and m.group(4) == "0"
    return (tmp_path / f"{name}.h").read_text(), bitnetmcu.load_model(str(tmp_path / f"{name}.bnm")), int(m.group(1))


def test_cnn_on_20x20_images_from_npz(tools, tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 40, (n, 20, 20)).astype(np.uint8)
    for i in range(n):  # class 0: a bright row band, 1: a column band, 2: a centre square
        if y[i] == 0:
            x[i, 8:12, :] = 220
        elif y[i] == 1:
            x[i, :, 8:12] = 220
        else:
            x[i, 6:14, 6:14] = 220
    np.savez(tmp_path / "images.npz", x=x, y=y)
    header, model, n_test = train_and_export(tools, tmp_path, "cnn20", [
        "dataset=npz", f"data_train={tmp_path / 'images.npz'}", "input_side=20", "model=CNNMNIST", "cnn_width=4",
        "network_width1=16", "class_names=row,column,square", "augmentation=false"])
    assert n_test == sum(int(np.floor(0.2 * c + 0.5)) for c in np.bincount(y))  # 20 % of each class
    assert "bitnetmcu::Cnn<20, 4, " in header
    assert 'kClassNames[kNumClasses] = {"row", "column", "square"}' in header
    assert "kInputSide = 20;" in header
    assert model.input_size == 400


def test_fc_on_feature_vectors_from_npy_global_quantizer(tools, tmp_path):
    rng = np.random.default_rng(4)
    n, f = 300, 7
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 1, (n, f)).astype(np.float32) * 50 + 1000
    x[:, 2] += 100 * y  # one informative feature
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y.astype(np.int32))
    header, model, n_test = train_and_export(tools, tmp_path, "vec7", [
        "dataset=npy", f"data_train={tmp_path / 'x.npy'}", f"data_train_labels={tmp_path / 'y.npy'}",
        "input_quantization=global", "network_width1=16", "augmentation=false"])
    assert "bitnetmcu::Dense<bitnetmcu::Sym4, 7, 16," in header
    offset, scale = c_floats(header, "kInputOffset"), c_floats(header, "kInputScale")
    assert offset.shape == (1,) and scale.shape == (1,)
    # The exporter's int8 test samples are the raw values through the header's quantizer; the
    # documented formula in numpy (float32 subtract, multiply, round half to even) gives them too.
    data = open(tmp_path / "vec7.pred", "rb").read()
    count, size = np.frombuffer(data, np.uint32, 2, 8)
    images = np.frombuffer(data, np.int8, count * size, 16).reshape(count, size)
    preds = np.frombuffer(data, np.uint8, count, 16 + count * size + count)
    samples = (tmp_path / "vec7.samples.h").read_text()
    raw = np.array([float(v.rstrip("f")) for v in
                    re.findall(r"-?[0-9][0-9.eE+-]*f", samples.split("kRaw")[1])], np.float32).reshape(-1, f)
    assert np.array_equal(bitnetmcu.quantize_features(raw, offset, scale), images[:len(raw)])
    numpy_q = np.clip(np.round((raw - offset) * scale), -128, 127).astype(np.int8)
    assert np.array_equal(numpy_q, images[:len(raw)])
    assert np.array_equal(bitnetmcu.predict(model, images), preds)
    assert n_test == count
