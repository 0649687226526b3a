#!/usr/bin/python3
"""Quantization-aware training in PyTorch, reading trainingparameters.yaml like bitnetmcu-train
and writing the same checkpoint format (docs/checkpoint-format.md), so that bitnetmcu-export
accepts the result.

  /usr/bin/python3 python/train.py trainingparameters.yaml --set num_epochs=1 --out /tmp/x.pt
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

from bitnetmcu_torch import config as config_mod
from bitnetmcu_torch.average import WeightAverage
from bitnetmcu_torch.checkpoint import CheckpointMeta, write_checkpoint
from bitnetmcu_torch.data import Augmenter, downscale_normalize, load_raw, to_unit_tensor
from bitnetmcu_torch.models import build_model, model_from_checkpoint
from bitnetmcu_torch.optim import Optimizers
from bitnetmcu_torch.quant import entropy_bits


def schedule_factor(cfg, epoch):
    """The schedule's factor of an epoch (schedulers stepped once per epoch; 1 at the start),
    halved from halve_lr_epoch on. It scales learning_rate and muon_learning_rate alike."""
    if cfg["scheduler"] == "StepLR":
        f = cfg["lr_decay"] ** (epoch // cfg["step_size"])
    elif cfg["scheduler"] == "Cosine":
        f = 0.5 * (1 + math.cos(math.pi * epoch / cfg["num_epochs"]))
    else:  # CosineWarmRestarts
        t_i, t_cur = cfg["T_0"], epoch
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= cfg["T_mult"]
        f = 0.5 * (1 + math.cos(math.pi * t_cur / t_i))
    if 0 <= cfg["halve_lr_epoch"] <= epoch:
        f *= 0.5
    return f


@torch.no_grad()
def evaluate(model, images, labels, batch=2000):
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(labels), batch):
        out = model(images[i:i + batch])
        loss += float(F.cross_entropy(out, labels[i:i + batch], reduction="sum"))
        correct += int((out.argmax(1) == labels[i:i + batch]).sum())
    return loss / len(labels), correct / len(labels)


def epoch_inputs(cfg, plain, raw28, augmenter):
    """The plain training set plus, with augmentation on, one augmented copy of it."""
    if not cfg["augmentation"]:
        return plain
    copies = [augmenter(raw28[i:i + 4096]) for i in range(0, len(raw28), 4096)]
    return torch.cat([plain] + copies)


def load_teacher(cfg):
    """Knowledge distillation (as bitnetmcu-train): the distill_teacher checkpoint's model, checked
    to take the same input."""
    path = cfg["distill_teacher"]
    if not os.path.isfile(path):
        raise ValueError(f"config key distill_teacher: {path}: no such checkpoint file")
    tcfg, teacher, _ = model_from_checkpoint(path)
    # (bitnetmcu-train also compares input and class counts: here both follow from these two,
    # the Python trainer reading MNIST and Fashion-MNIST only)
    for key, t, s in (("dataset", tcfg["dataset"], cfg["dataset"]), ("input_side", tcfg["input_side"], cfg["input_side"])):
        if t != s:
            raise ValueError(f"config key distill_teacher: {path}: the teacher was trained with {key} {t}, "
                             f"this run has {s}; expected a teacher for the same input and classes")
    return teacher.eval()


@torch.no_grad()
def teacher_outputs(teacher, images):
    return torch.cat([teacher(images[i:i + 1024]) for i in range(0, len(images), 1024)])


def training_loss(cfg, out, y, teacher, sparsity=None):
    """Cross entropy; with the teacher's logits for the batch, (1 - w) CE + w T^2 KL(teacher || student);
    plus activation_sparsity * sparsity (the model's sparsity measure) when given.
    The twin of training_loss in training/trainer.cpp (both tested on the same case)."""
    loss = F.cross_entropy(out, y)
    if teacher is not None:
        temp, w = cfg["distill_temperature"], cfg["distill_weight"]
        log_s, log_t = F.log_softmax(out / temp, 1), F.log_softmax(teacher / temp, 1)
        loss = (1 - w) * loss + (w * temp * temp) * (log_t.exp() * (log_t - log_s)).sum(1).mean()
    if sparsity is not None:
        loss = loss + cfg["activation_sparsity"] * sparsity
    return loss


def train(cfg, out_path, log=print):
    torch.manual_seed(cfg["seed"])
    if cfg["num_threads"] > 0:
        torch.set_num_threads(cfg["num_threads"])
    train_u8, train_labels = load_raw(cfg["data_dir"], cfg["dataset"], True, cfg["train_subset"])
    test_u8, test_labels = load_raw(cfg["data_dir"], cfg["dataset"], False, cfg["test_subset"])
    raw28 = to_unit_tensor(train_u8)
    plain = downscale_normalize(raw28)
    test_x, test_y = downscale_normalize(to_unit_tensor(test_u8)), torch.from_numpy(test_labels)
    train_y = torch.from_numpy(train_labels)
    teacher, teacher_plain = None, None
    if cfg["distill_teacher"]:
        teacher = load_teacher(cfg)
        teacher_plain = teacher_outputs(teacher, plain)
        log(f"distillation: teacher {cfg['distill_teacher']}, "
            f"{100 * float((teacher_plain.argmax(1) == train_y).double().mean()):.2f} % on the {len(plain)} training "
            f"images; weight {cfg['distill_weight']}, temperature {cfg['distill_temperature']}")
    model = build_model(cfg)
    optimizer = Optimizers(model, cfg)
    augmenter = Augmenter(cfg)
    average = WeightAverage(cfg, model)
    header = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"] + \
        [f"clip_{n}" for n, _ in model.quant_layers()] + [f"entropy_{n}" for n, _ in model.quant_layers()]
    rows, started = [",".join(header)], time.time()
    for epoch in range(cfg["num_epochs"]):
        t0 = time.time()
        factor = schedule_factor(cfg, epoch)
        lr = cfg["learning_rate"] * factor
        optimizer.set_schedule(factor)
        if epoch < cfg["maxw_update_until_epoch"]:
            model.update_clips(cfg["maxw_algo"], cfg["maxw_quantscale"])
        x = epoch_inputs(cfg, plain, raw28, augmenter)
        y = train_y.repeat(len(x) // len(train_y))
        # the teacher's logits for every sample: the training images first, then the augmented copies
        t = None if teacher is None else torch.cat([teacher_plain, teacher_outputs(teacher, x[len(plain):])])
        order = torch.randperm(len(x))
        model.train()
        total_loss, correct = 0.0, 0
        for i in range(0, len(x), cfg["batch_size"]):
            idx = order[i:i + cfg["batch_size"]]
            out, sparsity = model(x[idx], with_sparsity=True) if cfg["activation_sparsity"] > 0 else (model(x[idx]), None)
            loss = training_loss(cfg, out, y[idx], None if t is None else t[idx], sparsity)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            average.update()
            total_loss += float(loss) * len(idx)
            correct += int((out.argmax(1) == y[idx]).sum())
        average.sync(epoch)
        test_loss, test_acc = evaluate(average.model(), test_x, test_y)
        layers = [layer for _, layer in average.model().quant_layers()]
        clips = [float(layer.current_clip().mean()) for layer in layers]
        entropies = [entropy_bits(layer.quantized_weight()) if layer.scheme else 32.0 for layer in layers]
        seconds = time.time() - t0
        rows.append(",".join(str(v) for v in [epoch + 1, lr, total_loss / len(x), correct / len(x), test_loss,
                                               test_acc, round(seconds, 3)] + clips + entropies))
        log(f"epoch {epoch + 1}/{cfg['num_epochs']}  lr {lr:.6f}  train loss {total_loss / len(x):.4f} "
            f"acc {100 * correct / len(x):.2f}%  test loss {test_loss:.4f} acc {100 * test_acc:.2f}%  "
            f"{len(x) / seconds:.0f} samples/s  clip " +
            " ".join(f"{n}={c:.4g}" for (n, _), c in zip(model.quant_layers(), clips)))
    entries = {
        "config": config_mod.config_to_yaml(cfg),
        "meta": CheckpointMeta(creator="python/train.py", epochs_done=cfg["num_epochs"], complete=True,
                               train_seconds=round(time.time() - started, 1), test_accuracy=test_acc,
                               test_loss=test_loss).to_text(),
        "metrics": "\n".join(rows) + "\n",
    }
    entries.update(average.entries())
    write_checkpoint(out_path, entries)
    log(f"wrote {out_path}")
    return average.model()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="trainingparameters.yaml", help="YAML configuration")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    parser.add_argument("--out", help="checkpoint path (default: <output_dir>/<run name>.pt)")
    args = parser.parse_args(argv)
    try:
        cfg = config_mod.load_config(args.config, args.set)
    except (OSError, config_mod.ConfigError) as e:
        sys.exit(f"error: {e}")
    out = args.out or os.path.join(cfg["output_dir"], config_mod.run_name(cfg) + ".pt")
    try:
        train(cfg, out)
    except ValueError as e:  # bad data or teacher files: the message names the file and key
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
