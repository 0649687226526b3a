"""FCMNIST and CNNMNIST of SPEC §3, built from a config dict (bitnetmcu_torch.config)."""
import torch
import torch.nn.functional as F
from torch import nn

from .config import layer_names, layer_scheme
from .layers import BitConv2d, BitLinear


class _BitModel(nn.Module):
    def quant_layers(self):
        """(name, layer) of every quantized layer, in forward order (checkpoint layer names)."""
        return [(name, getattr(self, name)) for name in self.layer_names]

    def update_clips(self, algo, quantscale):
        for _, layer in self.quant_layers():
            layer.update_clip(algo, quantscale)

    def _dense_forward(self, x, measures):
        """The dense stack on features x; appends the sparsity measure of every ReLU output that
        feeds a dense layer to `measures` (a list) when it is not None."""
        for name in self.dense_names[:-1]:
            x = F.relu(getattr(self, name)(x))
            if measures is not None:
                measures.append(activation_sparsity_measure(x))
        return getattr(self, self.dense_names[-1])(x)


def activation_sparsity_measure(h):
    """(sum_j h_j)^2 / (n sum_j h_j^2) per row of h [N, n] (ReLU outputs), averaged over rows: 1
    when all n are equal, k/n when k equal values are nonzero, 0 for an all-zero row; scale-free.
    The twin of activation_sparsity_measure in training/models.cpp (config key activation_sparsity)."""
    s, sq = h.sum(-1), h.square().sum(-1)
    return (s.square() / (sq * h.shape[-1]).clamp_min(1e-12)).mean()


def _dense_stack(model, cfg, in_features, num_classes):
    per_output = cfg["WScale"] == "PerOutput"
    widths = [cfg["network_width1"], cfg["network_width2"]] + ([cfg["network_width3"]] if cfg["network_width3"] else [])
    names = ["fc1", "fc2", "fc3"][:len(widths)] + ["fcl"]
    for name, out in zip(names, widths + [num_classes]):
        setattr(model, name, BitLinear(in_features, out, layer_scheme(cfg, name), cfg["NormType"], per_output))
        in_features = out
    return names


class FCMNIST(_BitModel):
    """flatten 256 -> fc1 -> ReLU -> fc2 -> ReLU -> [fc3 -> ReLU] -> fcl."""

    def __init__(self, cfg, num_classes=10):
        super().__init__()
        self.dense_names = _dense_stack(self, cfg, 256, num_classes)
        self.layer_names = layer_names(cfg)

    def forward(self, x, with_sparsity=False):
        """Logits, or (logits, the mean sparsity measure of the hidden activations) with_sparsity."""
        measures = [] if with_sparsity else None
        out = self._dense_forward(x.reshape(x.shape[0], -1), measures)
        return (out, torch.stack(measures).mean()) if with_sparsity else out


class CNNMNIST(_BitModel):
    """conv1 (1->C) -> ReLU -> dwconv2 -> ReLU -> pool -> dwconv3 -> ReLU -> pool -> flatten 4C
    -> fc1 -> ReLU -> fc2 -> ReLU -> [fc3 -> ReLU] -> fcl. 16 -> 14 -> 12 -> 6 -> 4 -> 2."""

    def __init__(self, cfg, num_classes=10):
        super().__init__()
        c = cfg["cnn_width"]
        per_output = cfg["WScale"] == "PerOutput"
        self.conv1 = BitConv2d(1, c, 1, layer_scheme(cfg, "conv1"), per_output)
        self.conv2 = BitConv2d(c, c, c, layer_scheme(cfg, "conv2"), per_output)
        self.conv3 = BitConv2d(c, c, c, layer_scheme(cfg, "conv3"), per_output)
        self.dense_names = _dense_stack(self, cfg, 4 * c, num_classes)
        self.layer_names = layer_names(cfg)

    def forward(self, x, with_sparsity=False):
        """Logits, or (logits, the mean sparsity measure of the pooled features and the hidden
        activations) with_sparsity."""
        x = x.reshape(x.shape[0], 1, 16, 16)
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        x = x.flatten(1)
        measures = [activation_sparsity_measure(x)] if with_sparsity else None
        out = self._dense_forward(x, measures)
        return (out, torch.stack(measures).mean()) if with_sparsity else out


def build_model(cfg):
    return (CNNMNIST if cfg["model"] == "CNNMNIST" else FCMNIST)(cfg)


def model_entries(model):
    """Checkpoint entries of a model: model/<param or buffer> and clip/<layer>."""
    entries = {}
    for key, value in model.state_dict().items():
        if not key.endswith(".clip"):
            entries["model/" + key] = value.detach().cpu()
    for name, layer in model.quant_layers():
        if layer.scheme is not None:
            entries["clip/" + name] = layer.current_clip().detach().cpu().float()
    return entries


def load_model_entries(model, entries, source="checkpoint"):
    """Loads model/... and clip/... entries (numpy arrays) into a model built from the same config."""
    state = model.state_dict()
    missing = []
    for key, target in state.items():
        name = "clip/" + key[:-len(".clip")] if key.endswith(".clip") else "model/" + key
        if name not in entries:
            if key.endswith(".clip"):  # float layers (QuantType None) may have no clip entry
                continue
            missing.append(name)
            continue
        value = torch.as_tensor(entries[name])
        if value.numel() != target.numel():
            raise ValueError(f"{source}: entry {name} has shape {tuple(value.shape)}, "
                             f"the model expects {tuple(target.shape)}")
        state[key] = value.reshape(target.shape).to(target.dtype)
    if missing:
        raise ValueError(f"{source}: missing entries {', '.join(missing)}")
    model.load_state_dict(state)
    return model


def model_from_checkpoint(path):
    """(config dict, model in eval mode, entries) of a checkpoint file."""
    from .checkpoint import read_checkpoint
    from .config import config_from_yaml_text

    entries = read_checkpoint(path)
    if "config" not in entries:
        raise ValueError(f"checkpoint {path}: no 'config' entry")
    cfg = config_from_yaml_text(entries["config"], f"checkpoint {path} (config)")
    model = load_model_entries(build_model(cfg), entries, f"checkpoint {path}")
    return cfg, model.eval(), entries
