"""bitnetmcu.Model / predict / logits (the engine's run_layers) against the SPEC §6 numpy twin
in spec_reference.py, on random models of every scheme; loading errors; input helpers."""
import numpy as np
import pytest

import bitnetmcu
import spec_reference

ALL = list(bitnetmcu.schemes)


def random_dense(rng, scheme, n_out, n_in, rowsum=False):
    codes = rng.integers(0, bitnetmcu.schemes[scheme].num_codes, size=(n_out, n_in)).astype(np.uint8)
    return {"scheme": scheme, "codes": codes, "rowsum": rowsum}


def random_images(rng, n, background=True):
    """int8 images; with `background`, mostly one value like quantized MNIST (rowsum path)."""
    x = rng.integers(-128, 128, size=(n, 256)).astype(np.int8)
    if background:
        mask = rng.random((n, 256)) < 0.7
        x[mask] = -55
        x[:, 0] = -55
    return x


def check_against_reference(layers, images):
    model = bitnetmcu.Model.from_bytes(bitnetmcu.model_file_from_codes(layers))
    ref_classes, ref_logits = spec_reference.run_model(layers, images)
    np.testing.assert_array_equal(bitnetmcu.logits(model, images), ref_logits)
    np.testing.assert_array_equal(bitnetmcu.predict(model, images), ref_classes)
    return model


@pytest.mark.parametrize("scheme", ALL)
@pytest.mark.parametrize("rowsum", [False, True])
def test_dense_model_equals_spec(scheme, rowsum, rng):
    # odd widths exercise partial words and the padding of every packing family
    layers = [random_dense(rng, scheme, 37, 256, rowsum), random_dense(rng, scheme, 21, 37),
              random_dense(rng, scheme, 10, 21)]
    check_against_reference(layers, random_images(rng, 300, background=rowsum))


def test_mixed_schemes_and_cnn_equal_spec(rng):
    c = 6
    cnn = {"cnn": rng.integers(-40, 41, size=(3, c, 3, 3)).astype(np.int8), "shift": 4}
    layers = [cnn, random_dense(rng, "2bitsym", 24, 4 * c), random_dense(rng, "Ternary", 16, 24),
              random_dense(rng, "FP130", 10, 16)]
    model = check_against_reference(layers, random_images(rng, 200))
    assert model.layers[0]["kind"] == "cnn" and model.layers[0]["n_out"] == c
    np.testing.assert_array_equal(model.layer_weights(0), cnn["cnn"])


def test_model_introspection(rng):
    layers = [random_dense(rng, "4bitsym", 64, 256, True), random_dense(rng, "NF4", 10, 64)]
    model = bitnetmcu.Model.from_bytes(bitnetmcu.model_file_from_codes(layers), "twolayer")
    assert (model.input_size, model.num_classes, model.source) == (256, 10, "twolayer")
    assert [l["scheme"] for l in model.layers] == ["4bitsym", "NF4"]
    np.testing.assert_array_equal(model.layer_weights(0), layers[0]["codes"])
    np.testing.assert_array_equal(model.layer_weights(1), layers[1]["codes"])
    rowsum = spec_reference.integer_weights("4bitsym", layers[0]["codes"]).sum(axis=1)
    np.testing.assert_array_equal(model.layer_rowsum(0), rowsum)
    assert model.layer_rowsum(1) is None
    # 4bitsym 256->64: 256 columns x 8 words + 64 rowsums; NF4 64->10: 64 columns x 1 word + a
    # tail stream of 64 * 2 codes = 16 words (layout.hpp)
    assert model.weight_bytes == 256 * 8 * 4 + 64 * 4 + (64 + 16) * 4
    assert "4bitsym(256->64)" in repr(model)


def test_batch_forms_and_threads_agree(rng):
    layers = [random_dense(rng, "4bit", 32, 256), random_dense(rng, "8bit", 10, 32)]
    model = bitnetmcu.Model.from_bytes(bitnetmcu.model_file_from_codes(layers))
    x = random_images(rng, 1000)
    ref = bitnetmcu.predict(model, x, threads=1)
    np.testing.assert_array_equal(bitnetmcu.predict(model, x, threads=4), ref)
    np.testing.assert_array_equal(model.predict(x), ref)
    assert model.predict(x[3]) == ref[3] and isinstance(model.predict(x[3]), int)
    np.testing.assert_array_equal(model.logits(x[3]), bitnetmcu.logits(model, x[3:4])[0])
    np.testing.assert_array_equal(bitnetmcu.predict(model, x[:, ::-1][:, ::-1]), ref)  # non-contiguous view
    assert bitnetmcu.predict(model, x[:0]).shape == (0,)


def test_numpy_style_errors(rng, tmp_path):
    model = bitnetmcu.Model.from_bytes(bitnetmcu.model_file_from_codes([random_dense(rng, "8bit", 10, 256)]))
    with pytest.raises(TypeError, match=r"int8 array of shape \(N, 256\).*float64"):
        bitnetmcu.predict(model, np.zeros((2, 256)))
    with pytest.raises(ValueError, match=r"\(N, 256\).*got shape \(2, 255\)"):
        bitnetmcu.logits(model, np.zeros((2, 255), dtype=np.int8))
    with pytest.raises(ValueError, match=r"got shape \(2, 16, 16\)"):
        bitnetmcu.predict(model, np.zeros((2, 16, 16), dtype=np.int8))
    with pytest.raises(FileNotFoundError, match="missing.bnm"):
        bitnetmcu.load_model(str(tmp_path / "missing.bnm"))
    bad = tmp_path / "bad.bnm"
    bad.write_bytes(b"hello world, not a model file at all")
    with pytest.raises(ValueError, match="bad.bnm: not a bitnetmcu model file"):
        bitnetmcu.load_model(str(bad))
    good = bitnetmcu.model_file_from_codes([random_dense(rng, "8bit", 10, 256)])
    bad.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ValueError, match="checksum"):
        bitnetmcu.load_model(str(bad))
    bad.write_bytes(good)
    assert bitnetmcu.load_model(str(bad)).num_classes == 10
    with pytest.raises(ValueError, match="scheme"):
        bitnetmcu.model_file_from_codes([{"scheme": "3bit", "codes": np.zeros((2, 2))}])


def test_preprocess_matches_pil_and_trainer(mnist_test):
    Image = pytest.importorskip("PIL.Image")
    import torch
    from bitnetmcu_torch.data import downscale_normalize, to_unit_tensor
    images = mnist_test[0][:300]
    pil = np.stack([np.asarray(Image.fromarray(im).resize((16, 16), Image.BILINEAR)) for im in images])
    pil = (pil.reshape(len(images), -1) / np.float32(255) - np.float32(0.1307)) / np.float32(0.3081)
    np.testing.assert_array_equal(bitnetmcu.preprocess(images, pil_rounding=True), pil)
    ours = bitnetmcu.preprocess(images)
    assert np.abs(ours - pil).max() * 0.3081 <= 1.0 / 255  # SPEC: within 1/255 of PIL per pixel
    trainer = downscale_normalize(to_unit_tensor(images)).reshape(len(images), -1).numpy()
    np.testing.assert_allclose(ours, trainer, rtol=0, atol=1e-5)
    assert bitnetmcu.preprocess(images[0]).shape == (256,)
    with pytest.raises(TypeError, match="uint8"):
        bitnetmcu.preprocess(images.astype(np.float32))
    with pytest.raises(TypeError, match="float"):
        bitnetmcu.quantize_input(images.reshape(len(images), -1))
