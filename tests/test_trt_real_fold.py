"""Issue 22 on a real TensorRT-family builder (stages/device/trt_builder): fp32 and strongly typed
fp16 builds of the unfolded, the folded and the folded LayerNormalization (opset 17) graphs of the
embedded model and of a SegFormer-B4-size checkout (random weights, 512x512, 35 labels). Records
per build: network layers, plan size, build seconds, MACs and node count of the graph, and the
parsed tensor types of the islands. Marked `tensorrt`; skipped unless a real `tensorrt` or
`tensorrt_rtx_bindings` imports (never the double). TRT_RUN_LOG=path appends one JSON line per
record (docs/device-runs/issue22-rtx-fold.sh runs it). The host-side preparation
(tests/fold_variants.py) runs in CI through tests/test_fold.py."""
import os

import pytest

from conftest import ROOT
from fold_variants import b4_checkout, variants
from test_trt_real import TRT, needs_trt, onnx_types, record, run_build

pytestmark = [pytest.mark.tensorrt, needs_trt]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    for name in ("torch", "transformers", "onnx", "onnxconverter_common"):
        pytest.importorskip(name)
    d = str(tmp_path_factory.mktemp("trt_fold"))
    out = {"embedded": variants(os.path.join(ROOT, "models", "segformer-tiny-sidewalk"), 256, d)}
    out["b4"] = variants(b4_checkout(os.path.join(d, "b4")), 512, d)
    return out


def island_types(mixed, islands):
    """{"island op": {parsed type: count}} of the islands' outputs in the parsed network."""
    import onnx
    from stages.device import trt_builder, trt_precision as tp
    from stages.device.trt_progress import BuildState, make_logger
    ops = dict((isl["node"], isl["op"]) for isl in islands)
    outputs = dict((t, ops[n.name]) for n in onnx.load_from_string(mixed).graph.node
                   if n.name in ops for t in n.output)
    logger = make_logger(TRT, [], BuildState())
    builder = TRT.Builder(logger)
    network = builder.create_network(tp.network_flags(TRT, builder, "strong"))
    parser = trt_builder.parse(TRT, network, logger, mixed, "mixed")
    parsed, counts = tp.network_types(network), {}
    for tensor, op in outputs.items():
        if tensor in parsed:
            per = counts.setdefault(op, {})
            per[parsed[tensor]] = per.get(parsed[tensor], 0) + 1
    expected = onnx_types(mixed)
    differ = sorted(t for t in parsed if expected.get(t) in ("fp32", "fp16")
                    and parsed[t] != expected[t])
    del parser, network
    return counts, differ


@pytest.mark.parametrize("model", ["embedded", "b4"])
@pytest.mark.parametrize("variant", ["unfolded", "folded", "folded_ln"])
def test_fold_variant_builds_fp32_and_strong_fp16(graphs, model, variant):
    g = graphs[model][variant]
    plan32, info32 = run_build("%s.%s" % (model, variant), "fp32", g["fp32"], None)
    types, differ = island_types(g["mixed"], g["islands"])
    plan16, info16 = run_build("%s.%s.mixed" % (model, variant), "fp16", g["mixed"], g["islands"])
    record({"model": model, "variant": variant, "macs": g["macs"], "onnx_nodes": g["nodes"],
            "layers_fp32": info32["layers"], "layers_fp16": info16["layers"],
            "plan_mb_fp32": round(len(plan32) / 1e6, 1),
            "plan_mb_fp16": round(len(plan16) / 1e6, 1),
            "island_types": types, "types_differing_from_onnx": differ[:10]})
    assert len(plan32) > 1e6 and len(plan16) > 1e6 and differ == []
    assert all(set(per) == {"fp32"} for per in types.values()), types
    if variant == "folded_ln":
        assert "LayerNormalization" in g["ops"] and "LayerNormalization" in types


def test_fold_removes_layers(graphs):
    """The folded graph parses into fewer layers than the unfolded one (same model)."""
    from stages.device import trt_builder, trt_precision as tp
    from stages.device.trt_progress import BuildState, make_logger
    counts = {}
    for variant in ("unfolded", "folded"):
        logger = make_logger(TRT, [], BuildState())
        builder = TRT.Builder(logger)
        network = builder.create_network(tp.network_flags(TRT, builder, "fp32"))
        parser = trt_builder.parse(TRT, network, logger, graphs["b4"][variant]["fp32"], variant)
        counts[variant] = network.num_layers
        del parser, network
    record({"model": "b4", "parsed_layers": counts})
    assert counts["folded"] < counts["unfolded"]
