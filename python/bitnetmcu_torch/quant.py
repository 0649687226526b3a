"""QAT quantizers of SPEC §4 in torch: weight schemes, activations, straight-through estimator,
octav/prop clipping. The scaled values and codes must be exactly the engine's (schemes.hpp):
tests/python/test_quant_parity.py checks every scheme against the bitnetmcu module's encode."""

import torch

# Per scheme: bits per weight (octav), how w is scaled before rounding, and the numerator of
# k = numerator / s for the "clip" rule -- the constants of schemes.hpp (checked by the tests).
SCHEMES = {
    "Binary": dict(bpw=1.0, rule="mean_centered", numerator=1.0),
    "Ternary": dict(bpw=1.6, rule="inv_mean_abs", numerator=1.0),
    "2bitsym": dict(bpw=2.0, rule="clip", numerator=2.0),
    "4bitsym": dict(bpw=4.0, rule="clip", numerator=8.0),
    "4bit": dict(bpw=4.0, rule="clip", numerator=8.0),
    "8bit": dict(bpw=8.0, rule="clip", numerator=128.0),
    "FP130": dict(bpw=4.0, rule="clip", numerator=128.0),
    "NF4": dict(bpw=4.0, rule="clip", numerator=1.0),
}

NF4_LEVELS = torch.tensor([-1.0, -0.6962, -0.5251, -0.3949, -0.2844, -0.1848, -0.0911, 0.0,
                           0.0796, 0.1609, 0.2461, 0.3379, 0.4407, 0.5626, 0.723, 1.0], dtype=torch.float32)
# Decision thresholds computed in float32 like the engine's 0.5f * (l[c] + l[c+1]).
NF4_MIDPOINTS = (NF4_LEVELS[:-1] + NF4_LEVELS[1:]) * 0.5


def _row_view(t, per_output):
    """[rows, -1] view for per-output statistics, or [1, -1] for per-tensor."""
    return t.reshape(t.shape[0], -1) if per_output else t.reshape(1, -1)


def _broadcast(stat, w):
    """A per-row (or per-tensor) statistic of shape [rows] shaped to broadcast against w."""
    return stat.reshape(-1, *([1] * (w.dim() - 1))) if stat.numel() > 1 else stat.reshape(())


def weight_scale(w, scheme, clip):
    """(v, k): the scaled weights v that encode() rounds, and k with w_q = value / k.
    clip: tensor [1] or [out] (the layer's clipping scalar s), used by the "clip" rule."""
    spec = SCHEMES[scheme]
    if spec["rule"] == "mean_centered":  # Binary: sign(w - mean w); magnitude mean|w| (reference)
        k = 1.0 / w.abs().mean().clamp(min=1e-5)
        return w - w.mean(), k
    if spec["rule"] == "inv_mean_abs":  # Ternary
        k = 1.0 / w.abs().mean().clamp(min=1e-5)
        return w * k, k
    k = spec["numerator"] / _broadcast(clip.to(w.dtype), w)
    return w * k, k


def quantized_value(v, scheme):
    """value(encode(v)) of the engine, as a float tensor, for scaled weights v (SPEC §4 table)."""
    if scheme == "Binary":
        return torch.where(v >= 0, 1.0, -1.0).to(v.dtype)
    if scheme == "Ternary":
        return torch.round(v).clamp(-1, 1)
    if scheme == "2bitsym":
        return torch.round(v - 0.5).clamp(-2, 1) + 0.5
    if scheme == "4bitsym":
        return torch.round(v - 0.5).clamp(-8, 7) + 0.5
    if scheme == "4bit":
        return torch.round(v).clamp(-8, 7)
    if scheme == "8bit":
        return torch.round(v).clamp(-128, 127)
    if scheme == "FP130":
        # floor(log2|v|) exactly, from the float exponent; no zero code: v == 0 counts as +1.
        _, exponent = torch.frexp(v.abs())
        e = (exponent - 1).clamp(0, 7).to(v.dtype)
        return torch.where(v < 0, -1.0, 1.0).to(v.dtype) * torch.exp2(e)
    if scheme == "NF4":
        index = torch.bucketize(v, NF4_MIDPOINTS.to(v.device), right=True)  # midpoint goes up
        return NF4_LEVELS.to(v.device)[index]
    raise ValueError(f"unknown weight scheme '{scheme}'; valid: {', '.join(SCHEMES)}")


def quantize_weight(w, scheme, clip):
    """w_q of SPEC §4 (same shape as w); None scheme = float."""
    if scheme is None:
        return w
    v, k = weight_scale(w, scheme, clip)
    return quantized_value(v, scheme) / k


def ste(x, x_q):
    """Straight-through estimator: forward x_q, gradient of the identity."""
    return x + (x_q - x).detach()


def quantize_activations(x):
    """Symmetric 8-bit per row (last dim): clamp(round(x*127/max|x|), -128, 127) * max|x|/127."""
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return torch.round(x * scale).clamp(-128, 127) / scale


@torch.no_grad()
def octav_clip(w, bpw, per_output, start=None, iterations=10):
    """Optimal clipping scalar (Sakr et al. 2022): iterate
    s = sum_{|w|>s} |w| / (4^-bpw / 3 * #{|w|<=s} + #{|w|>s}), from `start` or 0.25 * mean|w|.
    Returns [rows] (per output) or [1]."""
    a = _row_view(w.detach().abs().double(), per_output)
    s = start.detach().double().reshape(-1).expand(a.shape[0]).clone() if start is not None \
        else 0.25 * a.mean(dim=1)
    noise = 4.0 ** (-bpw) / 3.0
    for _ in range(iterations):
        above = a > s[:, None]
        count_above = above.sum(dim=1).double()
        denominator = noise * (a.shape[1] - count_above) + count_above
        numerator = (a * above).sum(dim=1)
        ok = numerator > 0
        s = torch.where(ok, numerator / denominator.clamp(min=1e-30), s)
    return s.float()


@torch.no_grad()
def prop_clip(w, quantscale, per_output):
    """s = mean|w| / quantscale (per tensor) or max_row|w| / quantscale (per output)."""
    a = w.detach().abs()
    if per_output:
        return (_row_view(a, True).amax(dim=1) / quantscale).clamp(min=1e-8)
    return (a.mean() / quantscale).clamp(min=1e-8).reshape(1)


def update_clip(w, scheme, clip, algo, quantscale, per_output):
    """The clipping scalar for the next epoch (shape [1] or [out]); `clip` is the current one."""
    if algo == "octav":
        start = clip if clip.numel() == (w.shape[0] if per_output else 1) and bool((clip > 0).all()) else None
        return octav_clip(w, SCHEMES[scheme]["bpw"], per_output, start)
    if algo == "prop":
        return prop_clip(w, quantscale, per_output)
    raise ValueError(f"unknown maxw_algo '{algo}' (expected octav or prop)")


def scheme_bits(scheme):
    return SCHEMES[scheme]["bpw"] if scheme else 32.0


def entropy_bits(values):
    """Shannon entropy (bits/weight) of the distribution of quantized values."""
    _, counts = torch.unique(values, return_counts=True)
    p = counts.double() / counts.sum()
    return float(-(p * torch.log2(p)).sum()) if p.numel() else 0.0


__all__ = ["SCHEMES", "weight_scale", "quantized_value", "quantize_weight", "ste", "quantize_activations",
           "octav_clip", "prop_clip", "update_clip", "scheme_bits", "entropy_bits"]
