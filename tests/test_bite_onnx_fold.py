"""The onnx link's newer decisions (issue 25, round 2): the opset the export uses (raised to 17
for LayerNormalization only where the target's parser takes it), which parser tables take
LayerNormalization, the decode-head fold's summary line, and parity refusing non-finite logits
with the image and ONNX Runtime named."""

import json

import numpy as np
import pytest

from runtime.errors import NonFiniteError
from stages.common.errors import GateError
from stages.host import onnx_gate
from stages.host.onnx_export import _fold_line, parity
from test_bite_compare import LABELS, fake_onnxruntime, make_parity_golden, parity_logits


def opset_for(target, mode, opset=13):
    return onnx_gate.export_opset({"opset": opset, "layer_norm": mode, "target_tensorrt": target})


@pytest.mark.parametrize("target,mode,expected", [
    ("8.2", "auto", 13), ("8.5", "auto", 13), ("8.6", "auto", 17), ("10", "auto", 17),
    ("10", "native", 17), ("10", "decomposed", 13), ("8.2", "decomposed", 13)])
def test_the_opset_is_raised_to_17_only_where_layer_norm_is_wanted_and_parsed(
        target, mode, expected):
    assert opset_for(target, mode) == expected


@pytest.mark.parametrize("mode", ["auto", "native", "decomposed"])
def test_an_opset_of_17_or_more_is_exported_as_set_and_left_to_the_gate(mode):
    for target in ("8.5", "10"):
        assert opset_for(target, mode, 17) == 17
        assert opset_for(target, mode, 18) == 18
    assert opset_for("10", mode, 16) == {"decomposed": 16}.get(mode, 17)


def test_native_layer_norm_on_a_parser_without_it_is_refused_in_one_sentence():
    with pytest.raises(GateError) as e:
        opset_for("8.5", "native")
    assert str(e.value) == (
        "onnx.layer_norm is native, but TensorRT 8.5's ONNX parser has no LayerNormalization (it "
        "needs TensorRT 8.6 or later): set onnx.layer_norm: auto or decomposed in pipeline.yaml.")


def test_which_shipped_tables_parse_layer_norm():
    # 8.4 and 8.5 reach opset 17 without the operator; 8.6 has it exactly at opset 17
    assert [t for t in ("8.0", "8.2", "8.4", "8.5", "8.6", "10", "11", "rtx")
            if onnx_gate.parses_layer_norm(t)] == ["8.6", "10", "11", "rtx"]


def test_a_table_listing_layer_norm_below_opset_17_cannot_parse_it(tmp_path, monkeypatch):
    for name, supported, top in (("low", ["LayerNormalization"], 16),
                                 ("at", ["LayerNormalization", "Relu"], 17),
                                 ("without", ["Relu"], 18)):
        (tmp_path / ("tensorrt-%s.json" % name)).write_text(json.dumps(
            {"supported": supported, "opset_min": 7, "opset_max": top}))
    monkeypatch.setattr(onnx_gate, "TABLES", str(tmp_path))
    assert [t for t in ("low", "at", "without") if onnx_gate.parses_layer_norm(t)] == ["at"]
    assert opset_for("low", "auto") == 13


# macs at a rounding boundary of %.3f GMAC: 1.234500001 prints 1.235, a slightly smaller
# divisor or a swapped count would not
HEAD_MACS = {"folded": 1234500001, "unfolded": 2469000003, "ratio": 2.0}


def test_the_fold_line_of_a_folded_head():
    line = _fold_line({"folded": True, "macs": HEAD_MACS})
    assert line == ("onnx: decode head folded: 1.235 GMAC; the unfolded graph: 2.469 GMAC "
                    "(2.00x)")


def test_the_fold_line_of_an_unfolded_head_says_how_to_fold_it():
    macs = dict(HEAD_MACS, ratio=1.99999)
    line = _fold_line({"folded": False, "macs": macs})
    assert line == ("onnx: decode head not folded (onnx.fold: false): 2.469 GMAC; the folded "
                    "graph: 1.235 GMAC (2.00x)")


@pytest.mark.parametrize("kind,value", [("NaN", np.nan), ("infinite", np.inf)])
def test_parity_refuses_non_finite_logits_naming_the_image_and_onnx_runtime(
        tmp_path, monkeypatch, kind, value):
    golden = make_parity_golden(tmp_path)
    bad = parity_logits()
    bad[0, 2, 3, 3] = value
    fake_onnxruntime(monkeypatch, [parity_logits(), bad, parity_logits()])
    with pytest.raises(NonFiniteError) as e:
        parity("model.onnx", golden, {"max_abs": 1.0, "mask_agreement": 0.0}, LABELS)
    assert str(e.value) == (
        "The model produces %s logits on img1.jpg (model.onnx in ONNX Runtime): its weights are "
        "damaged; restore the checkout (re-download model.safetensors), then run `doit checkout "
        "golden`." % kind)
