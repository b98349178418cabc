"""Issue 22: the decode-head fold is exact for any SegFormer shape, the MAC counter counts what
it should, the unfolded count recorded in the sidecar is a real unfolded export's count, and the
per-target export puts LayerNormalization only where the target's parser takes it."""
import json
import os

import numpy as np
import pytest

from conftest import ROOT, doit, edit_yaml, executed

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper  # noqa: E402

from stages.common.errors import GateError  # noqa: E402
from stages.host import onnx_gate  # noqa: E402
from stages.host.families.segformer_fold import (  # noqa: E402
    count_macs, fold_decode_head, fold_record)

EMBEDDED = os.path.join(ROOT, "models", "segformer-tiny-sidewalk")


def _random_segformer(hidden_sizes, decoder, labels, seed):
    torch.manual_seed(seed)
    config = transformers.SegformerConfig(
        hidden_sizes=hidden_sizes, decoder_hidden_size=decoder, num_labels=labels,
        depths=[1] * len(hidden_sizes), num_attention_heads=[1] * len(hidden_sizes),
        sr_ratios=[8, 4, 2, 1][:len(hidden_sizes)], num_encoder_blocks=len(hidden_sizes),
        patch_sizes=[7, 3, 3, 3][:len(hidden_sizes)], strides=[4, 2, 2, 2][:len(hidden_sizes)],
        mlp_ratios=[2] * len(hidden_sizes))
    model = transformers.SegformerForSemanticSegmentation(config)
    bn = model.decode_head.batch_norm  # non-trivial running statistics and affine terms
    with torch.no_grad():
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.2, 3.0)
        bn.weight.normal_(1, 0.3)
        bn.bias.normal_(0, 0.3)
        for mlp in model.decode_head.linear_projections:
            mlp.proj.bias.normal_(0, 0.5)
    return model.eval()


@pytest.mark.parametrize("hidden,decoder,labels,size,seed", [
    ([32, 64, 160, 256], 64, 35, (128, 128), 0),   # B0's widths, 35 labels
    ([16, 24, 40, 48], 40, 3, (96, 160), 1),       # odd sizes, few labels, not square
    ([8, 16, 24, 32], 16, 150, (67, 93), 2),       # input not a multiple of 32, many labels
])
def test_fold_matches_the_unfolded_head(hidden, decoder, labels, size, seed):
    model = _random_segformer(hidden, decoder, labels, seed)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        before = model(pixel_values=x).logits
        after = fold_decode_head(model)(pixel_values=x).logits
    assert after.shape == before.shape
    scale = before.abs().max().item()
    assert (after - before).abs().max().item() <= 1e-5 * max(scale, 1.0)
    assert torch.equal(after.argmax(1), before.argmax(1))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.decode_head.modules())


def _tensor(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _init(name, shape):
    return helper.make_tensor(name, TensorProto.FLOAT, shape,
                              np.zeros(int(np.prod(shape)), np.float32).tolist())


def test_count_macs_of_conv_matmul_and_gemm():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),  # 3x3, 3->8, 10x12
             helper.make_node("Conv", ["c", "g"], ["d"], group=4),             # 1x1 grouped 8->8
             helper.make_node("Reshape", ["d", "s"], ["r"]),                   # 1x8x120 -> 120x8
             helper.make_node("MatMul", ["r", "m"], ["mm"]),                   # 120x8 @ 8x5
             helper.make_node("Gemm", ["mm", "k"], ["y"], transB=1)]           # 120x5 @ (7x5)^T
    graph = helper.make_graph(
        nodes, "g", [_tensor("x", [1, 3, 10, 12])], [_tensor("y", [120, 7])],
        [_init("w", [8, 3, 3, 3]), _init("g", [8, 2, 1, 1]), _init("m", [8, 5]),
         _init("k", [7, 5]), helper.make_tensor("s", TensorProto.INT64, [2], [120, 8])])
    macs = count_macs(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                        ir_version=8))
    assert macs["by_op"] == {"Conv": 8 * 120 * 27 + 8 * 120 * 2, "MatMul": 120 * 5 * 8,
                             "Gemm": 120 * 7 * 5}
    assert macs["total"] == sum(macs["by_op"].values())


@pytest.fixture(scope="module")
def embedded_exports(tmp_path_factory):
    """The embedded model exported folded and unfolded through the onnx link's own path."""
    from stages.host.checkout import validate
    from stages.host.onnx_export import check_and_simplify, export_graph
    folder = tmp_path_factory.mktemp("fold")
    manifest = validate(EMBEDDED, False)  # the checkout link's own manifest
    out = {}
    for folded in (True, False):
        path = str(folder / ("f%d.onnx" % folded))
        export_graph(EMBEDDED, manifest, 13, path, fold=folded)
        out[folded] = check_and_simplify(path, True)[0]
    return out


def test_recorded_macs_are_the_real_exports_counts(embedded_exports):
    folded, unfolded = embedded_exports[True], embedded_exports[False]
    real = {"folded": count_macs(folded)["total"], "unfolded": count_macs(unfolded)["total"]}
    for graph, is_folded in ((folded, True), (unfolded, False)):
        record = fold_record(graph, EMBEDDED, is_folded)
        assert record["folded"] is is_folded
        assert record["macs"]["folded"] == real["folded"]
        assert record["macs"]["unfolded"] == real["unfolded"]
    assert real["unfolded"] / real["folded"] >= 1.9  # issue 22's target for the embedded model
    ops = [n.op_type for n in folded.graph.node]
    assert "BatchNormalization" not in ops and len(ops) < len(unfolded.graph.node)


@pytest.mark.parametrize("target,mode,opset", [
    ("8.0", "auto", 13), ("8.2", "auto", 13), ("8.4", "auto", 13), ("8.5", "auto", 13),
    ("8.6", "auto", 17), ("10", "auto", 17), ("11", "auto", 17), ("rtx", "auto", 17),
    ("10", "decomposed", 13), ("rtx", "native", 17)])
def test_export_opset_per_target(target, mode, opset):
    cfg = {"opset": 13, "layer_norm": mode, "target_tensorrt": target}
    assert onnx_gate.export_opset(cfg) == opset


def test_native_layer_norm_refused_where_the_parser_lacks_it():
    with pytest.raises(GateError, match="onnx.layer_norm"):
        onnx_gate.export_opset({"opset": 13, "layer_norm": "native", "target_tensorrt": "8.2"})


def test_layer_norm_rows_of_the_gate_tables():
    """onnx-tensorrt's operators.md lists LayerNormalization from 8.6-GA on; 8.0-8.5 lack it."""
    for target in ("8.0", "8.2", "8.4", "8.5"):
        assert not onnx_gate.parses_layer_norm(target), target
    for target in ("8.6", "10", "11", "rtx"):
        assert onnx_gate.parses_layer_norm(target), target
        with open(os.path.join(onnx_gate.TABLES, "tensorrt-%s.json" % target)) as f:
            assert json.load(f)["opset_max"] >= 17


def test_switching_fold_off_reruns_onnx_and_what_reads_the_graph(project):
    edit_yaml(os.path.join(project, "pipeline.yaml"), "fold: true ", "fold: false ")
    code, out = doit(project)
    assert code == 0, out
    ran = executed(out)
    assert "onnx" in ran and "precision" in ran and "verify" in ran, out
    assert "checkout" not in ran and "golden" not in ran, out
    with open(os.path.join(project, "artifacts", "onnx", "model.json")) as f:
        head = json.load(f)["decode_head"]
    assert head["folded"] is False and head["macs"]["ratio"] >= 1.9


def test_target_that_parses_layer_norm_gets_it_as_one_node(project):
    edit_yaml(os.path.join(project, "pipeline.yaml"), 'target_tensorrt: "8.2"',
              'target_tensorrt: "10"')
    code, out = doit(project)
    assert code == 0, out
    with open(os.path.join(project, "artifacts", "onnx", "report.json")) as f:
        report = json.load(f)
    assert report["export_opset"] == 17 and "LayerNormalization" in report["gate"]["ops"]
    assert "Pow" not in report["gate"]["ops"]  # no decomposed LayerNorm left
    with open(os.path.join(project, "artifacts", "onnx", "model.json")) as f:
        groups = json.load(f)["precision_groups"]
    assert groups["LayerNorm"]["count"] > 0


def test_rtx_fold_variants_prepare_on_the_host(tmp_path):
    """The host-side half of tests/test_trt_real_fold.py, on the embedded model."""
    pytest.importorskip("onnxconverter_common")
    from fold_variants import variants
    v = variants(EMBEDDED, 256, str(tmp_path))
    assert v["unfolded"]["macs"] / v["folded"]["macs"] >= 1.9
    assert v["folded_ln"]["macs"] == v["folded"]["macs"]
    assert v["folded"]["nodes"] < v["unfolded"]["nodes"]
    assert "LayerNormalization" in v["folded_ln"]["ops"] and "Pow" not in v["folded_ln"]["ops"]
    assert v["folded_ln"]["nodes"] < v["folded"]["nodes"]
    ln = [i for i in v["folded_ln"]["islands"] if i["op"] == "LayerNormalization"]
    assert ln and all(i["op"] in ("LayerNormalization", "Softmax")
                      for i in v["folded_ln"]["islands"])


def test_bench_compares_folded_and_unfolded_side_by_side(project):
    code, out = doit(project, "bench", "n=2", "cpu=0")
    assert code == 0, out
    assert "decode-head fold on the CPU" in out, out
    bench = os.path.join(project, "artifacts", "bench")
    report = [f for f in os.listdir(bench) if f.endswith(".json")]
    with open(os.path.join(bench, report[0])) as f:
        r = json.load(f)["fold"]
    assert r["model_onnx_is"] == "folded" and r["mac_ratio"] >= 1.9 and "CPU: " in r["device"]
    for run in (r["default_threads"], r["one_thread"]):
        assert run["folded_ms"]["n"] == 5 and run["speedup"] > 0
    assert r["masks_vs_golden"]["folded"] > 0.999
    other = os.path.join(bench, "fold", "model.unfolded.onnx")
    assert count_macs(onnx.load(other))["total"] == r["macs"]["unfolded"]
    stamp = os.path.getmtime(other)
    code, out = doit(project, "bench", "n=1", "cpu=0")
    assert code == 0 and os.path.getmtime(other) == stamp, out  # same model.onnx: reused
