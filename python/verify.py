#!/usr/bin/python3
"""Runs a checkpoint in PyTorch (the float QAT model) and its exported model file (.bnm, written
by bitnetmcu-export) through the integer engine of the `bitnetmcu` module on the test set;
prints both accuracies, the number of images where they disagree, and whether the exported codes
are exactly the codes this PyTorch model quantizes to.

  PYTHONPATH=build/python /usr/bin/python3 python/verify.py modeldata/fc.pt [--model-file fc.bnm]
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

import bitnetmcu
from bitnetmcu_torch.data import downscale_normalize, load_raw, to_unit_tensor
from bitnetmcu_torch.models import model_from_checkpoint


def layer_code_mismatches(model, engine_model):
    """{layer: weights whose exported code differs from the PyTorch quantizer's}."""
    dense = [(n, l) for n, l in model.quant_layers() if not n.startswith("conv")]
    convs = [(n, l) for n, l in model.quant_layers() if n.startswith("conv")]
    out, index = {}, 0
    if convs:
        exported = engine_model.layer_weights(0).astype(np.int64)  # (3, C, 3, 3)
        for i, (name, layer) in enumerate(convs):
            s = bitnetmcu.schemes[layer.scheme]
            ours = s.decode(s.encode(layer.scaled_weight().numpy())).reshape(exported[i].shape)
            out[name] = int((ours != exported[i]).sum())
        index = 1
    for name, layer in dense:
        if layer.scheme is None:
            out[name] = -1  # float layer: nothing exported
            continue
        codes = bitnetmcu.schemes[layer.scheme].encode(layer.scaled_weight().numpy())
        exported = engine_model.layer_weights(index)
        out[name] = int((codes != exported).sum()) if exported.shape == codes.shape else codes.size
        index += 1
    return out


def verify(checkpoint, model_file, data_dir=None, limit=0, log=print):
    cfg, model, _ = model_from_checkpoint(checkpoint)
    engine_model = bitnetmcu.load_model(model_file)
    images, labels = load_raw(data_dir or cfg["data_dir"], cfg["dataset"], train=False, subset=limit)
    with torch.no_grad():
        x = downscale_normalize(to_unit_tensor(images))
        float_pred = torch.cat([model(x[i:i + 2000]).argmax(1) for i in range(0, len(x), 2000)]).numpy()
    q = bitnetmcu.quantize_input(bitnetmcu.preprocess(images))
    t0 = time.perf_counter()
    int_pred = bitnetmcu.predict(engine_model, q)
    seconds = time.perf_counter() - t0
    result = {
        "images": len(labels),
        "float_correct": int((float_pred == labels).sum()),
        "int_correct": int((int_pred == labels).sum()),
        "mismatches": int((float_pred != int_pred).sum()),
        "code_mismatches": layer_code_mismatches(model, engine_model),
        "images_per_second": len(labels) / seconds if seconds > 0 else float("inf"),
        "int_predictions": int_pred,
    }
    n = result["images"]
    log(f"checkpoint  {checkpoint}\nmodel file  {model_file}  {engine_model!r}")
    log(f"float (PyTorch QAT)   {result['float_correct']}/{n} = {100 * result['float_correct'] / n:.2f} %")
    log(f"integer (engine)      {result['int_correct']}/{n} = {100 * result['int_correct'] / n:.2f} %")
    log(f"predictions differ on {result['mismatches']} of {n} images")
    log("exported codes differing from the PyTorch quantizer: " +
        ", ".join(f"{k}={v}" for k, v in result["code_mismatches"].items()))
    log(f"engine throughput     {result['images_per_second']:,.0f} images/s")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--model-file", help="exported .bnm (default: the checkpoint's stem in modeldata/, "
                                             "then next to the checkpoint)")
    parser.add_argument("--data-dir", help="folder holding mnist/ (default: the checkpoint config's data_dir)")
    parser.add_argument("--limit", type=int, default=0, help="first N test images only (default: all)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any exported code differs")
    args = parser.parse_args(argv)
    stem = os.path.splitext(os.path.basename(args.checkpoint))[0]
    candidates = [args.model_file] if args.model_file else \
        [os.path.join("modeldata", stem + ".bnm"), os.path.join(os.path.dirname(args.checkpoint), stem + ".bnm")]
    model_file = next((c for c in candidates if os.path.exists(c)), candidates[0])
    try:
        result = verify(args.checkpoint, model_file, args.data_dir, args.limit)
    except (OSError, ValueError) as e:
        sys.exit(f"verify.py: error: {e}")
    if args.strict and any(v > 0 for v in result["code_mismatches"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
