"""Real NVIDIA TensorRT-family builds through the project's own builder (stages/device/trt_builder):
fp32 and strongly typed fp16 engines of the embedded model and of a SegFormer-B4-size checkout
(tools/make_b4_checkout.py: random weights, 512x512, 35 labels), with the parsed network's tensor
types checked against the mixed ONNX graph (islands fp32, the rest fp16).

Host-side preparation and device calls are split so that the preparation cannot rot unseen: each
model goes through the chain's own checkout (checkout.write_manifest, the manifest the loader
reads), export (onnx_export.export_graph, check_and_simplify) and fp16 rewrite, and the
`test_prepared_*` tests check that everywhere torch and transformers are (marker `host`; the B4 one
is also `slow`). Only the builds are marked `tensorrt` and skipped unless a real `tensorrt` or
`tensorrt_rtx_bindings` module imports (never the test double). TRT_RUN_LOG=path appends one JSON
line per build (layers, build seconds, plan size) for docs/device-runs/."""
import importlib
import json
import os
import time

import pytest

from conftest import ROOT


def real_tensorrt():
    for name in ("tensorrt", "tensorrt_rtx_bindings"):
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        if not getattr(module, "__double__", False):
            return module
    return None


TRT = real_tensorrt()
needs_trt = pytest.mark.skipif(TRT is None,
                               reason="no real TensorRT or TensorRT-RTX module imports here")
MODELS = [pytest.param("embedded", marks=pytest.mark.host),
          pytest.param("b4", marks=[pytest.mark.host, pytest.mark.slow])]
SIZES = {"embedded": 256, "b4": 512}


def checkout(name, folder):
    """(checkout folder, manifest) as the chain's checkout link writes it."""
    import sys
    from stages.common import files
    from stages.common.config import load
    from stages.host.checkout import write_manifest
    model_cfg = dict(load(os.path.join(ROOT, "pipeline.yaml"))["model"])
    if name == "b4":
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import make_b4_checkout
        model_cfg["path"] = os.path.join(folder, "b4")
        make_b4_checkout.main([model_cfg["path"], "--variant", "b4", "--size", "512"])
    else:
        model_cfg["path"] = os.path.join(ROOT, "models", "segformer-tiny-sidewalk")
    write_manifest(model_cfg, os.path.join(folder, name + ".manifest.json"))
    return model_cfg["path"], files.read_json(os.path.join(folder, name + ".manifest.json"))


def export(name, folder):
    from stages.host.onnx_export import check_and_simplify, export_graph
    try:
        import onnxsim  # noqa: F401
        simplify = True
    except Exception:
        simplify = False
    model_dir, manifest = checkout(name, folder)
    path = os.path.join(folder, name + ".onnx")
    export_graph(model_dir, manifest, 13, path)
    return check_and_simplify(path, simplify)[0]


def prepared(model):
    """(fp32 bytes, mixed bytes, islands): the islands are the LayerNorm chains and Softmax
    nodes."""
    from stages.host.fp16_convert import to_mixed
    from stages.host.precision import precision_groups
    groups = precision_groups(model)
    names = set(n for g in groups.values() for n in g["nodes"])
    islands = [{"node": n.name, "op": n.op_type, "outputs": list(n.output),
                "reason": "LayerNorm/Softmax"}
               for n in model.graph.node if n.name in names]
    mixed = to_mixed(model, names)
    return model.SerializeToString(), mixed.SerializeToString(), islands


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (fp32 bytes, mixed bytes, islands), each made on first use."""
    for name in ("torch", "transformers", "onnx", "onnxconverter_common"):
        pytest.importorskip(name)
    folder, made = str(tmp_path_factory.mktemp("trt_real")), {}

    def get(name):
        if name not in made:
            made[name] = prepared(export(name, folder))
        return made[name]
    return get


@pytest.mark.parametrize("name", MODELS)
def test_prepared_models_match_the_chain(models, name):
    """The exports take the checkout's input size; the mixed graph is fp16 outside the islands
    and keeps every island output fp32."""
    import onnx
    fp32, mixed, islands = models(name)
    dims = [d.dim_value for d in onnx.load_from_string(fp32).graph.input[0].type.tensor_type
            .shape.dim]
    assert dims == [1, 3, SIZES[name], SIZES[name]]
    types, kinds = onnx_types(mixed), set()
    island_nodes = set(isl["node"] for isl in islands)
    for node in onnx.load_from_string(mixed).graph.node:
        for t in (t for t in node.output if t in types):
            kinds.add(types[t])
            if node.name in island_nodes:
                assert types[t] in ("fp32", "int64", "bool"), (node.name, t, types[t])
    assert len(islands) > 10 and {"fp16", "fp32"} <= kinds


def record(entry):
    print(json.dumps(entry, sort_keys=True))
    if os.environ.get("TRT_RUN_LOG"):
        with open(os.environ["TRT_RUN_LOG"], "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")


def run_build(name, precision, onnx_bytes, islands):
    from stages.device import trt_builder
    settings = {"precision": precision, "workspace_mb": 4096, "timing_cache": True}
    source = {"onnx": onnx_bytes, "name": name, "islands": islands,
              "typing": "strong" if precision == "fp16" else "fp32"}
    lines, t0 = [], time.time()
    plan, cache, info = trt_builder.build(TRT, source, settings, None, lines)
    entry = {"model": name, "precision": precision, "module": TRT.__name__,
             "version": TRT.__version__,
             "network_layers": info["layers"], "build_s": round(time.time() - t0, 1),
             "plan_mb": round(len(plan) / 1e6, 1), "inspector": info["inspector"],
             "timing_cache_bytes": len(cache or b"")}
    record(entry)
    return plan, info


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.tensorrt
@needs_trt
def test_fp32_engine_builds(models, name):
    fp32, _, _ = models(name)
    plan, info = run_build(name, "fp32", fp32, None)
    assert len(plan) > 1e6 and info["layers"] > 100 and info["precision"] == {"typing": "fp32"}


def onnx_types(mixed_bytes):
    """{tensor name: 'fp32'|'fp16'|...} of every node output of the mixed ONNX graph."""
    import onnx
    names = {onnx.TensorProto.FLOAT: "fp32", onnx.TensorProto.FLOAT16: "fp16",
             onnx.TensorProto.INT64: "int64",
             onnx.TensorProto.INT32: "int32", onnx.TensorProto.BOOL: "bool"}
    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(mixed_bytes))
    infos = list(model.graph.value_info) + list(model.graph.output)
    return dict((v.name, names.get(v.type.tensor_type.elem_type, "other")) for v in infos)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.tensorrt
@needs_trt
def test_strongly_typed_fp16_keeps_islands_fp32(models, name):
    from stages.device import trt_builder, trt_precision as tp
    from stages.device.trt_progress import BuildState, make_logger
    import onnx
    _, mixed, islands = models(name)
    # the converter renames their outputs in the mixed graph
    island_nodes = set(isl["node"] for isl in islands)
    island_outputs = set(t for n in onnx.load_from_string(mixed).graph.node
                         if n.name in island_nodes
                         for t in n.output)
    logger = make_logger(TRT, [], BuildState())
    builder = TRT.Builder(logger)
    network = builder.create_network(tp.network_flags(TRT, builder, "strong"))
    parser = trt_builder.parse(TRT, network, logger, mixed, name)
    parsed, expected = tp.network_types(network), onnx_types(mixed)
    shared = [t for t in parsed if t in expected and expected[t] in ("fp32", "fp16")]
    rest = [t for t in shared if t not in island_outputs]
    fp16 = sum(1 for t in rest if parsed[t] == "fp16")
    found = [t for t in island_outputs if t in parsed]
    wrong_islands = sorted(t for t in found if parsed[t] != "fp32")
    differ = sorted(t for t in shared if parsed[t] != expected[t])
    record({"model": name, "parsed_float_tensors": len(shared),
            "island_tensors": len(island_outputs), "island_tensors_in_network": len(found),
            "non_island_fp16": fp16, "non_island_fp32": len(rest) - fp16,
            "islands_not_fp32": wrong_islands[:10], "types_differing_from_onnx": differ[:10]})
    assert (wrong_islands == [] and differ == [] and len(shared) > 100 and len(found) > 0.9
            * len(island_outputs))
    assert fp16 > 0.5 * len(rest)
    del parser, network
    plan, info = run_build(name + ".mixed", "fp16", mixed, islands)
    assert len(plan) > 1e6 and info["precision"]["typing"] == "strong"
