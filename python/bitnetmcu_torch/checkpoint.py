"""The checkpoint container of docs/checkpoint-format.md ("BNMCUCK1"), read and written without
pickle so that the C++ trainer/exporter and these scripts share files."""
import dataclasses
import os
import re
import struct
import tempfile
import zlib

import numpy as np

MAGIC = b"BNMCUCK1"
VERSION = 1
FLOAT32, INT64, TEXT = 0, 1, 2
_DTYPES = {FLOAT32: np.dtype("<f4"), INT64: np.dtype("<i8")}


class CheckpointError(ValueError):
    """A checkpoint file is missing, foreign, truncated or corrupt; the message names the file."""


def read_checkpoint(path):
    """Returns {name: str (text entry) or numpy array (tensor entry)}, in file order."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 20 or data[:8] != MAGIC:
        raise CheckpointError(f"checkpoint {path}: not a bitnetmcu checkpoint (magic {MAGIC.decode()} missing)")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise CheckpointError(f"checkpoint {path}: CRC mismatch (file corrupt or truncated)")
    version, count = struct.unpack_from("<II", body, 8)
    if version != VERSION:
        raise CheckpointError(f"checkpoint {path}: unsupported version {version} (expected {VERSION})")
    pos, entries = 16, {}

    def text_of(raw, what):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CheckpointError(f"checkpoint {path}: {what} is not UTF-8 text ({e.reason} at byte {e.start})") from None

    try:
        for _ in range(count):
            (name_len,) = struct.unpack_from("<H", body, pos)
            if pos + 2 + name_len > len(body):
                raise CheckpointError(f"checkpoint {path}: entry name at byte {pos} is truncated")
            name = text_of(body[pos + 2:pos + 2 + name_len], f"entry name at byte {pos}")
            pos += 2 + name_len
            kind = body[pos]
            pos += 1
            if kind == TEXT:
                (n,) = struct.unpack_from("<Q", body, pos)
                if n > len(body) - pos - 8:
                    raise CheckpointError(f"checkpoint {path}: text entry {name} is truncated "
                                          f"({n} bytes declared, {max(len(body) - pos - 8, 0)} left)")
                entries[name] = text_of(body[pos + 8:pos + 8 + n], f"entry {name}")
                pos += 8 + n
            elif kind in _DTYPES:
                ndim = body[pos]
                dims = struct.unpack_from(f"<{ndim}q", body, pos + 1)
                pos += 1 + 8 * ndim
                dtype = _DTYPES[kind]
                n = 1
                for d in dims:  # as the C++ reader: no negative dimension, at most 2^40 elements
                    if d < 0 or (d > 0 and n > (1 << 40) // d):
                        raise CheckpointError(f"checkpoint {path}: entry {name} has an invalid dimension {d} "
                                              f"(shape {list(dims)})")
                    n *= d
                if n * dtype.itemsize > len(body) - pos:
                    raise CheckpointError(f"checkpoint {path}: entry {name} is truncated "
                                          f"(shape {list(dims)} needs {n * dtype.itemsize} bytes, {len(body) - pos} left)")
                raw = body[pos:pos + n * dtype.itemsize]
                entries[name] = np.frombuffer(raw, dtype=dtype).reshape(dims).copy()
                pos += n * dtype.itemsize
            else:
                raise CheckpointError(f"checkpoint {path}: entry {name} has unknown type {kind}")
    except (struct.error, IndexError) as e:
        raise CheckpointError(f"checkpoint {path}: truncated entry table ({e})") from None
    if pos != len(body):
        raise CheckpointError(f"checkpoint {path}: {len(body) - pos} unexpected bytes after the entries")
    return entries


def checkpoint_bytes(entries):
    """Bytes of a checkpoint holding `entries` ({name: str | array-like}); float arrays are
    stored as float32, integer arrays as int64."""
    out = [MAGIC, struct.pack("<II", VERSION, len(entries))]
    for name, value in entries.items():
        encoded = name.encode("utf-8")
        out.append(struct.pack("<H", len(encoded)) + encoded)
        if isinstance(value, str):
            text = value.encode("utf-8")
            out.append(struct.pack("<BQ", TEXT, len(text)) + text)
            continue
        if hasattr(value, "detach"):  # torch tensor
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        kind = INT64 if arr.dtype.kind in "iub" else FLOAT32
        arr = np.array(arr, dtype=_DTYPES[kind], order="C")  # keeps 0-d arrays 0-d
        out.append(struct.pack("<BB", kind, arr.ndim) + struct.pack(f"<{arr.ndim}q", *arr.shape) + arr.tobytes())
    body = b"".join(out)
    return body + struct.pack("<I", zlib.crc32(body))


def write_checkpoint(path, entries):
    """Writes atomically: a temporary file in the same folder, then a rename over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(checkpoint_bytes(entries))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclasses.dataclass
class CheckpointMeta:
    """The "meta" entry (docs/checkpoint-format.md), twin of bitnetmcu::train::CheckpointMeta
    (training/checkpoint.hpp): one `key: value` line per field in this order, `interrupted`
    only when true, other keys kept in order. tests/python/test_checkpoint_meta.py writes it
    here and reads it in C++, and the other way round."""
    creator: str = ""
    epochs_done: int = 0
    complete: bool = False
    train_seconds: float = 0.0
    test_accuracy: float = 0.0
    test_loss: float = 0.0
    interrupted: bool = False
    other: list = dataclasses.field(default_factory=list)  # [(key, value)] of other keys

    def to_text(self):
        lines = [f"creator: {self.creator}", f"epochs_done: {int(self.epochs_done)}",
                 f"complete: {'true' if self.complete else 'false'}", f"train_seconds: {_number(self.train_seconds)}",
                 f"test_accuracy: {_number(self.test_accuracy)}", f"test_loss: {_number(self.test_loss)}"]
        if self.interrupted:
            lines.append("interrupted: true")
        lines += [f"{k}: {v}" for k, v in self.other]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text, origin="checkpoint"):
        """Absent keys keep their defaults; a line without ':' or a value of the wrong type
        raises CheckpointError naming `origin`, the line and the key."""
        meta = cls()
        for line_no, line in enumerate(text.split("\n"), 1):
            if not line:
                continue
            where = f"{origin} (meta line {line_no})"
            key, sep, value = line.partition(":")
            if not sep:
                raise CheckpointError(f"{where}: expected 'key: value', got '{line}'")
            key, value = key.strip(" \t\r"), value.strip(" \t\r")

            def bad(expected):
                return CheckpointError(f"{where}: key '{key}': expected {expected}, got '{value}'")

            if key == "creator":
                meta.creator = value
            elif key == "epochs_done":
                if not re.fullmatch(r"[+-]?[0-9]+", value) or not 0 <= int(value) <= 1000000000:
                    raise bad("an integer in [0, 1000000000]")
                meta.epochs_done = int(value)
            elif key in ("complete", "interrupted"):
                if value not in ("true", "false"):
                    raise bad("true or false")
                setattr(meta, key, value == "true")
            elif key in ("train_seconds", "test_accuracy", "test_loss"):
                try:
                    setattr(meta, key, float(value))
                except ValueError:
                    raise bad("a number") from None
            else:
                meta.other.append((key, value))
        return meta


def _number(v):
    """Shortest text that reads back as exactly v (C++: %.{1..17}g, the first that round-trips)."""
    v = float(v)
    for precision in range(1, 18):
        text = f"{v:.{precision}g}"
        if float(text) == v:
            return text
    return f"{v:.17g}"


def parse_meta(text):
    """The `key: value` lines of a meta entry as a dict (any keys; CheckpointMeta for the
    documented ones)."""
    meta = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    return meta
