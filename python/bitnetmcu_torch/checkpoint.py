"""The checkpoint container of docs/checkpoint-format.md ("BNMCUCK1"), read and written without
pickle so that the C++ trainer/exporter and these scripts share files."""
import os
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
    try:
        for _ in range(count):
            (name_len,) = struct.unpack_from("<H", body, pos)
            name = body[pos + 2:pos + 2 + name_len].decode("utf-8")
            pos += 2 + name_len
            kind = body[pos]
            pos += 1
            if kind == TEXT:
                (n,) = struct.unpack_from("<Q", body, pos)
                entries[name] = body[pos + 8:pos + 8 + n].decode("utf-8")
                pos += 8 + n
            elif kind in _DTYPES:
                ndim = body[pos]
                dims = struct.unpack_from(f"<{ndim}q", body, pos + 1)
                pos += 1 + 8 * ndim
                dtype = _DTYPES[kind]
                n = int(np.prod(dims, dtype=np.int64)) if ndim else 1
                raw = body[pos:pos + n * dtype.itemsize]
                if len(raw) != n * dtype.itemsize:
                    raise CheckpointError(f"checkpoint {path}: entry {name} is truncated")
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


def parse_meta(text):
    """The `key: value` lines of a meta entry as a dict."""
    meta = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    return meta
