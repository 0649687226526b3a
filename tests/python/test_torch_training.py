"""The PyTorch side without the exporter: checkpoint container, configuration, a tiny training
run whose checkpoint reloads into the same model."""
import os

import numpy as np
import pytest
import torch

from bitnetmcu_torch import checkpoint, config
from bitnetmcu_torch.models import build_model, model_from_checkpoint
from conftest import data_dir


def test_checkpoint_round_trip(tmp_path):
    entries = {"config": "model: FCMNIST\n", "meta": "creator: test\n",
               "model/fc1.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
               "model/fc1.norm.num_batches_tracked": np.array(7, dtype=np.int64),
               "clip/fc1": np.array([0.5], dtype=np.float32)}
    path = tmp_path / "x.pt"
    checkpoint.write_checkpoint(str(path), entries)
    back = checkpoint.read_checkpoint(str(path))
    assert list(back) == list(entries)
    for k, v in entries.items():
        if isinstance(v, str):
            assert back[k] == v
        else:
            assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)
    assert checkpoint.checkpoint_bytes(back) == path.read_bytes()
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="CRC"):
        checkpoint.read_checkpoint(str(path))
    path.write_bytes(b"PK\x03\x04 a zip, not ours")
    with pytest.raises(checkpoint.CheckpointError, match="magic"):
        checkpoint.read_checkpoint(str(path))


def test_config_errors_and_round_trip(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("model: CNNMNIST\nQuantType: NF4\nnetwork_width3: 0\naugmentation: off\n")
    cfg = config.load_config(str(f), ["cnn_width=8", "runtag=abc_"])
    assert cfg["cnn_width"] == 8 and cfg["augmentation"] is False and cfg["runtag"] == "abc_"
    assert config.layer_names(cfg) == ["conv1", "conv2", "conv3", "fc1", "fc2", "fcl"]
    assert [config.layer_scheme(cfg, n) for n in config.layer_names(cfg)] == \
        ["8bit", "8bit", "8bit", "2bitsym", "NF4", "NF4"]
    assert config.config_from_yaml_text(config.config_to_yaml(cfg)) == cfg
    f.write_text("modle: FCMNIST\n")
    with pytest.raises(config.ConfigError, match="unknown key 'modle'; valid keys: model, dataset"):
        config.load_config(str(f))
    with pytest.raises(config.ConfigError, match="num_epochs.*integer"):
        config.apply_override(config.default_config(), "num_epochs=many")
    with pytest.raises(config.ConfigError, match="FCMNIST has no conv"):
        config.apply_override(config.default_config(), "QuantType_conv1=4bit")


def test_shipped_config_is_accepted():
    path = os.path.join(os.path.dirname(data_dir()), "trainingparameters.yaml")
    if not os.path.exists(path):
        pytest.skip("no trainingparameters.yaml at the repository root")
    config.load_config(path)


@pytest.mark.parametrize("model_name", ["FCMNIST", "CNNMNIST"])
def test_forward_shapes(model_name):
    cfg = config.default_config()
    cfg.update(model=model_name, cnn_width=4)
    model = build_model(cfg)
    assert model(torch.randn(3, 1, 16, 16)).shape == (3, 10)


@pytest.mark.parametrize("model_name", ["FCMNIST", "CNNMNIST"])
def test_activation_sparsity_measure_on_the_cpp_cases(model_name):
    """The cases of the C++ test "activation sparsity measure" (tests/training/test_training.cpp),
    and the models' forward with the measure: the same logits, a measure in [0, 1]."""
    from bitnetmcu_torch.models import activation_sparsity_measure as measure
    rows = {(1, 1, 1, 1): 1.0, (2, 2, 0, 0): 0.5, (3, 0, 0, 0): 0.25, (0.001, 0, 0, 0): 0.25, (1, 2, 0, 0): 9 / 20,
            (0, 0, 0, 0): 0.0}
    for row, want in rows.items():
        assert float(measure(torch.tensor([row]))) == pytest.approx(want, rel=1e-6)
    assert float(measure(torch.tensor([[1.0, 1, 1, 1], [3, 0, 0, 0]]))) == pytest.approx(0.625, rel=1e-6)
    zero = torch.zeros(1, 4, requires_grad=True)
    measure(zero).backward()
    assert torch.isfinite(zero.grad).all()
    cfg = config.default_config()
    cfg.update(model=model_name, cnn_width=4)
    model = build_model(cfg).eval()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        logits, m = model(x, with_sparsity=True)
        assert torch.equal(logits, model(x)) and 0 <= float(m) <= 1
        if model_name == "FCMNIST":  # the mean over the inputs of fc2, fc3 and fcl
            h1 = torch.relu(model.fc1(x.reshape(3, -1)))
            h2 = torch.relu(model.fc2(h1))
            h3 = torch.relu(model.fc3(h2))
            want = (measure(h1) + measure(h2) + measure(h3)) / 3
            assert float(m) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("optimizer,ema_decay,sparsity", [("Adam", 0, 0), ("Muon", 0, 0), ("Adam", 0.9, 0), ("Adam", 0, 0.5)])
def test_tiny_training_run_reloads(tmp_path, mnist_test, optimizer, ema_decay, sparsity):
    import train
    cfg = config.default_config()
    cfg.update(optimizer=optimizer, data_dir=data_dir(), num_epochs=1, train_subset=2000, test_subset=500, augmentation=True,
               elastictransformprobability=0.3, network_width1=32, network_width2=32, network_width3=0,
               ema_decay=ema_decay, activation_sparsity=sparsity)
    out = str(tmp_path / "tiny.pt")
    model = train.train(cfg, out, log=lambda *_: None)
    cfg2, loaded, entries = model_from_checkpoint(out)
    assert cfg2 == cfg
    assert "metrics" in entries and entries["meta"].startswith("creator: python/train.py")
    # with ema_decay the saved model is the average; the trained weights go under training/
    assert ("training/model/fc1.weight" in entries) == (ema_decay > 0)
    if ema_decay:
        assert config.run_name(cfg).endswith("_ema_e1")
        assert int(entries["training/average_updates"][0]) == 2 * 2000 // 128 + 1  # 2 x 2,000 samples, batch 128
        assert not np.array_equal(entries["model/fc1.weight"], entries["training/model/fc1.weight"])
    assert config.run_name(cfg).endswith("_sparse_e1") == (sparsity > 0)
    x = torch.randn(20, 1, 16, 16)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_weight_average_on_the_cpp_case():
    """The same case as the C++ test "weight average: the moving average of the weights, step by step":
    weights 0, then 1, 2, 4; ema_decay 0.2 -> 0.9, 1.8, 3.56 (d = 1/10, 2/11, then the cap 0.2)."""
    from bitnetmcu_torch.average import WeightAverage, average_decay
    assert average_decay(0.2, 1) == pytest.approx(0.1) and average_decay(0.2, 3) == pytest.approx(0.2)
    cfg = config.default_config()
    cfg.update(network_width1=8, network_width2=8, network_width3=0, ema_decay=0.2, maxw_update_until_epoch=0)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0)
    average = WeightAverage(cfg, model)
    for w, expected in ((1, 0.9), (2, 1.8), (4, 3.56)):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(w)
        average.update()
        for p in average.model().parameters():
            assert float(p.min()) == pytest.approx(expected) and float(p.max()) == pytest.approx(expected)
    entries = average.entries()
    assert float(entries["model/fc1.weight"].max()) == pytest.approx(3.56)
    assert float(entries["training/model/fc1.weight"].max()) == 4.0
    assert int(entries["training/average_updates"][0]) == 3


def test_distillation_loss_on_a_case_worked_by_hand():
    """The same case as the C++ test "distillation loss" (tests/training/test_training.cpp):
    student logits (0, 0), teacher (ln 3, 0), label 0, w = 0.5, T = 2."""
    import math
    import train
    cfg = config.default_config()
    cfg.update(distill_weight=0.5, distill_temperature=2.0)
    student, y, teacher = torch.zeros(1, 2), torch.zeros(1, dtype=torch.int64), torch.tensor([[math.log(3.0), 0.0]])
    p = math.sqrt(3) / (1 + math.sqrt(3))
    kl = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    assert float(train.training_loss(cfg, student, y, teacher)) == pytest.approx(0.5 * math.log(2) + 0.5 * 4 * kl, rel=1e-6)
    assert float(train.training_loss(cfg, student, y, None)) == pytest.approx(math.log(2), rel=1e-6)
    cfg.update(activation_sparsity=2.0)  # with a sparsity measure of 0.25: + 0.5
    assert float(train.training_loss(cfg, student, y, teacher, torch.tensor(0.25))) == \
        pytest.approx(0.5 * math.log(2) + 0.5 * 4 * kl + 0.5, rel=1e-6)


def test_distillation_student_learns_from_the_teacher_alone(tmp_path, mnist_test):
    """distill_weight 1: the label term has weight 0, so the student learns only through the
    teacher's softened outputs (the zoo's fc_4bitsym); without them it would stay near 10 %."""
    import train
    teacher = os.path.join(os.path.dirname(__file__), "..", "..", "modeldata", "zoo",
                           "fc_4bitsym_FCMNIST_4bitsym_RMS_w64_64_64_Muon_e60.pt")
    cfg = config.default_config()
    cfg.update(data_dir=data_dir(), num_epochs=2, train_subset=3000, test_subset=1000, augmentation=True,
               network_width1=32, network_width2=32, network_width3=0, distill_teacher=teacher,
               distill_weight=1.0, distill_temperature=2.0)
    assert config.run_name(cfg).endswith("_kd_e2")
    lines = []
    train.train(cfg, str(tmp_path / "student.pt"), log=lines.append)
    assert lines[0].startswith(f"distillation: teacher {teacher}")
    meta = checkpoint.parse_meta(model_from_checkpoint(str(tmp_path / "student.pt"))[2]["meta"])
    assert float(meta["test_accuracy"]) > 0.75
    cfg["input_side"] = 12
    with pytest.raises(ValueError, match="distill_teacher.*input_side 16"):
        train.train(cfg, str(tmp_path / "other.pt"), log=lambda *_: None)


def test_muon_orthogonalizes_the_hidden_weights_only():
    from bitnetmcu_torch.optim import Muon, Optimizers, orthogonalize
    torch.manual_seed(0)
    for shape in [(64, 256), (256, 64), (16, 40)]:
        sv = torch.linalg.svdvals(orthogonalize(torch.randn(shape)))
        assert 0.6 < float(sv.min()) and float(sv.max()) < 1.25, (shape, sv)
    cfg = config.default_config()
    cfg.update(optimizer="Muon")
    model = build_model(cfg)
    opts = Optimizers(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    by_kind = {type(opt).__name__: sorted(names[id(p)] for g in opt.param_groups for p in g["params"])
               for opt, _ in opts.base}
    assert by_kind == {"Adam": ["fcl.weight"], "Muon": ["fc1.weight", "fc2.weight", "fc3.weight"]}
    assert isinstance(opts.base[1][0], Muon)


def test_augmenter_parts_do_not_change_the_images():
    """The Augmenter draws its random numbers for the whole batch, then warps it in parts: the
    part size must not change a single value (nearest and bilinear, with mirror and elastic)."""
    from bitnetmcu_torch.data import Augmenter
    raw = torch.rand(700, 1, 28, 28)
    base = {"rotation1": 10, "rotation2": 10, "elastictransformprobability": 0.3, "augmentation_hflip": 0.5}
    for mode in ("nearest", "bilinear"):
        outs = []
        for part in (10**9, 256):
            aug = Augmenter(dict(base, augmentation_interpolation=mode))
            aug.part = part
            torch.manual_seed(4)
            outs.append(aug(raw))
        assert torch.equal(outs[0], outs[1])


def test_augmenter_hflip_mirrors_like_the_cpp_trainer():
    """augmentation_hflip, the same property tests/training/test_data_checkpoint.cpp checks of the
    C++ Augmenter: with probability 1 a blob in the left half lands in the right half; with 0 it
    stays left (shift <= 10 % and scale 0.9-1.1 cannot carry it across)."""
    from bitnetmcu_torch.data import MNIST_MEAN, MNIST_STD, Augmenter
    left = torch.zeros(8, 1, 28, 28)
    left[:, :, 10:18, 2:10] = 1.0
    cfg = {"rotation1": 0, "rotation2": 0, "elastictransformprobability": 0}
    for hflip, lands_right in ((1.0, True), (0.0, False)):
        torch.manual_seed(3)
        ink = Augmenter(dict(cfg, augmentation_hflip=hflip))(left) * MNIST_STD + MNIST_MEAN
        left_ink, right_ink = ink[..., :8].sum().item(), ink[..., 8:].sum().item()
        assert (right_ink > 4 * left_ink) if lands_right else (left_ink > 4 * right_ink)
