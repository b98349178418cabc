"""A hand-built project for the precision link's in-process tests: a small ONNX graph whose
overflow two fp32 islands repair, two golden cases written as the golden link writes them, the
parts of the config the link reads, and the files in a tmp working folder."""
import io
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

LABELS = ["a", "b"]
# two images (1x4 pixels, 2 channels = the 2 classes' inputs): 300 and 260 square beyond 65504
IMAGES = [np.array([[[[300, 2, 300, 50]], [[100, 260, 3, 10]]]], np.float32),
          np.array([[[[40, 280, 5, 70]], [[3, 4, 270, 20]]]], np.float32)]


def io_info(name, shape=(1, 2, 1, 4)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def const(name, value):
    return numpy_helper.from_array(np.array(value, np.float32), name)


def island_model(square="square", tail=()):
    """pixel_values -> square (x*x: up to 90,000, inf in fp16) -> h -> shrink (x 1e-4) -> s;
    pixel_values -> grow (x 1000: inf in fp16) -> clip (min 1: 1 either way) -> c; s + c -> t
    -> soft (Softmax over the classes) -> logits. square and shrink must stay fp32 for the
    masks; grow and clip are beyond range too, but the masks do not need them."""
    nodes = [helper.make_node("Mul", ["pixel_values", "pixel_values"], ["h"], name=square),
             helper.make_node("Mul", ["h", "k"], ["s"], name="shrink"),
             helper.make_node("Mul", ["pixel_values", "w"], ["g"], name="grow"),
             helper.make_node("Min", ["g", "one"], ["c"], name="clip"),
             helper.make_node("Add", ["s", "c"], ["t"], name="add")] + list(tail)
    out = nodes[-1].output[0] if tail else "t"
    nodes.append(helper.make_node("Softmax", [out], ["logits"], name="soft", axis=1))
    inits = [const("k", 1e-4), const("w", 1000.0), const("one", 1.0), const("big", 1000.0),
             const("cent", 0.01)]
    graph = helper.make_graph(nodes, "g", [io_info("pixel_values")], [io_info("logits")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def tied_model():
    """As island_model, with 1000 + t / 100 before the Softmax: the classes differ by less than 0.1
    there, and fp16 stores 1000 +- 0.1 as 1000 (its step is 0.5 there), so they tie in every fp16
    preview, whatever the islands (lift is no candidate)."""
    return island_model(tail=[helper.make_node("Mul", ["t", "cent"], ["v"], name="flatten"),
                              helper.make_node("Add", ["v", "big"], ["u"], name="lift")])


def golden(model, x):
    import onnxruntime as ort
    from runtime.reference import upsample_argmax
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"pixel_values": x})[0]
    return logits, upsample_argmax(logits, x.shape[2], x.shape[3])


def npy(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def project(tmp_path, monkeypatch, model=None, images=IMAGES):
    """A project in tmp_path (the working folder): model.onnx, the manifest's labels, and
    golden.json with one case folder per image (the fp32 model's logits and mask)."""
    from runtime import files, palette
    from stages.common.layout import Layout
    model = model or island_model()
    monkeypatch.chdir(tmp_path)
    layout = Layout({"artifacts": "artifacts", "golden": {"images": []}})
    files.write_bytes(layout.onnx_model, model.SerializeToString())
    files.write_json(layout.manifest, {"labels": LABELS})
    records = []
    for i, x in enumerate(images):
        logits, mask = golden(model, x)
        folder = layout.golden_case_dir(i, "img%d.jpg" % i)
        blobs = {"input.npy": npy(x), "logits.npy": npy(logits),
                 "mask.png": palette.encode_mask_png(mask, [(0, 0, 0), (255, 255, 255)])}
        for name, data in blobs.items():
            files.write_bytes(os.path.join(folder, name), data)
        records.append({"source": "examples/img%d.jpg" % i, "dir": folder, "height": x.shape[2],
                        "width": x.shape[3],
                        "sha256": dict((n, files.sha256_bytes(b)) for n, b in blobs.items())})
    files.write_json(layout.golden_json, {"images": records})
    return layout


FP16 = {"input_max_abs": 1e-3, "logits_max_abs": 0.05, "logits_mean_abs": 0.006,
        "mask_agreement": 0.99, "miou": 0.95}


def settings(precision="fp16", keep_fp32=("Softmax",), margin=2.0, minutes=10.0, mb=100000,
             explicit=None, **fp16):
    """The parts of the config the link reads (dodo's task_precision passes the whole config)."""
    return {"engine": {"precision": precision, "keep_fp32": list(keep_fp32)},
            "precision": {"margin": margin, "budget_minutes": minutes, "budget_mb": mb},
            "verify": {"fp16": dict(FP16, **fp16)}, "explicit": explicit or {}}


def run(cfg, layout):
    from stages.host.precision_link import run_precision
    return run_precision(cfg, layout)


def read(path):
    from runtime import files
    return files.read_json(path)


def old_files(layout):
    """A model.mixed.onnx and precision.json from an earlier run, which a refusal must keep."""
    from runtime import files
    files.write_bytes(layout.precision_model, b"old mixed")
    files.write_json(layout.precision_report, {"old": True})


def unchanged(layout):
    """The earlier run's files are as they were, and no temp file is left beside them."""
    with open(layout.precision_model, "rb") as f:
        assert f.read() == b"old mixed"
    assert read(layout.precision_report) == {"old": True}
    assert sorted(os.listdir(layout.onnx_dir)) == ["model.mixed.onnx", "model.onnx",
                                                   "precision.json"]
