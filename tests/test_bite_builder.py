"""The engine builder's workspace and precision calls, through the TensorRT test double (NOT
TensorRT: it shows our calls match each generation's documented API, not that TensorRT builds).
A build of a two-node graph runs in a subprocess per emulated generation; the double's plan
header records the workspace in bytes, the flags and each engine layer's output precision."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, TRT_DOUBLE

onnx = pytest.importorskip("onnx")

SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("error", DeprecationWarning)   # a deprecated call fails the build
import tensorrt as trt
from stages.device import trt_builder
source = {"onnx": open(sys.argv[1], "rb").read(), "name": "tiny.onnx", "typing": sys.argv[2],
          "islands": [{"node": "soft", "op": "Softmax", "outputs": ["y"]}]}
lines = []
if sys.argv[2] == "layers":   # what apply_precision asks of each network layer (ILayer API)
    logger = trt_builder.make_logger(trt, lines, trt_builder.BuildState())
    builder = trt.Builder(logger)
    network = builder.create_network(trt_builder.tp.network_flags(trt, builder, "weak"))
    parser = trt_builder.parse(trt, network, logger, source["onnx"])
    config = builder.create_builder_config()
    trt_builder.apply_precision(trt, builder, config, network, "weak", source["islands"])
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    print(json.dumps([[l.name, str(l.precision) if l.precision_is_set else None,
                       [str(l.get_output_type(j)) if l.output_type_is_set(j) else None
                        for j in range(l.num_outputs)]] for l in layers]))
    sys.exit(0)
plan, cache, info = trt_builder.build(trt, source, {"workspace_mb": 48}, None, lines)
head = plan[len(trt.MAGIC):].split(b"\n", 1)[0]
print(json.dumps({"info": info, "header": json.loads(head.decode())}, default=str))
"""


def tiny_onnx(path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Softmax", ["r"], ["y"], name="soft", axis=1),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)]
    )
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def build(tmp_path, api, typing):
    env = dict(os.environ, TRT_DOUBLE_API=api, PYTHONPATH=os.pathsep.join([TRT_DOUBLE, ROOT]))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, tiny_onnx(str(tmp_path / "tiny.onnx")), typing],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "api,call",
    [
        ("8.2", "max_workspace_size"),
        ("8.5", "set_memory_pool_limit(WORKSPACE)"),
        ("10", "set_memory_pool_limit(WORKSPACE)"),
    ],
)
def test_workspace_is_set_in_bytes_through_the_current_api(tmp_path, api, call):
    r = build(tmp_path, api, "fp32")
    assert r["header"]["workspace"] == 48 * 1024 * 1024
    assert r["info"]["workspace_api"] == call and r["info"]["workspace_mb"] == 48


@pytest.mark.parametrize("api", ["8.2", "8.5"])
def test_weak_fp16_pins_each_island_layer_in_fp32_compute_and_outputs(tmp_path, api):
    layers = build(tmp_path, api, "layers")
    pinned = [(name, prec, outs) for name, prec, outs in layers if prec is not None]
    assert [name for name, _, _ in pinned] == [
        n for n, _, _ in layers if n != "relu"
    ]  # the Softmax's
    assert pinned and all(prec.endswith("FLOAT") for _, prec, _ in pinned), layers
    assert all(
        outs and all(o is not None and o.endswith("FLOAT") for o in outs) for _, _, outs in pinned
    ), layers
    assert [l for l in layers if l[0] == "relu"] == [["relu", None, [None]]]
    r = build(tmp_path, api, "weak")
    assert "FP16" in r["header"]["flags"] and "OBEY_PRECISION_CONSTRAINTS" in r["header"]["flags"]
    assert r["info"]["precision"]["unmatched_islands"] == []
