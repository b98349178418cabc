"""verify's own refusals and defaults (issue 25, round 2): NaN or infinite logits from the backend
are refused naming the backend, the image and the model (or a generic word where the backend
has no such attribute), each side of a comparison is checked for non-finite values with a
sentence naming that side, and `doit verify` with no backend given opens verify.backend."""

import types

import numpy as np
import pytest

from runtime.errors import NonFiniteError
from stages.common import compare
from stages.device import verify
from test_bite_compare import C, FP32, FakeSegmenter, LABELS, make_golden, run_verify

WHERE_FROM = "a comparison with them could never fail; find what produced them."


@pytest.mark.parametrize("kind,value", [("NaN", np.nan), ("infinite", -np.inf)])
def test_either_side_of_a_comparison_holding_non_finite_values_is_named(kind, value):
    bad = np.zeros((1, 2, 2, 2), np.float32)
    bad[0, 1, 1, 0] = value
    good = np.zeros_like(bad)
    with pytest.raises(NonFiniteError) as e:
        compare.abs_diff(bad, good)
    assert str(e.value) == "The compared values hold %s numbers: %s" % (kind, WHERE_FROM)
    with pytest.raises(NonFiniteError) as e:
        compare.abs_diff(good, bad)
    assert str(e.value) == "The reference values hold %s numbers: %s" % (kind, WHERE_FROM)


class Backend(object):
    """A backend returning the golden logits with one value replaced by `value`; `name` and
    `source` are set only when given (a third-party backend may have neither)."""

    input_shape, output_shape = (1, 3, 8, 8), (1, C, 8, 8)

    def __init__(self, logits, value, **named):
        self.logits, self.value = logits, value
        for key, given in named.items():
            setattr(self, key, given)

    def infer(self, tensor):
        out = self.logits.copy()
        out.flat[5] = self.value
        return out


def check_with(tmp_path, value, **named):
    from runtime.golden import load_case

    rec = make_golden(tmp_path, n=1)[0]
    golden_logits = load_case(rec)[1]
    seg = types.SimpleNamespace(
        backend=Backend(golden_logits, value, **named),
        labels=LABELS,
        preprocess=lambda image: load_case(rec)[0],
        segment=lambda image: types.SimpleNamespace(mask=load_case(rec)[2]),
    )
    image = np.zeros((4, 4, 3), np.uint8)
    return rec, lambda: verify.check_case(seg, rec, image)


FIX = ("the engine or its weights are damaged, or fp16 overflows; rebuild it with `doit "
       "build_engine`, or set engine.precision: fp32.")


@pytest.mark.parametrize("kind,value", [("NaN", np.nan), ("infinite", np.inf)])
def test_non_finite_logits_name_the_backend_the_image_and_the_model(tmp_path, kind, value):
    rec, check = check_with(tmp_path, value, name="tensorrt", source="model.fp16.engine")
    with pytest.raises(NonFiniteError) as e:
        check()
    assert str(e.value) == (
        "The tensorrt backend produces %s logits on %s (model.fp16.engine): %s"
        % (kind, rec["source"], FIX))


def test_a_backend_without_a_name_or_source_is_still_refused_in_words(tmp_path):
    rec, check = check_with(tmp_path, np.nan)
    with pytest.raises(NonFiniteError) as e:
        check()
    assert str(e.value) == "The runtime backend produces NaN logits on %s (its model): %s" % (
        rec["source"], FIX)


def test_finite_logits_pass_the_check_and_are_measured(tmp_path):
    rec, check = check_with(tmp_path, 0.25, name="onnxruntime", source="model.onnx")
    row = check()[0]
    assert row["image"] == rec["source"] and row["input_max_abs"] == 0.0
    assert row["logits_max_abs"] > 0.0 and row["logits_mean_abs"] > 0.0


def verify_opening(tmp_path, monkeypatch, given, configured):
    """run_verify with backend `given` (None: not given) and verify.backend `configured`: the
    backend open_runtime was asked for."""
    from stages.common.layout import Layout
    from stages.device import select

    records = make_golden(tmp_path)
    layout = Layout({"artifacts": str(tmp_path), "golden": {"images": ["a", "b", "c"]}})
    cfg = {"verify": {"backend": configured, "fp32": dict(FP32), "fp16": dict(FP32)}}
    asked = []

    def open_runtime(given_layout, backend):
        asked.append(backend)
        return FakeSegmenter(records)

    monkeypatch.setattr(select, "open_runtime", open_runtime)
    verify.run_verify(cfg, layout, given)
    return asked


def test_verify_opens_the_configured_backend_unless_one_is_given(tmp_path, monkeypatch):
    assert verify_opening(tmp_path / "a", monkeypatch, None, "onnxruntime") == ["onnxruntime"]
    assert verify_opening(tmp_path / "b", monkeypatch, "tensorrt", "onnxruntime") == ["tensorrt"]


def test_the_report_records_where_each_limit_came_from(tmp_path, monkeypatch):
    report = run_verify(tmp_path, monkeypatch, FakeSegmenter(make_golden(tmp_path)))
    assert report["passed"] and report["limits"] == FP32
    assert report["limit_sources"] == dict.fromkeys(FP32, "default")
