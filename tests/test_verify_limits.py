"""Issue 23: verify's fp16 limits close the loop with the precision link. Per limit: the user's
explicit value, else precision.json's derived one (when made from this model.onnx), else the
schema default; report.json records each source; an explicit limit stricter than the derived one
is named in one line. The config loader records which keys were explicit."""
import json
import os

import pytest

from stages.common.errors import ToleranceError
from stages.common.layout import Layout
from test_bite_compare import C, FP16, FakeSegmenter, delta_one, make_golden

DERIVED = {"logits_max_abs": 0.02, "logits_mean_abs": 0.004, "mask_agreement": 0.997,
           "miou": 0.95, "margin": "4 x the emulated error"}


def place_link(tmp_path, onnx_sha="a" * 64, made_from="a" * 64, limits=DERIVED):
    """model.onnx's sidecar (naming onnx_sha) and precision.json (made from made_from)."""
    folder = tmp_path / "onnx"
    folder.mkdir(exist_ok=True)
    meta = {"format": "segformer-sidecar/1", "labels": [], "palette": [], "input": {},
            "output": {}, "preprocess": {}, "onnx_sha256": onnx_sha}
    (folder / "model.json").write_text(json.dumps(meta))
    (folder / "precision.json").write_text(json.dumps({"onnx_sha256": made_from,
                                                       "limits": limits}))


def verify(tmp_path, monkeypatch, seg, explicit=None, fp16=None):
    from stages.device import select
    from stages.device import verify as stage

    layout = Layout({"artifacts": str(tmp_path), "golden": {"images": ["a", "b", "c"]}})
    cfg = {"verify": {"fp32": dict(FP16), "fp16": dict(fp16 or FP16)},
           "explicit": dict(explicit or {})}
    monkeypatch.setattr(select, "open_runtime", lambda given, backend: seg)
    try:
        stage.run_verify(cfg, layout, "auto")
        failed = None
    except ToleranceError as e:
        failed = str(e)
    with open(os.path.join(layout.verify_dir, "report.json")) as f:
        return json.load(f), failed


def fp16_seg(records, logits_error=0.03):
    """An fp16 runtime whose middle image's logits are off by `logits_error` at one value."""
    return FakeSegmenter(records, "fp16", bad_index=1,
                         logits_delta=delta_one(logits_error, (1, C, 8, 8)))


def test_derived_limits_apply_where_the_user_set_none(tmp_path, monkeypatch):
    records = make_golden(tmp_path)
    place_link(tmp_path)
    report, failed = verify(tmp_path, monkeypatch, fp16_seg(records))
    derived = dict((k, v) for k, v in DERIVED.items() if k != "margin")
    assert report["limits"] == dict(derived, input_max_abs=FP16["input_max_abs"])
    assert report["limit_sources"] == dict(dict.fromkeys(derived, "derived"),
                                           input_max_abs="default")
    # 0.03 is within the default 0.05 but not within the derived 0.02
    assert failed and "logits_max_abs 0.03 vs limit 0.02" in failed and not report["passed"]


def test_an_explicit_limit_wins_and_a_stricter_one_is_named(tmp_path, monkeypatch, capsys):
    records = make_golden(tmp_path)
    place_link(tmp_path, limits=dict(DERIVED, logits_max_abs=0.048))
    explicit = {"verify.fp16.logits_max_abs": "pipeline.yaml",
                "verify.fp16.miou": "the command line"}
    fp16 = dict(FP16, logits_max_abs=0.01, miou=0.5)  # miou explicit but looser: no line
    report, failed = verify(tmp_path, monkeypatch, fp16_seg(records), explicit, fp16)
    out = capsys.readouterr().out
    assert ("verify: verify.fp16.logits_max_abs 0.01 (pipeline.yaml) is stricter than the 0.048 "
            "the fp16 preview supports: expect this check to fail.") in out.splitlines()
    assert len([line for line in out.splitlines() if "stricter" in line]) == 1
    assert report["limits"]["logits_max_abs"] == 0.01 and report["limits"]["miou"] == 0.5
    assert report["limits"]["mask_agreement"] == DERIVED["mask_agreement"]
    assert report["limit_sources"] == {"input_max_abs": "default", "logits_max_abs": "explicit",
                                       "logits_mean_abs": "derived", "mask_agreement": "derived",
                                       "miou": "explicit"}
    assert failed and "logits_max_abs 0.03 vs limit 0.01" in failed


def test_precision_json_of_another_model_onnx_is_not_used(tmp_path, monkeypatch, capsys):
    records = make_golden(tmp_path)
    place_link(tmp_path, made_from="b" * 64)
    report, failed = verify(tmp_path, monkeypatch, fp16_seg(records))
    assert failed is None and report["passed"] and report["limits"] == FP16
    assert set(report["limit_sources"].values()) == {"default"}
    assert "was made from another model.onnx" in capsys.readouterr().out


def test_a_bundle_without_precision_json_uses_the_defaults(tmp_path, monkeypatch):
    records = make_golden(tmp_path)
    place_link(tmp_path)
    os.remove(str(tmp_path / "onnx" / "precision.json"))
    report, failed = verify(tmp_path, monkeypatch, fp16_seg(records))
    assert failed is None and report["limits"] == FP16
    assert set(report["limit_sources"].values()) == {"default"}


def test_fp32_engines_never_take_the_fp16_preview_limits(tmp_path, monkeypatch):
    records = make_golden(tmp_path)
    place_link(tmp_path)
    report, _ = verify(tmp_path, monkeypatch, FakeSegmenter(records, "fp32"))
    assert report["limits"] == FP16 and set(report["limit_sources"].values()) == {"default"}


def test_the_loader_records_the_keys_the_file_and_the_command_line_set(tmp_path, monkeypatch):
    from stages.common import config
    from test_bite_limits import png

    monkeypatch.setattr(config, "ROOT", str(tmp_path))
    (tmp_path / "examples").mkdir()
    png(tmp_path / "examples" / "street_1920x1080.jpg", 4, 4)
    path = str(tmp_path / "p.yaml")
    with open(path, "w") as f:
        f.write("verify:\n  fp16: {miou: 0.5}\ninfer:\n  alpha: 0.3\n")
    cfg = config.load(path, {"n": "2"})
    assert cfg["explicit"] == {"verify.fp16.miou": path, "infer.alpha": path,
                               "infer.n": "the command line",  # n= sets both
                               "bench.iterations": "the command line"}
    assert cfg["verify"]["fp16"]["miou"] == 0.5 and cfg["verify"]["fp16"]["logits_max_abs"] == 0.05


def test_the_shipped_pipeline_sets_no_fp16_limit_and_sections_stay_as_they_were(tmp_path):
    from stages.common.config import load, slice_of
    from stages.common.schema import SCHEMA

    cfg = load("pipeline.yaml")
    assert not [k for k in cfg["explicit"] if k.startswith("verify.fp16.")]
    assert set(cfg) == set(SCHEMA) | {"explicit"}  # explicit is no section: no slice holds it
    assert "explicit" not in slice_of(cfg, *SCHEMA)


def test_verify_reruns_when_the_derived_limits_or_the_explicit_keys_change(tmp_path):
    from stages.device.limits import in_effect

    layout = Layout({"artifacts": str(tmp_path), "golden": {"images": ["a"]}})
    cfg = {"verify": {"fp16": dict(FP16)}, "explicit": {}}
    before = in_effect(cfg, layout, "engine")
    place_link(tmp_path)
    derived = in_effect(cfg, layout, "engine")
    place_link(tmp_path, limits=dict(DERIVED, miou=0.9))
    again = in_effect(cfg, layout, "engine")
    cfg["explicit"] = {"verify.fp16.miou": "pipeline.yaml"}
    explicit = in_effect(cfg, layout, "engine")
    digests = [json.dumps(s, sort_keys=True) for s in (before, derived, again, explicit)]
    assert len(set(digests)) == 4
    assert in_effect(cfg, layout, None)["derived"] is None  # the fp32 ONNX model: not its limits
    place_link(tmp_path, made_from="b" * 64)  # stale: as if there were none
    assert in_effect(cfg, layout, "engine")["derived"] is None


def test_verify_settings_hold_the_limits_in_effect(tmp_path):
    from stages.device.settings import verify_settings

    layout = Layout({"artifacts": str(tmp_path), "golden": {"images": ["a"]}})
    cfg = {"verify": {"fp16": dict(FP16)}, "explicit": {"verify.fp16.miou": "pipeline.yaml",
                                                         "infer.n": "the command line"}}
    assert verify_settings(cfg, layout, "onnxruntime")["limits"] == {
        "explicit": ["verify.fp16.miou"], "derived": None}


@pytest.mark.parametrize("value,supported,key,stricter", [
    (0.01, 0.048, "logits_max_abs", True), (0.048, 0.048, "logits_max_abs", False),
    (0.999, 0.99, "miou", True), (0.99, 0.99, "miou", False), (0.5, 0.99, "miou", False)])
def test_stricter_means_an_engine_within_the_preview_could_fail(value, supported, key, stricter):
    from stages.device.limits import stricter as is_stricter

    assert is_stricter(key, value, supported) is stricter
