"""The onnx link: TensorRT gate, parity that fails (never warns), determinism, the B4 scale test."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import doit, edit_yaml, executed
from stages.host import onnx_gate
from stages.common.errors import GateError, ToleranceError

pytestmark = pytest.mark.host


def layernorm_graph(opset):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [8], [1.0] * 8)
    node = helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=-1, name="ln")
    graph = helper.make_graph([node], "g", [x], [y], [scale])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_layernorm_at_opset_17_fails_the_8_2_gate_and_passes_10():
    model = layernorm_graph(17)
    with pytest.raises(GateError) as e:
        onnx_gate.check(model, "8.2")
    msg = str(e.value)
    assert "opset 17" in msg and "LayerNormalization" in msg and "onnx.opset: 13" in msg
    assert onnx_gate.check(model, "10")["unsupported_ops"] == []


def test_tables_cite_their_source():
    for target in ("8.2", "8.4", "8.5", "8.6", "10"):
        table = onnx_gate.load_table(target)
        assert table["source"].startswith("https://github.com/onnx/onnx-tensorrt/blob/")
        assert len(table["source_commit"]) == 40 and "Conv" in table["supported"]


def test_report_figures(built_project):
    with open(os.path.join(built_project, "artifacts", "onnx", "report.json")) as f:
        r = json.load(f)
    assert (r["opset"] == 13 and r["gate"]["target_tensorrt"] == "8.2"
            and r["gate"]["unsupported_ops"] == [])
    assert r["node_counts"]["nodes_final"] < r["node_counts"]["nodes_exported"]
    for row in r["parity"]["images"]:
        assert (row["max_abs"] <= 1e-3 and row["mask_agreement"] >= 0.999
                and row["argmax_agreement"] >= 0.999)
    assert set(r["versions"]) >= {"torch", "onnx", "onnxruntime"} and len(r["onnx_sha256"]) == 64


def test_perturbed_onnx_fails_parity(built_project, tmp_path):
    from onnx import numpy_helper
    from stages.host.onnx_export import parity
    model = onnx.load(os.path.join(built_project, "artifacts", "onnx", "model.onnx"))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = numpy_helper.to_array(init).copy()
    arr += np.random.RandomState(0).normal(0, 0.05, arr.shape).astype(arr.dtype)
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    path = str(tmp_path / "perturbed.onnx")
    onnx.save(model, path)
    golden = os.path.join(built_project, "artifacts", "golden", "golden.json")
    cwd = os.getcwd()
    os.chdir(built_project)
    try:
        with pytest.raises(ToleranceError) as e:
            parity(path, golden, {"max_abs": 1e-3, "mask_agreement": 0.999},
                   ["c%d" % i for i in range(35)])
    finally:
        os.chdir(cwd)
    assert "ONNX parity failed" in str(e.value) and "onnx.max_abs" in str(e.value)


def test_export_is_deterministic(project):
    path = os.path.join(project, "artifacts", "onnx", "report.json")
    with open(path) as f:
        first = json.load(f)["onnx_sha256"]
    code, out = doit(project, "forget", "onnx")
    code, out = doit(project, "onnx")
    assert code == 0 and executed(out) == ["onnx"], out
    with open(path) as f:
        assert json.load(f)["onnx_sha256"] == first


def test_opset_above_the_target_fails_with_the_fix(project):
    edit_yaml(os.path.join(project, "pipeline.yaml"), "opset: 13 ", "opset: 17 ")
    before = os.path.getmtime(os.path.join(project, "artifacts", "onnx", "model.onnx"))
    code, out = doit(project, "onnx")
    assert code != 0 and "Traceback" not in out
    assert "fails the TensorRT 8.2 gate" in out and "opset 17" in out
    assert os.path.getmtime(os.path.join(project, "artifacts", "onnx", "model.onnx")) == before


@pytest.mark.slow
def test_segformer_b4_architecture_exports_through_the_same_code(tmp_path):
    """SegFormer-B4 (depths 3/8/27/3, hidden 64/128/320/512, decoder 768, 35 labels, 512x512),
    random weights, exported by export_graph; records time and peak memory."""
    import resource
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    from stages.host.onnx_export import check_and_simplify, export_graph
    cfg = SegformerConfig(depths=[3, 8, 27, 3], hidden_sizes=[64, 128, 320, 512],
                          decoder_hidden_size=768, num_labels=35, num_attention_heads=[1, 2, 5, 8])
    model_dir = str(tmp_path / "b4")
    SegformerForSemanticSegmentation(cfg).save_pretrained(model_dir)
    manifest = {"input": {"height": 512, "width": 512}, "weights": {"format": "safetensors"}}
    seconds = export_graph(model_dir, manifest, 13, str(tmp_path / "b4.onnx"))
    model, counts = check_and_simplify(str(tmp_path / "b4.onnx"), True)
    gate = onnx_gate.check(model, "8.2")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("B4 export %.1f s, peak RSS %.0f MB, nodes %s, size %.0f MB" % (
        seconds, peak_mb, counts, os.path.getsize(str(tmp_path / "b4.onnx")) / 1e6))
    assert gate["unsupported_ops"] == [] and peak_mb < 20000
