"""Writes the seed corpora of tests/fuzz/corpus/ from real files of the repository and MNIST
(run once from the repository root with /usr/bin/python3; the output is committed). Crashes
found later are added next to these seeds by hand, never regenerated."""
import argparse
import gzip
import os
import shutil
import sys

# No options: --help prints the docstring; anything else is an error (the script writes at once).
argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()

sys.path.insert(0, "python")
from bitnetmcu_torch.checkpoint import checkpoint_bytes, read_checkpoint  # noqa: E402

OUT = "tests/fuzz/corpus"
ZOO_CKPT = "modeldata/zoo/fc_tiny_2bitsym_FCMNIST_2bitsym_RMS_w16_16_16_Muon_e60.pt"
CNN_CKPT = "modeldata/zoo/cnn16_v003_CNNMNIST_4bitsym_RMS_w96_64_0_cnn16_e60.pt"


def put(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


# .bnm: the smallest shipped FC model, a CNN one and an NF4 one (row sums).
for model in ("fc_tiny_2bitsym", "cnn16_v003", "fc_nf4"):
    shutil.copy(f"modeldata/{model}.bnm", os.path.join(OUT, "fuzz_model_file", f"{model}.bnm"))

# checkpoints: a shipped one cut down to its text entries, clipping tensors, the classifier and
# the optimizer step (the full file is 48 KB).
entries = read_checkpoint(ZOO_CKPT)
keep = {k: v for k, v in entries.items()
        if isinstance(v, str) or k.startswith("clip/") or k in ("model/fcl.weight", "optim/step")}
keep["metrics"] = "\n".join(keep["metrics"].splitlines()[:3]) + "\n"
put("fuzz_checkpoint", "fc_tiny_reduced.pt", checkpoint_bytes(keep))

# IDX: first byte 0 = the file as is, 1 = gzip-compressed by the target.
def idx_prefix(path, n):
    with open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    per = 1
    for d in range(1, ndim):
        per *= int.from_bytes(data[4 + 4 * d:8 + 4 * d], "big")
    header = bytearray(data[:4 + 4 * ndim])
    header[4:8] = n.to_bytes(4, "big")
    return bytes(header) + data[4 + 4 * ndim:4 + 4 * ndim + n * per]

labels = idx_prefix("data/mnist/t10k-labels-idx1-ubyte", 64)
images = idx_prefix("data/mnist/t10k-images-idx3-ubyte", 2)
put("fuzz_idx", "labels64_raw", b"\0" + labels)
put("fuzz_idx", "labels64_compress", b"\1" + labels)
put("fuzz_idx", "images2_raw", b"\0" + images)
put("fuzz_idx", "images2_gz", b"\0" + gzip.compress(images, mtime=0))

# YAML: the shipped configuration and the resolved ones stored in two zoo checkpoints.
with open("trainingparameters.yaml", "rb") as f:
    put("fuzz_config", "trainingparameters.yaml", f.read())
put("fuzz_config", "fc_tiny_2bitsym.yaml", entries["config"].encode())
put("fuzz_config", "cnn16_v003.yaml", read_checkpoint(CNN_CKPT)["config"].encode())
