"""QAT quantizers of SPEC §4 in torch: weight schemes, activations, straight-through estimator,
octav/prop clipping. The scaled values and codes must be exactly the engine's (schemes.hpp):
tests/python/test_quant_parity.py checks every scheme against the bitnetmcu module's encode."""

import torch

import bitnetmcu

# Per scheme, from the engine's traits (schemes.hpp through the bitnetmcu module): bits per
# weight (octav), how w is scaled before rounding, and the numerator of k = numerator / s for
# the "clip" rule. The rounding itself is the engine's encode() (quantized_value).
SCHEMES = {
    name: dict(bpw=float(s.bits_per_weight), rule=s.scale_rule, numerator=float(s.clip_numerator))
    for name, s in bitnetmcu.schemes.items()
}


def _row_view(t, per_output):
    """[rows, -1] view for per-output statistics, or [1, -1] for per-tensor."""
    return t.reshape(t.shape[0], -1) if per_output else t.reshape(1, -1)


def _broadcast(stat, w):
    """A per-row (or per-tensor) statistic of shape [rows] shaped to broadcast against w."""
    return stat.reshape(-1, *([1] * (w.dim() - 1))) if stat.numel() > 1 else stat.reshape(())


def statistic_clip(w, scheme, per_output):
    """The clip of Binary (mean w) and Ternary (mean|w|), per tensor [1] or per output row [out]:
    computed from the weights, as the C++ trainer does (training/qat.cpp)."""
    rows = _row_view(w.detach(), per_output)
    if SCHEMES[scheme]["rule"] == "mean_centered":
        return rows.mean(dim=1)
    return rows.abs().mean(dim=1).clamp(min=1e-8)


def _divide(numerator, t):
    """numerator / t as a true float32 division. (Python's `scalar / tensor` multiplies by the
    reciprocal, which differs in the last bit from the C++ trainer's division and flips codes.)"""
    return torch.full_like(t, numerator).div_(t)


def weight_scale(w, scheme, clip):
    """(v, k): the scaled weights v that the engine's encode() rounds, and k with w_q = value / k.
    clip ([1] or [out]) means, by the scheme's rule (as in training/qat.hpp):
      clip          s from octav/prop:  k = numerator / s, v = w * k
      inv_mean_abs  mean|w| (Ternary):  k = 1 / clip,      v = w * k
      mean_centered mean(w) (Binary):   v = w - clip, w_q = sign(v) * mean|w| (k = 1 / mean|w|)"""
    c = _broadcast(clip.to(w.dtype), w)
    if SCHEMES[scheme]["rule"] == "mean_centered":
        magnitude = _broadcast(_row_view(w.detach(), clip.numel() > 1).abs().mean(dim=1), w)
        return w - c, _divide(1.0, magnitude)
    k = _divide(SCHEMES[scheme]["numerator"], c)
    return w * k, k


def quantized_value(v, scheme):
    """value(encode(v)) of the engine, as a float tensor, for scaled weights v (SPEC §4 table):
    the engine's own traits through the module (no gradient; training routes it with ste)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown weight scheme '{scheme}'; valid: {', '.join(SCHEMES)}")
    x = v.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
    return torch.from_numpy(bitnetmcu.schemes[scheme].quantize(x)).to(device=v.device, dtype=v.dtype)


def quantize_weight(w, scheme, clip):
    """w_q of SPEC §4 (same shape as w); None scheme = float."""
    if scheme is None:
        return w
    v, k = weight_scale(w, scheme, clip)
    if SCHEMES[scheme]["rule"] == "mean_centered":
        magnitude = _broadcast(_row_view(w.detach(), clip.numel() > 1).abs().mean(dim=1), w)
        return quantized_value(v, scheme) * magnitude  # sign(w - mean) * mean|w|
    return quantized_value(v, scheme) / k


def ste(x, x_q):
    """Straight-through estimator: forward x_q, gradient of the identity."""
    return x + (x_q - x).detach()


def quantize_activations(x):
    """Symmetric 8-bit per sample (dim 0; a conv sample's C, H, W are one row):
    clamp(round(x*127/max|x|), -128, 127) * max|x|/127."""
    scale = _divide(127.0, x.detach().abs().flatten(1).amax(dim=1).clamp(min=1e-5)).reshape(-1, *([1] * (x.dim() - 1)))
    return torch.round(x * scale).clamp(-128, 127) / scale


@torch.no_grad()
def octav_clip(w, bpw, per_output, start=None, iterations=10):
    """Optimal clipping scalar (Sakr et al. 2022): iterate
    s = sum_{|w|>s} |w| / (4^-bpw / 3 * #{|w|<=s} + #{|w|>s}), from `start` or 0.25 * mean|w|;
    a row with no |w| above s restarts from mean|w|. Returns [rows] (per output) or [1]."""
    a = _row_view(w.detach().abs().double(), per_output)
    if start is not None and start.numel() == a.shape[0]:
        s = start.detach().double().reshape(-1, 1)
    else:
        s = 0.25 * a.mean(dim=1, keepdim=True)
    noise = 4.0 ** (-bpw) / 3.0
    n = a.shape[1]
    for _ in range(iterations):
        above = a > s
        count_above = above.sum(dim=1, keepdim=True).double()
        s = (a * above).sum(dim=1, keepdim=True) / (noise * (n - count_above) + count_above)
        s = torch.where(count_above > 0, s, a.mean(dim=1, keepdim=True))
    return s.clamp(min=1e-8).reshape(-1).float()


@torch.no_grad()
def prop_clip(w, quantscale, per_output):
    """s = mean|w| / quantscale (per tensor) or max_row|w| / quantscale (per output)."""
    a = w.detach().abs()
    s = _row_view(a, True).amax(dim=1) if per_output else a.mean().reshape(1)
    return (s / quantscale).clamp(min=1e-8).float()


def update_clip(w, scheme, clip, algo, quantscale, per_output):
    """The clipping scalar s of a "clip"-rule scheme for the next epoch ([1] or [out]); `clip`
    is the current one (all zero before the first update)."""
    if algo == "octav":
        started = clip.numel() > 0 and bool((clip > 0).all())
        return octav_clip(w, SCHEMES[scheme]["bpw"], per_output, clip if started else None)
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


__all__ = ["SCHEMES", "statistic_clip", "weight_scale", "quantized_value", "quantize_weight", "ste", "quantize_activations",
           "octav_clip", "prop_clip", "update_clip", "scheme_bits", "entropy_bits"]
