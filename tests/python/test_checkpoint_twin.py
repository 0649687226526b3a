"""The checkpoint meta entry across the twins: CheckpointMeta of training/checkpoint.hpp (through
tests/training/checkpoint_meta_tool) and of bitnetmcu_torch.checkpoint write each other's files
with every field set, and read the shipped checkpoints alike; read_checkpoint rejects crafted
files with CheckpointError."""
import dataclasses
import glob
import json
import os
import struct
import subprocess
import zlib

import pytest

from conftest import SOURCE_DIR, find_tool
from bitnetmcu_torch.checkpoint import (CheckpointError, CheckpointMeta, checkpoint_bytes, read_checkpoint,
                                        write_checkpoint)


@pytest.fixture(scope="module")
def tool():
    path = find_tool("checkpoint_meta_tool", "BITNETMCU_CHECKPOINT_META_TOOL")
    if not path:
        pytest.skip("checkpoint_meta_tool not built (the training part of the build)")
    return path


def as_json_fields(meta):
    d = dataclasses.asdict(meta)
    d["other"] = [list(kv) for kv in d["other"]]
    d["text"] = meta.to_text()
    return d


def test_cpp_written_meta_reads_in_python(tool, tmp_path):
    path = str(tmp_path / "c.pt")
    expected = json.loads(subprocess.run([tool, "write", path], check=True, capture_output=True, text=True).stdout)
    text = read_checkpoint(path)["meta"]
    assert text == expected["text"]
    meta = CheckpointMeta.from_text(text, path)
    # every C++ field, by name and value, and nothing else
    assert as_json_fields(meta) == expected
    assert meta.to_text() == text


def test_python_written_meta_reads_in_cpp(tool, tmp_path):
    meta = CheckpointMeta(creator="python twin \u00e9", epochs_done=23, complete=True, train_seconds=0.1 + 0.2,
                          test_accuracy=0.987654321, test_loss=1e-7, interrupted=True, other=[("k", "v: w")])
    path = str(tmp_path / "p.pt")
    write_checkpoint(path, {"config": "model: \"FCMNIST\"\n", "meta": meta.to_text(), "metrics": ""})
    back = json.loads(subprocess.run([tool, "read", path], check=True, capture_output=True, text=True).stdout)
    assert back == as_json_fields(meta)


def test_shipped_checkpoints_read_alike(tool):
    """Every checkpoint in the repository (written before CheckpointMeta existed) reads the same in
    both, and writing its meta back gives the stored text byte for byte."""
    paths = sorted(glob.glob(os.path.join(SOURCE_DIR, "modeldata", "**", "*.pt"), recursive=True) +
                   glob.glob(os.path.join(SOURCE_DIR, "tests", "export", "data", "*.pt")))
    assert paths
    lines = subprocess.run([tool, "read"] + paths, check=True, capture_output=True, text=True).stdout.splitlines()
    for path, line in zip(paths, lines, strict=True):
        text = read_checkpoint(path)["meta"]
        meta = CheckpointMeta.from_text(text, path)
        assert as_json_fields(meta) == json.loads(line), path
        assert meta.to_text() == text, path
        assert meta.complete and meta.epochs_done > 0 and meta.creator, path


def test_meta_errors_name_the_line():
    with pytest.raises(CheckpointError, match=r"x.pt \(meta line 2\): key 'epochs_done'"):
        CheckpointMeta.from_text("creator: a\nepochs_done: three\n", "x.pt")
    with pytest.raises(CheckpointError, match="true or false"):
        CheckpointMeta.from_text("complete: maybe\n", "x.pt")
    with pytest.raises(CheckpointError, match="expected 'key: value'"):
        CheckpointMeta.from_text("no colon\n", "x.pt")
    assert CheckpointMeta.from_text("", "x.pt") == CheckpointMeta()


# ---- crafted container files --------------------------------------------------------------

def crafted(tmp_path, body_entries):
    """A container with a valid header and CRC around raw entry bytes (count = len(list))."""
    body = b"BNMCUCK1" + struct.pack("<II", 1, len(body_entries)) + b"".join(body_entries)
    path = tmp_path / "crafted.pt"
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    return str(path)


def name(n):
    return struct.pack("<H", len(n)) + n


@pytest.mark.parametrize("entry, message", [
    (name(b"\xff\xfe") + struct.pack("<BQ", 2, 1) + b"x", "entry name at byte 16 is not UTF-8"),
    (name(b"meta") + struct.pack("<BQ", 2, 2) + b"\xc3\x28", "entry meta is not UTF-8"),
    (name(b"t") + struct.pack("<BQ", 2, 1 << 62) + b"x", "text entry t is truncated"),
    (name(b"w") + struct.pack("<BBq", 0, 1, 1 << 61), "entry w has an invalid dimension"),
    (name(b"w") + struct.pack("<BBqq", 0, 2, 1 << 31, 1 << 31), "entry w has an invalid dimension"),
    (name(b"w") + struct.pack("<BBq", 0, 1, -1), "entry w has an invalid dimension -1"),
    (name(b"w") + struct.pack("<BBq", 1, 1, 1000) + b"\0" * 16, "entry w is truncated"),
])
def test_crafted_container_raises_checkpoint_error(tmp_path, entry, message):
    path = crafted(tmp_path, [entry])
    with pytest.raises(CheckpointError, match="checkpoint .*crafted.pt: " + message):
        read_checkpoint(path)


def test_well_formed_crafted_container_reads(tmp_path):
    """The crafting helper itself makes readable files (so the failures above are the entries')."""
    path = crafted(tmp_path, [name(b"w") + struct.pack("<BBq", 1, 1, 2) + struct.pack("<2q", 5, -6)])
    assert read_checkpoint(path)["w"].tolist() == [5, -6]
    assert checkpoint_bytes({"w": [5, -6]}) == open(path, "rb").read()
