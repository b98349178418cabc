"""model.json: everything the runtime needs beside the model file (labels, palette, tensor
names and shapes, pre-processing), written next to model.onnx and next to model.engine."""
import json
import os

from runtime.errors import EngineError

FORMAT = "segformer-sidecar/1"
SIDECAR = "model.json"
INPUT_NAME, OUTPUT_NAME = "pixel_values", "logits"
REQUIRED = ("labels", "palette", "input", "output", "preprocess", "onnx_sha256")


def model_sidecar(manifest, pass_order, output_shape, onnx_sha256, palette):
    h, w = manifest["input"]["height"], manifest["input"]["width"]
    return {"format": FORMAT, "labels": manifest["labels"], "palette": palette,
            "input": {"name": INPUT_NAME, "shape": [1, 3, h, w], "dtype": "float32"},
            "output": {"name": OUTPUT_NAME, "shape": list(output_shape), "dtype": "float32"},
            "preprocess": {"mean": manifest["mean"], "std": manifest["std"],
                           "scale": manifest["rescale_factor"], "channel_order": "RGB",
                           "resize": "Pillow antialiased bilinear on uint8",
                           "pass_order": pass_order},
            "onnx_sha256": onnx_sha256}


def load(path):
    """Read and check a sidecar: `path` is model.json, or the folder holding it."""
    if os.path.isdir(path):
        path = os.path.join(path, SIDECAR)
    if not os.path.isfile(path):
        raise EngineError("%s is missing: the model folder needs its model.json sidecar; rebuild "
                          "it with doit onnx (host) or doit build_engine (device)." % path)
    try:
        with open(path) as f:
            meta = json.load(f)
    except ValueError:
        raise EngineError("%s is not valid JSON: rebuild it with doit onnx or doit build_engine."
                          % path)
    missing = [k for k in REQUIRED if k not in meta]
    if meta.get("format") != FORMAT or missing:
        raise EngineError("%s is not a %s sidecar (missing %s): rebuild it with doit onnx or doit "
                          "build_engine." % (path, FORMAT, ", ".join(missing) or "format"))
    return meta
