"""SPEC §5-§6 written out again in plain numpy, independently of the engine headers: integer
weights from codes, dense layers, ShiftNorm + ReLU, the CNN block, argmax. The tests compare the
module (the engine's run_layers) against this."""
import numpy as np

NF4_LEVELS = [-1.0, -0.6962, -0.5251, -0.3949, -0.2844, -0.1848, -0.0911, 0.0,
              0.0796, 0.1609, 0.2461, 0.3379, 0.4407, 0.5626, 0.723, 1.0]


def integer_weights(scheme, codes):
    """The integer each code stands for at inference (SPEC §4 table, §5 code layout)."""
    c = np.asarray(codes, dtype=np.int64)
    if scheme == "Binary":
        return np.where(c == 1, 1, -1)
    if scheme == "Ternary":
        return np.select([c == 0, c == 1], [1, -1], 0)
    if scheme in ("2bitsym", "4bitsym"):
        sign_bit = 2 if scheme == "2bitsym" else 8
        odd = 2 * (c & (sign_bit - 1)) + 1
        return np.where(c & sign_bit, -odd, odd)
    if scheme == "4bit":
        return np.where(c >= 8, c - 16, c)
    if scheme == "8bit":
        return np.where(c >= 128, c - 256, c)
    if scheme == "FP130":
        return np.where(c & 8, -1, 1) * (1 << (c & 7))
    if scheme == "NF4":
        return np.round(np.array(NF4_LEVELS) * 256).astype(np.int64)[c]
    raise ValueError(scheme)


def shiftnorm_relu(acc):
    """acc [N, n] int64 -> int8-range activations (SPEC §6)."""
    m = np.maximum(acc.max(axis=1, keepdims=True), 0)
    shift = np.array([[int(v).bit_length() for v in (m[:, 0] >> 7)]]).T
    rounded = (acc + ((1 << shift) >> 1)) >> shift
    return np.where(acc < 0, 0, np.minimum(127, rounded))


def conv3x3_relu_shift(planes, kernels, shift):
    """planes [N, h, w], kernels [3, 3] -> max(0, valid conv) >> shift."""
    n, h, w = planes.shape
    out = np.zeros((n, h - 2, w - 2), dtype=np.int64)
    for ky in range(3):
        for kx in range(3):
            out += int(kernels[ky, kx]) * planes[:, ky:ky + h - 2, kx:kx + w - 2]
    return np.maximum(out, 0) >> shift


def maxpool2x2(planes):
    n, h, w = planes.shape
    p = planes[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2)
    return p.max(axis=(2, 4))


def cnn_block(images, weights, shift):
    """images [N, 256] int8, weights int8 [3, C, 3, 3] -> [N, C*2*2] (channel-major)."""
    x = images.astype(np.int64).reshape(-1, 16, 16)
    outs = []
    for c in range(weights.shape[1]):
        p = conv3x3_relu_shift(x, weights[0, c], shift)
        p = maxpool2x2(conv3x3_relu_shift(p, weights[1, c], shift))
        p = maxpool2x2(conv3x3_relu_shift(p, weights[2, c], shift))
        outs.append(p.reshape(len(x), -1))
    return np.concatenate(outs, axis=1)


def run_model(layers, images):
    """layers: the dicts given to bitnetmcu.model_file_from_codes. Returns (classes, logits)."""
    x = images.astype(np.int64)
    for i, layer in enumerate(layers):
        if "cnn" in layer:
            acc = cnn_block(x, layer["cnn"], layer.get("shift", 4))
        else:
            acc = x @ integer_weights(layer["scheme"], layer["codes"]).T
        assert np.abs(acc).max(initial=0) < 2 ** 31
        if i + 1 < len(layers):
            x = shiftnorm_relu(acc)
    return acc.argmax(axis=1), acc
