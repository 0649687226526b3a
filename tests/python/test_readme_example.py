"""The Python example of python/README.md runs (with a model file made here and the test data)."""
import os
import re

import numpy as np

import bitnetmcu
from conftest import SOURCE_DIR, data_dir


def test_readme_example_runs(mnist_test, tmp_path, capsys, rng):
    text = open(os.path.join(SOURCE_DIR, "python", "README.md"), encoding="utf-8").read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    model = tmp_path / "fc.bnm"
    model.write_bytes(bitnetmcu.model_file_from_codes([
        {"scheme": "4bitsym", "codes": rng.integers(0, 16, (64, 256)), "rowsum": True},
        {"scheme": "4bitsym", "codes": rng.integers(0, 16, (10, 64))}]))
    code = code.replace('"modeldata/fc_4bitsym.bnm"', repr(str(model))).replace('"data"', repr(data_dir()))
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "accuracy" in out and "4bitsym(256->64)" in out
