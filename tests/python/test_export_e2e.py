"""A Python-trained checkpoint (tiny, 1 epoch) goes through the C++ exporter: the exported codes
are the PyTorch quantizer's codes, the module reads the exporter's model file, its input path
gives the exporter's int8 images, and its predictions equal the exporter's engine run (and the
SPEC numpy twin) on every image."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest

import bitnetmcu
import spec_reference
from bitnetmcu_torch import config
from conftest import data_dir, find_exporter, find_trainer

LIMIT = 2000  # test images verified by the exporter and here


@pytest.fixture(scope="module")
def exporter():
    path = find_exporter()
    if not path:
        pytest.skip("bitnetmcu-export is not built (configure with BITNETMCU_BUILD_TRAINING=ON, which needs "
                    "LibTorch, or set BITNETMCU_EXPORTER to the binary)")
    return path


def read_predictions(path):
    """The exporter's --predictions file: "BNMCUPR1" u32 n u32 input_size, int8 images[n][size],
    u8 labels[n], u8 predictions[n]."""
    data = open(path, "rb").read()
    assert data[:8] == b"BNMCUPR1"
    n, size = struct.unpack_from("<II", data, 8)
    images = np.frombuffer(data, np.int8, n * size, 16).reshape(n, size)
    labels = np.frombuffer(data, np.uint8, n, 16 + n * size)
    preds = np.frombuffer(data, np.uint8, n, 16 + n * size + n)
    return images, labels, preds


def engine_layers_as_codes(model):
    """The model file's layers in the form spec_reference.run_model takes."""
    layers = []
    for i, layer in enumerate(model.layers):
        if layer["kind"] == "cnn":
            layers.append({"cnn": model.layer_weights(i), "shift": layer["shift"]})
        else:
            layers.append({"scheme": layer["scheme"], "codes": model.layer_weights(i)})
    return layers


# name: config overrides. One small epoch: only 4bitsym learns much; the others must beat chance.
CASES = {
    "fc_4bitsym": dict(QuantType="4bitsym", network_width1=32, network_width2=32, network_width3=0),
    "fc_ternary_fp130_perout": dict(QuantType="FP130", QuantType_fc1="Ternary", WScale="PerOutput",
                                    network_width1=32, network_width2=16, network_width3=16),
    "cnn_nf4_binary": dict(model="CNNMNIST", cnn_width=4, QuantType="NF4", QuantType_fcl="Binary",
                           network_width1=16, network_width2=16, network_width3=0),
}


@pytest.mark.parametrize("case", CASES)
def test_python_checkpoint_exports_and_verifies(case, exporter, mnist_test, tmp_path):
    import train
    import verify
    cfg = config.default_config()
    cfg.update(data_dir=data_dir(), num_epochs=1, train_subset=3000, test_subset=1000, augmentation=False,
               batch_size=64, **CASES[case])
    ckpt = str(tmp_path / f"{case}.pt")
    train.train(cfg, ckpt, log=lambda *_: None)

    pred_file = str(tmp_path / "predictions.bin")
    run = subprocess.run([exporter, ckpt, "--out-dir", str(tmp_path), "--name", case, "--data-dir", data_dir(),
                          "--limit", str(LIMIT), "--predictions", pred_file, "--quiet"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    model_file = str(tmp_path / f"{case}.bnm")
    assert os.path.exists(str(tmp_path / f"{case}.h"))

    # every exported code is the PyTorch quantizer's code
    result = verify.verify(ckpt, model_file, data_dir(), LIMIT, log=lambda *_: None)
    assert all(v == 0 for v in result["code_mismatches"].values()), result["code_mismatches"]
    # the C++ exporter's float model (LibTorch) and engine count the same images right
    report = json.load(open(str(tmp_path / f"{case}.report.json")))["verification"]
    # integer results agree exactly; the float models run through different BLAS code (PyTorch's
    # vs the trainer's oneDNN sgemm), so a borderline image may flip: allow two of LIMIT.
    assert report["int_correct"] == result["int_correct"]
    assert abs(report["float_correct"] - result["float_correct"]) <= 2
    least = 0.6 if case == "fc_4bitsym" else 0.15
    assert result["int_correct"] > least * LIMIT and result["float_correct"] > least * LIMIT
    assert abs(result["int_correct"] - result["float_correct"]) < 0.05 * LIMIT
    assert result["mismatches"] < (0.05 if case == "fc_4bitsym" else 0.25) * LIMIT

    # the module's input path gives the exporter's images; its engine run gives the exporter's
    images, labels, exporter_preds = read_predictions(pred_file)
    test_u8, test_labels = mnist_test
    np.testing.assert_array_equal(labels, test_labels[:LIMIT])
    np.testing.assert_array_equal(bitnetmcu.quantize_input(bitnetmcu.preprocess(test_u8[:LIMIT])), images)
    model = bitnetmcu.load_model(model_file)
    ours = bitnetmcu.predict(model, images)
    np.testing.assert_array_equal(ours, exporter_preds)
    np.testing.assert_array_equal(result["int_predictions"], exporter_preds)
    ref_classes, ref_logits = spec_reference.run_model(engine_layers_as_codes(model), images)
    np.testing.assert_array_equal(ours, ref_classes)
    np.testing.assert_array_equal(bitnetmcu.logits(model, images), ref_logits)


def test_cpp_trainer_checkpoint_runs_in_pytorch(exporter, mnist_test, tmp_path):
    """The other direction: a bitnetmcu-train checkpoint loads into the PyTorch model, which
    classifies exactly the test images the C++ float model does, and quantizes to the exported codes."""
    import verify
    trainer = find_trainer()
    if not trainer:
        pytest.skip("bitnetmcu-train is not built (BITNETMCU_BUILD_TRAINING=ON needs LibTorch)")
    (tmp_path / "t.yaml").write_text(f'data_dir: "{data_dir()}"\noutput_dir: "{tmp_path}"\nruntag: "cpp_"\n')
    sets = ["model=CNNMNIST", "cnn_width=4", "network_width1=16", "network_width2=16", "network_width3=0",
            "QuantType=Ternary", "num_epochs=1", "train_subset=2000", "test_subset=500", "augmentation=false",
            "num_threads=1"]
    run = subprocess.run([trainer, str(tmp_path / "t.yaml"), "--no-progress"] + [a for s in sets for a in ("--set", s)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    ckpt = next(str(p) for p in tmp_path.glob("cpp_*.pt"))
    run = subprocess.run([exporter, ckpt, "--out-dir", str(tmp_path), "--name", "cpp", "--limit", str(LIMIT),
                          "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = verify.verify(ckpt, str(tmp_path / "cpp.bnm"), data_dir(), LIMIT, log=lambda *_: None)
    assert all(v == 0 for v in result["code_mismatches"].values()), result["code_mismatches"]
    report = json.load(open(str(tmp_path / "cpp.report.json")))["verification"]
    # integer results agree exactly; the float models run through different BLAS code (PyTorch's
    # vs the trainer's oneDNN sgemm), so a borderline image may flip: allow two of LIMIT.
    assert report["int_correct"] == result["int_correct"]
    assert abs(report["float_correct"] - result["float_correct"]) <= 2
