"""QAT layers of SPEC §3-§4: BitLinear (norm -> 8-bit activations -> quantized linear) and
BitConv2d (quantized 3x3 conv, no norm), with straight-through estimators. No biases.
Each layer keeps its clipping scalar in the buffer `clip` ([1] per tensor, [out] per output)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import quant


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + 1e-6) over the feature dim (dims H, W for 4-d inputs)."""

    def forward(self, x):
        dims = (-2, -1) if x.dim() == 4 else (-1,)
        return x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + 1e-6)


class LinNorm(nn.Module):
    """x / (mean|x| + 1e-6) over the feature dim."""

    def forward(self, x):
        dims = (-2, -1) if x.dim() == 4 else (-1,)
        return x / (x.abs().mean(dim=dims, keepdim=True) + 1e-6)


def make_norm(norm_type, features):
    """Parameter-free where the engine has nothing to hold parameters (ShiftNorm replaces them)."""
    if norm_type == "RMS":
        return RMSNorm()
    if norm_type == "Lin":
        return LinNorm()
    if norm_type == "BatchNorm":
        return nn.BatchNorm1d(features, affine=False)
    if norm_type == "LayerNorm":
        return nn.LayerNorm(features, elementwise_affine=False)
    if norm_type == "None":
        return nn.Identity()
    raise ValueError(f"unknown NormType '{norm_type}' (expected RMS, Lin, BatchNorm, LayerNorm, None)")


class _QuantizedWeight(nn.Module):
    """Weight, scheme and clipping scalar shared by BitLinear and BitConv2d. The buffer `clip`
    holds s for "clip"-rule schemes (zero until the first octav/prop update); Binary and
    Ternary compute theirs from the weights (quant.statistic_clip), as the C++ trainer does."""

    def _init_quant(self, out_features, scheme, per_output):
        if scheme is not None and scheme not in quant.SCHEMES:
            raise ValueError(f"unknown weight scheme '{scheme}'; valid: {', '.join(quant.SCHEMES)} or None")
        self.scheme = scheme
        self.per_output = per_output
        self.register_buffer("clip", torch.zeros(out_features if per_output else 1))

    def current_clip(self):
        """The clip that, with the current weights, gives the codes (stored as clip/<layer>)."""
        if self.scheme is None or quant.SCHEMES[self.scheme]["rule"] == "clip":
            return self.clip
        return quant.statistic_clip(self.weight, self.scheme, self.per_output)

    def quantized_weight(self):
        return quant.quantize_weight(self.weight.detach(), self.scheme, self.current_clip())

    def scaled_weight(self):
        """v = the scaled weights whose engine codes are this layer's codes."""
        return quant.weight_scale(self.weight.detach(), self.scheme, self.current_clip())[0]

    def ste_weight(self):
        return self.weight if self.scheme is None else quant.ste(self.weight, self.quantized_weight())

    @torch.no_grad()
    def update_clip(self, algo, quantscale):
        if self.scheme is not None and quant.SCHEMES[self.scheme]["rule"] == "clip":
            self.clip.copy_(quant.update_clip(self.weight, self.scheme, self.clip, algo, quantscale, self.per_output))


class BitLinear(_QuantizedWeight):
    def __init__(self, in_features, out_features, scheme="4bitsym", norm="RMS", per_output=False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's default
        self.norm = make_norm(norm, in_features)
        self._init_quant(out_features, scheme, per_output)

    def forward(self, x):
        x = self.norm(x)
        if self.scheme is None:
            return F.linear(x, self.weight)
        return F.linear(quant.ste(x, quant.quantize_activations(x)), self.ste_weight())

    def extra_repr(self):
        return f"{self.in_features} -> {self.out_features}, scheme={self.scheme}, per_output={self.per_output}"


class BitConv2d(_QuantizedWeight):
    """8-bit activations (per sample) -> 3x3 valid convolution with quantized weights, no norm."""

    def __init__(self, in_channels, out_channels, groups=1, scheme="8bit", per_output=False):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default
        self._init_quant(out_channels, scheme, per_output)

    def forward(self, x):
        if self.scheme is not None:
            x = quant.ste(x, quant.quantize_activations(x))
        return F.conv2d(x, self.ste_weight(), groups=self.groups)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, groups={self.groups}, scheme={self.scheme}"
