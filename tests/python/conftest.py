"""Shared fixtures of the Python tests. ctest sets PYTHONPATH (the built module and python/),
BITNETMCU_DATA_DIR and, when the training part is built in the same tree, BITNETMCU_EXPORTER."""
import glob
import os
import sys

import numpy as np
import pytest

SOURCE_DIR = os.environ.get("BITNETMCU_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(SOURCE_DIR, "python"))  # bitnetmcu_torch, train.py, verify.py


def data_dir():
    return os.environ.get("BITNETMCU_DATA_DIR", os.path.join(SOURCE_DIR, "data"))


def find_tool(name, env):
    """A C++ tool: $<env> if it names an executable, else the newest one in a build* tree."""
    path = os.environ.get(env, "")
    if path and os.access(path, os.X_OK):
        return path
    found = [p for p in glob.glob(os.path.join(SOURCE_DIR, "build*", "**", name), recursive=True)
             if os.access(p, os.X_OK) and os.path.isfile(p)]
    return max(found, key=os.path.getmtime) if found else None


def find_exporter():
    return find_tool("bitnetmcu-export", "BITNETMCU_EXPORTER")


def find_trainer():
    return find_tool("bitnetmcu-train", "BITNETMCU_TRAINER")


@pytest.fixture(scope="session")
def mnist_test():
    """(uint8 images [10000, 28, 28], int64 labels) of the MNIST test set, or skip."""
    from bitnetmcu_torch.data import load_raw
    folder = os.path.join(data_dir(), "mnist")
    if not os.path.exists(os.path.join(folder, "t10k-images-idx3-ubyte")) and \
            not os.path.exists(os.path.join(folder, "t10k-images-idx3-ubyte.gz")):
        pytest.skip(f"MNIST test set not found in {folder} (run scripts/setup.sh)")
    return load_raw(data_dir(), "MNIST", train=False)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
