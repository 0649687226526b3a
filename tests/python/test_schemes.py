"""bitnetmcu.schemes: the engine's traits on numpy, against SPEC §4-§5 written out by hand."""
import numpy as np
import pytest

import bitnetmcu
from spec_reference import integer_weights

ALL = ["Binary", "Ternary", "2bitsym", "4bitsym", "4bit", "8bit", "FP130", "NF4"]


def test_every_scheme_is_bound():
    assert sorted(bitnetmcu.schemes) == sorted(ALL)
    for name, s in bitnetmcu.schemes.items():
        assert s.name == name


@pytest.mark.parametrize("name, scaled, values", [
    ("Binary", [-0.1, 0.0, 2.0], [-1, 1, 1]),
    ("Ternary", [-0.6, -0.5, 0.49, 0.5, 0.51, 3.0], [-1, 0, 0, 0, 1, 1]),
    # round half to even of v - 0.5: -1.0 -> round(-1.5) = -2 -> -1.5; 2.0 -> round(1.5) = 2 -> 2.5
    ("2bitsym", [-9.0, -1.0, -0.99, -0.2, 0.0, 0.99, 1.0, 1.01, 5.0],
     [-1.5, -1.5, -0.5, -0.5, 0.5, 0.5, 0.5, 1.5, 1.5]),
    ("4bitsym", [-100.0, -7.0, -6.9, 0.0, 1.5, 2.0, 7.9, 100.0], [-7.5, -7.5, -6.5, 0.5, 1.5, 2.5, 7.5, 7.5]),
    ("4bit", [-9.0, -0.5, 0.5, 1.5, 2.5, 7.6], [-8, 0, 0, 2, 2, 7]),
    ("8bit", [-300.0, -127.5, 126.5, 127.4, 300.0], [-128, -128, 126, 127, 127]),
    ("FP130", [0.3, 1.99, 2.0, -3.9, 4.0, 127.9, 128.0, 1e9], [1, 1, 2, -2, 4, 64, 128, 128]),
    # midpoints: (-1 - 0.6962) / 2 = -0.8481, (0 + 0.0796) / 2 = 0.0398; a midpoint goes up
    ("NF4", [-2.0, -0.85, -0.84, 0.0, 0.03, 0.0397, 0.0399, 0.8, 5.0],
     [-1.0, -1.0, -0.6962, 0.0, 0.0, 0.0, 0.0796, 0.723, 1.0]),
])
def test_encode_value_matches_spec_table(name, scaled, values):
    s = bitnetmcu.schemes[name]
    codes = s.encode(np.array(scaled, dtype=np.float32))
    assert codes.dtype == np.uint8
    np.testing.assert_allclose(s.value(codes), values, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_decode_is_spec_integer_of_every_code(name):
    s = bitnetmcu.schemes[name]
    codes = np.arange(s.num_codes)
    np.testing.assert_array_equal(s.decode(codes), integer_weights(name, codes))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [1, 7, 10, 31, 33, 256])
def test_pack_unpack_round_trip(name, n, rng):
    s = bitnetmcu.schemes[name]
    codes = rng.integers(0, s.num_codes, size=(5, n)).astype(np.uint8)
    words = s.pack(codes)
    assert words.dtype == s.word_dtype and words.shape == (5, s.row_words(n))
    np.testing.assert_array_equal(s.unpack(words, n), codes)
    np.testing.assert_array_equal(s.unpack(s.pack(codes[0]), n), codes[0])


def test_packing_layout_first_code_in_msb():
    np.testing.assert_array_equal(bitnetmcu.schemes["4bitsym"].pack([1, 2, 3, 4, 5, 6, 7, 8, 9]),
                                  [0x12345678, 0x90000000])
    assert bitnetmcu.schemes["Binary"].pack([1] + [0] * 31)[0] == 0x80000000
    assert bitnetmcu.schemes["8bit"].pack([0xAB, 0xCD])[0] == 0xABCD0000
    assert bitnetmcu.schemes["2bitsym"].pack([3, 0, 0, 0] * 4)[0] == 0xC0C0C0C0


def test_ternary_word_is_ceil_of_base3_fraction():
    trits = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    v = sum(t * 3 ** (9 - i) for i, t in enumerate(trits))
    words = bitnetmcu.schemes["Ternary"].pack(trits)
    assert words.dtype == np.uint16 and words[0] == -(-v * 65536 // 59049)
    # padding of a short row is the zero trit (2)
    pad = bitnetmcu.schemes["Ternary"].pack([0])[0]
    assert pad == -(-(3 ** 9 * 0 + sum(2 * 3 ** (9 - i) for i in range(1, 10))) * 65536 // 59049)


def test_pack_columns_is_transposed_rows_plus_a_tail_stream(rng):
    # layout.hpp: each input's column packed like a row for its whole words (8 codes), then the
    # remaining 12 % 8 = 4 codes of every column, column after column, as one packed stream.
    s = bitnetmcu.schemes["4bitsym"]
    codes = rng.integers(0, 16, size=(12, 5))
    columns = codes.T
    full = s.pack(columns[:, :8]).reshape(-1)
    tail = s.pack(columns[:, 8:].reshape(1, -1)).reshape(-1)
    np.testing.assert_array_equal(s.pack_columns(codes), np.concatenate([full, tail]))


def test_errors_name_expected_input():
    s = bitnetmcu.schemes["4bitsym"]
    with pytest.raises(ValueError, match="0..15"):
        s.decode([16])
    with pytest.raises(TypeError, match="integer"):
        s.decode(np.array([0.5]))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        s.unpack(np.zeros(4, dtype=np.uint32), 20)
    with pytest.raises(TypeError, match="uint32"):
        s.unpack(np.zeros(3, dtype=np.int64), 20)
