"""Regression tests for what a bad-input probe found in the Python module (issue 13): each
failed before its fix. Model files: a CNN without outputs, and a row sum edited behind a valid
checksum; inputs: NaN/inf to quantize_input, std=0 to preprocess."""
import struct
import zlib

import numpy as np
import pytest

import bitnetmcu


def reseal(data):
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(bytes(data[:-4])))
    return bytes(data)


def test_cnn_without_outputs_is_rejected():
    cnn = {"cnn": np.ones((3, 2, 3, 3), np.int8), "shift": 8}
    good = bitnetmcu.model_file_from_codes([dict(cnn, side=12)])
    assert bitnetmcu.Model.from_bytes(good).num_classes == 2
    for side in (8, 9, 10, 11):
        with pytest.raises(ValueError, match="model_file_from_codes: layer without outputs"):
            bitnetmcu.model_file_from_codes([dict(cnn, side=side)])
        # the same file edited by hand: header input_size and num_classes, layer n_in (side)
        for classes, message in ((0, "<bytes>: layer without outputs"), (2, "<bytes>: layer 0: layer without outputs")):
            data = bytearray(good)
            struct.pack_into("<II", data, 16, side * side, classes)
            struct.pack_into("<I", data, 24 + 4, side)
            with pytest.raises(ValueError, match=message):
                bitnetmcu.Model.from_bytes(reseal(data))


def test_edited_row_sum_behind_a_valid_checksum_is_rejected(tmp_path):
    codes = np.random.default_rng(1).integers(0, 16, size=(10, 256)).astype(np.uint8)
    data = bytearray(bitnetmcu.model_file_from_codes([{"scheme": "4bitsym", "codes": codes, "rowsum": True}]))
    # layer header at 24 (16 bytes), weights, then 10 int32 row sums, then the CRC
    rowsum_at = len(data) - 4 - 40
    struct.pack_into("<i", data, rowsum_at, 0x7FFFFF00)  # x[0] * rowsum overflows int32
    path = tmp_path / "edited.bnm"
    path.write_bytes(reseal(data))
    with pytest.raises(ValueError, match="edited.bnm: layer 0: row sums differ"):
        bitnetmcu.load_model(str(path))


def test_quantize_input_rejects_nan_and_inf():
    x = np.random.default_rng(2).normal(size=(3, 256)).astype(np.float32)
    x[1, 17] = np.nan
    with pytest.raises(ValueError, match=r"image 1, index 17 is nan; expected finite"):
        bitnetmcu.quantize_input(x)
    x[1, 17] = 0
    x[2, 5] = -np.inf
    with pytest.raises(ValueError, match=r"image 2, index 5 is -inf"):
        bitnetmcu.quantize_input(x)
    with pytest.raises(ValueError, match=r"quantize_input: index 5 is -inf"):
        bitnetmcu.quantize_input(x[2])


def test_preprocess_rejects_a_zero_or_non_finite_std():
    images = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(ValueError, match=r"preprocess: mean 0.1307.*std 0.0; expected finite values and std != 0"):
        bitnetmcu.preprocess(images, std=0.0)
    with pytest.raises(ValueError, match=r"mean nan"):
        bitnetmcu.preprocess(images, mean=float("nan"))
    with pytest.raises(ValueError, match=r"image 0, index 0 is -inf.*std too small"):
        bitnetmcu.preprocess(images, std=1e-44)
    assert np.isfinite(bitnetmcu.preprocess(images)).all()
