#!/usr/bin/python3
"""Drives a serial-mode QEMU twin (<name>-qemu-serial.elf, mcu/ch32v003/app/serial_app.cpp)
through the emulated UART: sends the model's test samples as frames (mcu/ch32v003/README.md,
"Serial mode") and checks every answer against the host engine (the bitnetmcu Python module on
the exported .bnm), bit for bit: class and every logit. Then the protocol's error answers:
wrong length, bad checksum, a frame cut short (timeout), a stray start byte.

    serial_twin.py --qemu "qemu-system-riscv32|-M|virt|..." --elf X-qemu-serial.elf
                   --header modeldata/X.h [--count 100]
(X.bnm and X.samples.h are read from beside X.h.)
"""
import argparse
import pathlib
import re
import select
import struct
import subprocess
import sys

import numpy as np

import bitnetmcu


def c_array(text, name):
    """The numbers of a C array initializer `name[...] = { ... };` (all rows, chip-only cut ignored)."""
    m = re.search(re.escape(name) + r"(\[[^\]]*\])+ = \{(.*?)\};", text, re.S)
    if not m:
        raise SystemExit(f"no array {name} found")
    body = re.sub(r"#\w+[^\n]*", "", m.group(2))
    return [float(v.rstrip("f")) for v in re.findall(r"-?[0-9][0-9.eE+-]*f?", body)]


class Twin:
    def __init__(self, qemu, elf):
        self.proc = subprocess.Popen(qemu + [str(elf)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buffer = b""

    def line(self, timeout=60):
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                raise SystemExit(f"no answer from the twin within {timeout} s (got so far: {self.buffer!r})")
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                raise SystemExit(f"the twin ended (exit {self.proc.wait()}); output so far: {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().rstrip("\r")

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()


def frame(payload):
    return b"S" + struct.pack("<H", len(payload)) + payload + bytes([sum(payload) & 0xFF])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", required=True, help="the QEMU command, '|'-separated, without the ELF")
    ap.add_argument("--elf", required=True)
    ap.add_argument("--header", required=True)
    ap.add_argument("--count", type=int, default=100)
    args = ap.parse_args()
    header = pathlib.Path(args.header)
    model_text = header.read_text()
    samples_text = header.with_suffix(".samples.h").read_text()
    model = bitnetmcu.load_model(str(header.with_suffix(".bnm")))
    inputs = int(re.search(r"kInputSize = (\d+)", model_text).group(1))
    images = np.array(c_array(samples_text, "kImages"), dtype=np.int8).reshape(-1, inputs)
    raw_input = "inline void quantize_input" in model_text
    n = min(args.count, len(images))
    if n < args.count:
        raise SystemExit(f"{header.with_suffix('.samples.h')} holds {len(images)} samples, need {args.count}")
    if raw_input:
        raw = np.array(c_array(samples_text, "kRaw"), dtype=np.float32).reshape(-1, inputs)[:n]
        offset = np.array(c_array(model_text, "kInputOffset"), dtype=np.float32)
        scale = np.array(c_array(model_text, "kInputScale"), dtype=np.float32)
        x = bitnetmcu.quantize_features(raw, offset, scale)
        if not np.array_equal(x, images[:n]):
            raise SystemExit("Python's quantize_features disagrees with the exporter's int8 samples")
        payloads = [raw[i].astype("<f4").tobytes() for i in range(n)]
    else:
        x = images[:n]
        payloads = [x[i].tobytes() for i in range(n)]
    expected = bitnetmcu.logits(model, x)

    twin = Twin(args.qemu.split("|"), args.elf)
    banner = twin.line()
    kind = "float32" if raw_input else "int8"
    if not re.fullmatch(rf"ready \w+ inputs {inputs} {kind} classes {expected.shape[1]}", banner):
        raise SystemExit(f"unexpected banner: {banner!r}")
    for i in range(n):
        twin.send(frame(payloads[i]))
        answer = twin.line()
        want = f"class {int(np.argmax(expected[i]))} logits " + " ".join(str(int(v)) for v in expected[i])
        if answer != want:
            raise SystemExit(f"sample {i}: twin answered {answer!r}, the host engine gives {want!r}")
    print(f"{n} samples: the twin's class and logits equal the host engine's")

    size = len(payloads[0])
    checks = [
        (b"S" + struct.pack("<H", size + 1) + b"\0" * (size + 2), f"error length {size + 1} expected {size}"),
        (frame(payloads[0])[:-1] + bytes([(sum(payloads[0]) + 1) & 0xFF]),
         f"error checksum {(sum(payloads[0]) + 1) & 0xFF} expected {sum(payloads[0]) & 0xFF}"),
        (b"S" + struct.pack("<H", size) + payloads[0][:5], f"error timeout after 5 of {size} bytes"),
        (b"x", "error start byte 120"),
    ]
    for data, want in checks:
        twin.send(data)
        answer = twin.line()
        if answer != want:
            raise SystemExit(f"sent {data[:12]!r}...: twin answered {answer!r}, expected {want!r}")
        print(f"error answer ok: {answer}")
    twin.send(frame(payloads[0]))  # still in step after the errors
    if twin.line().split()[:2] != ["class", str(int(np.argmax(expected[0])))]:
        raise SystemExit("the twin lost the framing after the error cases")
    twin.send(b"Q")
    rc = twin.proc.wait(timeout=60)
    if rc != 0:
        raise SystemExit(f"twin exit status {rc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
