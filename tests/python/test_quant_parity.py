"""The PyTorch QAT quantizers (bitnetmcu_torch.quant) against the engine's traits through the
module: identical codes for every scheme on identical random tensors, boundaries included."""
import numpy as np
import pytest
import torch

import bitnetmcu
import spec_reference
from bitnetmcu_torch import config, quant

ALL = list(quant.SCHEMES)


def engine_values(scheme, v):
    """value(encode(v)) through the module's separate encode and value calls."""
    s = bitnetmcu.schemes[scheme]
    return torch.from_numpy(s.value(s.encode(v.detach().numpy())))


def boundary_values():
    """Half-integers, powers of two, NF4 midpoints and their float32 neighbours, both signs."""
    nf4 = np.array(spec_reference.NF4_LEVELS, dtype=np.float32)
    base = np.concatenate([np.arange(-260, 260, 0.5), 2.0 ** np.arange(-3, 9),
                           (nf4[:-1] + nf4[1:]) * np.float32(0.5), [0.0, 1e-30]]).astype(np.float32)
    base = np.concatenate([base, -base])
    return np.concatenate([base, np.nextafter(base, np.float32(np.inf)), np.nextafter(base, np.float32(-np.inf))])


def test_scheme_names_agree():
    """The schemes quant.py knows (the module's), and the QuantType choices of the trainer's
    config schema (config_schema.json), are the same names in the same order."""
    assert list(quant.SCHEMES) == list(bitnetmcu.schemes) == config.SCHEME_NAMES
    assert config.KEYS["QuantType"][2] == config.SCHEME_NAMES + ["None"]


def test_quantize_is_value_of_encode():
    """Scheme.quantize (one pass, what quant.py uses) against encode then value, and against
    the SPEC's levels written out independently (spec_reference)."""
    v = np.concatenate([boundary_values(), np.random.default_rng(3).normal(0, 4, 5000).astype(np.float32)])
    for name in ALL:
        s = bitnetmcu.schemes[name]
        assert np.array_equal(s.quantize(v), s.value(s.encode(v))), name
    assert np.array_equal(bitnetmcu.schemes["4bitsym"].quantize(np.float32([0.49, 0.51, -9.0, 7.6])),
                          np.float32([0.5, 0.5, -7.5, 7.5]))
    nf4 = np.float32(spec_reference.NF4_LEVELS)
    assert np.array_equal(bitnetmcu.schemes["NF4"].quantize(nf4), nf4)


def test_special_values_equal_engine():
    """NaN, infinities, signed zeros and the extremes go where the engine's encode puts them."""
    v = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 3.4e38, -3.4e38, 1e-45, -1e-45])
    for scheme in ALL:
        assert torch.equal(quant.quantized_value(v, scheme), engine_values(scheme, v)), scheme


@pytest.mark.parametrize("scheme", ALL)
def test_quantized_value_equals_engine_on_boundaries(scheme):
    v = torch.from_numpy(boundary_values())
    assert torch.equal(quant.quantized_value(v, scheme), engine_values(scheme, v))


@pytest.mark.parametrize("scheme", ALL)
@pytest.mark.parametrize("per_output", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layer_codes_equal_engine_codes(scheme, per_output, seed):
    """Random weights and octav clips, scaled as training scales them: the codes training uses
    are the codes the engine's encode gives for the same scaled tensor."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(48, 100, generator=g) * 0.05 * (seed + 1)
    w[0, :8] = 0.0  # exact zeros (FP130 has no zero code)
    if quant.SCHEMES[scheme]["rule"] == "clip":
        clip = quant.octav_clip(w, quant.SCHEMES[scheme]["bpw"], per_output)
    else:
        clip = quant.statistic_clip(w, scheme, per_output)
    v, _ = quant.weight_scale(w, scheme, clip)
    assert v.dtype == torch.float32 and v.shape == w.shape
    assert torch.equal(quant.quantized_value(v, scheme), engine_values(scheme, v))
    # the forward weights are those values / k, with k per row when per_output
    wq = quant.quantize_weight(w, scheme, clip)
    assert wq.shape == w.shape
    assert len(torch.unique(wq)) <= bitnetmcu.schemes[scheme].num_codes * (48 if per_output else 1)


def test_octav_fixed_point_and_objective():
    """OCTAV's iteration converges to s = sum_{|w|>s}|w| / (4^-b/3 #{|w|<=s} + #{|w|>s}), which
    is near the minimum of 4^-b/3 s^2 #{|w|<=s} + sum_{|w|>s}(|w|-s)^2 (it ignores the jumps of
    the count term, so not exactly at it: 0.3 % above for 2 bits, less for more bits). The 10
    steps of one epoch get within 1 % for 2 and 4 bits."""
    w = torch.randn(20000, generator=torch.Generator().manual_seed(3)).reshape(100, 200)
    a = w.abs().double().reshape(-1)
    for bpw in (2.0, 4.0, 8.0):
        s = float(quant.octav_clip(w, bpw, per_output=False, iterations=200)[0])
        above = a > s
        step = float((a * above).sum() / (4.0 ** -bpw / 3 * (~above).sum() + above.sum()))
        assert step == pytest.approx(s, rel=1e-6)
        s10 = float(quant.octav_clip(w, bpw, per_output=False)[0])

        def mse(t):
            return float(4.0 ** -bpw / 3 * t * t * (a <= t).sum() + ((a - t).clamp(min=0) ** 2).sum())

        grid = np.linspace(0.05, float(a.max()), 2000)
        best = min(mse(t) for t in grid)
        assert mse(s) <= best * 1.005, (bpw, s)
        if bpw <= 4:  # 8 bits converges more slowly: later epochs continue from the previous s
            assert mse(s10) <= best * 1.01, (bpw, s10)


def torch_quantize_input(images):
    """SPEC §2 int8 input quantization written in torch, independently of the module."""
    x = images.reshape(images.shape[0], -1).float()
    m = x.abs().amax(dim=1, keepdim=True).clamp(min=1e-5)
    s = torch.full_like(m, 127.0).div_(m)  # a true division, as the module and exporter do
    return torch.round(x * s).clamp(-128, 127).to(torch.int8)


def test_input_quantization_torch_equals_module(rng):
    x = rng.normal(size=(500, 256)).astype(np.float32)
    x[0] = 0.0  # guard of max|x|
    x[1, :] = 0.5
    x[1, 0] = 127.0  # exact halves after scaling
    ours = bitnetmcu.quantize_input(x)
    assert ours.dtype == np.int8
    np.testing.assert_array_equal(ours, torch_quantize_input(torch.from_numpy(x)).numpy())
    # the training-time activation quantizer is the same rounding, dequantized
    deq = quant.quantize_activations(torch.from_numpy(x)).numpy()
    scale = np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-5) / 127
    np.testing.assert_allclose(deq, ours * scale, rtol=1e-6, atol=1e-7)
