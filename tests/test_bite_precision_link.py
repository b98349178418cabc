"""The precision link end to end, in this process: run_precision on a hand-built project (a small
ONNX graph, two golden cases, the settings slice, tmp folders), fast enough for the mutation run.
What precision.json records (islands by their model.onnx names, the limits from the worst mixed
row times the margin, the verdict), model.mixed.onnx, the fp32 skip, and each refusal."""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

LABELS = ["a", "b"]
# two images (1x4 pixels, 2 channels = the 2 classes' inputs): 300 and 260 square beyond 65504
IMAGES = [np.array([[[[300, 2, 300, 50]], [[100, 260, 3, 10]]]], np.float32),
          np.array([[[[40, 280, 5, 70]], [[3, 4, 270, 20]]]], np.float32)]


def _io(name, shape=(1, 2, 1, 4)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _const(name, value):
    return numpy_helper.from_array(np.array(value, np.float32), name)


def _model(square="square", tail=()):
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
    inits = [_const("k", 1e-4), _const("w", 1000.0), _const("one", 1.0), _const("big", 1000.0),
             _const("cent", 0.01)]
    graph = helper.make_graph(nodes, "g", [_io("pixel_values")], [_io("logits")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _tied_model():
    """As _model, with 1000 + t / 100 before the Softmax: the classes differ by less than 0.1
    there, and fp16 stores 1000 +- 0.1 as 1000 (its step is 0.5 there), so they tie in every fp16
    preview, whatever the islands (lift is no candidate)."""
    return _model(tail=[helper.make_node("Mul", ["t", "cent"], ["v"], name="flatten"),
                        helper.make_node("Add", ["v", "big"], ["u"], name="lift")])


def _golden(model, x):
    import onnxruntime as ort
    from runtime.reference import upsample_argmax
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"pixel_values": x})[0]
    return logits, upsample_argmax(logits, x.shape[2], x.shape[3])


def _npy(array):
    import io
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def project(tmp_path, monkeypatch, model=None, images=IMAGES):
    """A project in tmp_path (the working folder): model.onnx, the manifest's labels, and
    golden.json with one case folder per image (the fp32 model's logits and mask)."""
    from runtime import files, palette
    from stages.common.layout import Layout
    model = model or _model()
    monkeypatch.chdir(tmp_path)
    layout = Layout({"artifacts": "artifacts", "golden": {"images": []}})
    files.write_bytes(layout.onnx_model, model.SerializeToString())
    files.write_json(layout.manifest, {"labels": LABELS})
    records = []
    for i, x in enumerate(images):
        logits, mask = _golden(model, x)
        folder = layout.golden_case_dir(i, "img%d.jpg" % i)
        blobs = {"input.npy": _npy(x), "logits.npy": _npy(logits),
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
    """The link's slice of the config (as dodo's task_precision passes it)."""
    return {"engine": {"precision": precision, "keep_fp32": list(keep_fp32)},
            "precision": {"margin": margin, "budget_minutes": minutes, "budget_mb": mb},
            "verify": {"fp16": dict(FP16, **fp16)}, "explicit": explicit or {}}


def _run(cfg, layout):
    from stages.host.precision_link import run_precision
    return run_precision(cfg, layout)


def _read(path):
    from runtime import files
    return files.read_json(path)


# --- a search that finds islands: the files and the record -----------------------------------

def test_the_link_writes_the_mixed_model_and_records_the_islands_by_model_onnx_names(
        tmp_path, monkeypatch, capsys):
    from runtime import files
    from stages.host import fp16_convert
    from stages.host.fp16_emulate import tensor_types
    layout = project(tmp_path, monkeypatch)
    _run(settings(), layout)
    report = _read(layout.precision_report)
    assert sorted(os.listdir(layout.onnx_dir)) == ["model.mixed.onnx", "model.onnx",
                                                   "precision.json"]  # no temp file left
    assert report["format"] == "segformer-precision/1" and report["tool"] == fp16_convert.tool()
    assert report["onnx_sha256"] == files.sha256_file(layout.onnx_model)
    assert report["mixed_sha256"] == files.sha256_file(layout.precision_model)
    assert [(i["node"], i["op"], i["outputs"]) for i in report["islands"]] == [
        ("square", "Mul", ["h"]), ("shrink", "Mul", ["s"])]  # model.onnx's names, scan order
    assert [i["reason"] for i in report["islands"]] == [
        "max |x| 9e+04 > 65504 (output h); the preview without it misses the mask goal",
        "max |x| 9e+04 > 65504 (input h); the preview without it misses the mask goal"]
    mixed = onnx.load(layout.precision_model)
    onnx.checker.check_model(mixed)
    types, by_name = tensor_types(mixed), dict((n.name, n) for n in mixed.graph.node)
    for island in report["islands"]:  # the converter renamed them in the mixed model
        assert island["mixed_outputs"] == list(by_name[island["node"]].output)
        assert island["mixed_outputs"] != island["outputs"]
        assert [types[t] for t in island["mixed_outputs"]] == [TensorProto.FLOAT]
    assert types[by_name["grow"].output[0]] == types[by_name["soft"].input[0]] == (
        TensorProto.FLOAT16)  # the dropped candidates and the seed run in fp16
    assert [(c["node"], c["max_abs"]) for c in report["dropped"]] == [("grow", 3e5),
                                                                       ("clip", 3e5)]
    assert report["keep_fp32"] == {"Softmax": {"units": 1, "kept": 0}}
    assert report["verdict"]["kind"] == "islands" and report["verdict"]["sentence"].startswith(
        "2 fp32 island(s) keep the masks within the goal (8 previews, ")
    assert report["previews_run"] == 8 and report["goal"] == {"mask_agreement": 0.995,
                                                              "miou": 0.975}
    assert type(report["search"]["seconds"]) is float  # to a tenth of a second
    out = capsys.readouterr().out
    steps = [l.split("] ", 1)[1] for l in out.splitlines() if l.startswith("precision: [")]
    assert [s for s in steps if not s.startswith("preview ")] == [
        "step 1/4: range scan of the fp32 graph on 2 golden image(s)",
        "range scan: image 1 of 2 done", "range scan: image 2 of 2 done",
        "step 2/4: one emulation graph with 5 switchable node(s) in beyond range 4, Softmax 1",
        "step 3/4: search (naive, all islands, then drop groups; the images run one by one: the "
        "export's shape is fixed at batch 1)", "step 4/4: writing the mixed model with 2 island(s)"]
    assert ("precision: 2 fp32 island(s) chosen (2 beyond-range candidate(s) dropped, "
            "8 previews)\n") in out
    assert out.rstrip().endswith("\nprecision: " + report["verdict"]["sentence"])
    assert "precision: engine.keep_fp32 Softmax: 0 of 1 kept in fp32" in out


def test_the_record_holds_the_mixed_rows_and_limits_from_the_worst_of_them_times_the_margin(
        tmp_path, monkeypatch):
    from stages.host import precision_preview as pp, precision_verdict as pv
    layout = project(tmp_path, monkeypatch)
    _run(settings(margin=3.0, minutes=7.5, mb=90000), layout)
    report = _read(layout.precision_report)
    cases = pp.golden_cases(layout.golden_json)
    # the converter + emulation path agrees with the search's switchboard rows
    rows = pp.preview(_model(), {"square", "shrink"}, cases, LABELS)[1]
    assert report["preview"]["mixed"] == rows and [r["image"] for r in rows] == [
        "examples/img0.jpg", "examples/img1.jpg"]
    naive = report["preview"]["naive"]
    assert [r["nan"] for r in naive] == [6, 4] and naive[0]["logits_max_abs"] == float("inf")
    first, worst = rows  # the second image has the larger errors: the first is not the worst
    assert first["logits_max_abs"] < worst["logits_max_abs"]
    assert first["logits_mean_abs"] < worst["logits_mean_abs"]
    lim = report["limits"]
    assert lim["logits_max_abs"] == pytest.approx(3 * worst["logits_max_abs"])
    assert lim["logits_mean_abs"] == pytest.approx(3 * worst["logits_mean_abs"])
    assert lim == pp.derive_limits(rows, cases, 3.0)
    assert report["margins"] == pv.margins(cases, rows)
    assert report["search"]["groups"] == {"beyond range": 4, "Softmax": 1}
    assert (report["search"]["budget_minutes"], report["search"]["budget_mb"]) == (7.5, 90000)
    assert 0 <= report["search"]["seconds"] < 60 and report["search"]["peak_mb"] > 10
    assert report["checked_against"] == dict(FP16, engine_precision="fp16")
    assert report["goal"] == {"mask_agreement": 1 - 0.01 / 3, "miou": 1 - 0.05 / 3}


# --- the skip and the refusals ---------------------------------------------------------------

def test_an_fp32_engine_skips_the_search_and_says_so_in_precision_json(
        tmp_path, monkeypatch, capsys):
    from runtime import files
    layout = project(tmp_path, monkeypatch)
    os.remove(layout.golden_json)  # no scan, no preview: the golden files are not even read
    _run(settings(precision="fp32", keep_fp32=["no such group"]), layout)
    report = _read(layout.precision_report)
    text = ("skipped: engine.precision is fp32, so the engine needs no fp32 islands; set "
            "engine.precision: fp16 to choose them")
    assert report == {"format": "segformer-precision/1", "islands": [],
                      "onnx_sha256": files.sha256_file(layout.onnx_model),
                      "verdict": {"kind": "skipped", "sentence": text}}
    assert not os.path.exists(layout.precision_model)
    assert capsys.readouterr().out == "precision: " + text + "\n"


def test_an_unknown_keep_fp32_group_is_refused_before_any_file_is_read(tmp_path, monkeypatch):
    from stages.common.errors import ConfigError
    from stages.common.layout import Layout
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="engine.keep_fp32 names softmax"):
        _run(settings(keep_fp32=["softmax"]), Layout({"artifacts": "none", "golden": {
            "images": []}}))


def _old_files(layout):
    from runtime import files
    files.write_bytes(layout.precision_model, b"old mixed")
    files.write_json(layout.precision_report, {"old": True})


def _unchanged(layout):
    with open(layout.precision_model, "rb") as f:
        assert f.read() == b"old mixed"
    assert _read(layout.precision_report) == {"old": True}
    assert sorted(os.listdir(layout.onnx_dir)) == ["model.mixed.onnx", "model.onnx",
                                                   "precision.json"]


def test_a_mixed_model_that_misses_a_verify_fp16_limit_is_refused_and_writes_nothing(
        tmp_path, monkeypatch, capsys):
    from stages.host.precision_link import PrecisionError
    layout = project(tmp_path, monkeypatch)
    _old_files(layout)
    # the goal (masks) is met; the logits error (about 2e-4) misses a limit of 1e-4
    with pytest.raises(PrecisionError) as e:
        _run(settings(logits_max_abs=1e-4), layout)
    value = float(str(e.value).split("logits max abs ")[1].split(" ")[0])
    assert 1e-4 < value < 1e-3 and str(e.value) == (
        "The fp16 preview of model.mixed.onnx fails on examples/img0.jpg: logits max abs %.4g "
        "against verify.fp16.logits_max_abs 0.0001; use engine.precision: fp32, or loosen "
        "verify.fp16 in pipeline.yaml if the preview table is acceptable to you." % value)
    _unchanged(layout)
    out = capsys.readouterr().out
    assert "precision: mixed model (model.mixed.onnx)" in out  # the table that explains it
    assert "keep the masks within the goal" not in out  # no verdict line, no warning: refused


def test_a_stricter_explicit_limit_that_still_passes_gets_a_note(tmp_path, monkeypatch, capsys):
    layout = project(tmp_path, monkeypatch)
    # the derived logits max abs is 2 x 2e-4; the user's 3e-4 is stricter, and the preview meets it
    _run(settings(logits_max_abs=3e-4, explicit={"verify.fp16.logits_max_abs": "pipeline.yaml"}),
         layout)
    out = capsys.readouterr().out
    assert ("precision: note: verify.fp16.logits_max_abs is stricter than this preview "
            "supports") in out
    _run(settings(logits_max_abs=3e-4), layout)  # not set by the user: verify derives it
    assert "note:" not in capsys.readouterr().out


def test_nearly_tied_logits_are_the_cannot_verdict_with_the_all_islands_preview(
        tmp_path, monkeypatch):
    from stages.host import precision_preview as pp, precision_verdict as pv
    from stages.host.precision_link import PrecisionError
    layout = project(tmp_path, monkeypatch, model=_tied_model())
    _old_files(layout)
    with pytest.raises(PrecisionError) as e:
        _run(settings(), layout)
    cases = pp.golden_cases(layout.golden_json)
    every = {"square", "shrink", "grow", "clip", "soft"}
    rows = pp.preview(_tied_model(), every, cases, LABELS)[1]  # the all-islands preview
    assert pp.worst(rows)["logits_mean_abs"] < 1  # finite: not the naive preview's NaN
    goal = {"mask_agreement": 0.995, "miou": 0.975}
    assert str(e.value) == pv.cannot(pv.margins(cases, rows), rows, goal, 5)
    assert "even with all 5 LayerNorm, Softmax and range nodes in fp32" in str(e.value)
    _unchanged(layout)


def test_a_model_with_no_candidate_whose_naive_preview_fails_is_the_cannot_verdict(
        tmp_path, monkeypatch, capsys):
    from stages.host import precision_preview as pp, precision_verdict as pv
    from stages.host.precision_link import PrecisionError
    # 1000 + x / 100 with x up to 10: nothing beyond or near fp16's range, the classes tie in fp16
    nodes = [helper.make_node("Mul", ["pixel_values", "cent"], ["v"], name="flatten"),
             helper.make_node("Add", ["v", "big"], ["u"], name="lift"),
             helper.make_node("Softmax", ["u"], ["logits"], name="soft", axis=1)]
    graph = helper.make_graph(nodes, "g", [_io("pixel_values")], [_io("logits")],
                              [_const("cent", 0.01), _const("big", 1000.0)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    layout = project(tmp_path, monkeypatch, model=model, images=[x / 30 for x in IMAGES])
    with pytest.raises(PrecisionError) as e:
        _run(settings(keep_fp32=[]), layout)
    assert "step 2/4: one emulation graph with 0 switchable node(s) in none\n" in (
        capsys.readouterr().out)
    cases = pp.golden_cases(layout.golden_json)
    rows = pp.preview(model, set(), cases, LABELS)[1]  # naive: the only preview
    assert pp.worst(rows)["mask_agreement"] < 0.9
    goal = {"mask_agreement": 0.995, "miou": 0.975}
    assert str(e.value) == pv.cannot(pv.margins(cases, rows), rows, goal, 0)


@pytest.mark.parametrize("images,budget,why", [
    (IMAGES, dict(minutes=1 / 60.0), "the next range scan image (about 0:00) does not fit in the "
                                     "0:00 left of precision.budget_minutes 0.0166667"),
    (IMAGES[:1], dict(minutes=1 / 60.0), "the next emulation graph (about 0:00) does not fit"),
    (IMAGES, dict(mb=1), "the next range scan image would take the memory to about "),
])
def test_a_budget_too_small_for_the_first_steps_is_refused_with_no_set(
        tmp_path, monkeypatch, images, budget, why):
    """A second scan image, or the emulation graph, must leave 5 s for the rewrite at the end."""
    from stages.host.precision_link import PrecisionError
    layout = project(tmp_path, monkeypatch, images=images)
    _old_files(layout)
    with pytest.raises(PrecisionError) as e:
        _run(settings(**budget), layout)
    assert str(e.value).startswith("Budget spent before any island set was shown to keep the "
                                   "masks: " + why)
    minutes = budget.get("minutes", 10)
    assert "precision.budget_minutes (now %g)" % minutes in str(e.value)
    _unchanged(layout)


def test_an_unnamed_node_beyond_range_is_refused(tmp_path, monkeypatch):
    from stages.host.precision_link import PrecisionError
    layout = project(tmp_path, monkeypatch, model=_model(square=""))
    with pytest.raises(PrecisionError, match="The ONNX model has an unnamed Mul node beyond the "
                                             "fp16 range: re-export it with `doit onnx`."):
        _run(settings(), layout)



def _prepared(tmp_path, monkeypatch, keep_fp32=("Softmax",)):
    import io
    from stages.host import precision_link, precision_preview as pp
    from stages.host.precision_budget import Budget
    layout = project(tmp_path, monkeypatch)
    cases = pp.golden_cases(layout.golden_json)
    budget = Budget(10, 100000, out=io.StringIO())
    return precision_link._prepare(_model(), cases, list(keep_fp32), budget, 5.0), budget, cases


def test_the_first_steps_measure_the_scan_and_guess_a_preview_until_one_is_measured(
        tmp_path, monkeypatch):
    (ranges, candidates, all_groups, switchable, board), budget, cases = _prepared(
        tmp_path, monkeypatch)
    assert [r["node"] for r in ranges] == ["square", "shrink", "grow", "clip", "add", "soft"]
    assert [c["node"] for c in candidates] == ["square", "shrink", "grow", "clip"]
    assert all_groups == [("beyond range", None, [["square"], ["shrink"], ["grow"], ["clip"]]),
                          ("Softmax", "engine.keep_fp32 Softmax", [["soft"]])]
    assert switchable == {"square", "shrink", "grow", "clip", "soft"}
    assert sorted(budget.cost) == ["emulation graph", "preview", "range scan image"]
    scan, graph = budget.cost["range scan image"], budget.cost["emulation graph"]
    assert 0 < scan[0] < 60 and 0 < graph[0] < 60 and scan[1] == graph[1] == 0.0
    # a preview runs every image once: guessed at 0.6 x images x one scan image
    assert budget.cost["preview"] == (0.6 * 2 * scan[0], 0.0)
    x = cases[0][1]
    assert board.run(set(), {"pixel_values": x}).shape == (1, 2, 1, 4)


def test_a_spent_budgets_islands_say_they_were_not_tested_alone(tmp_path, monkeypatch):
    from stages.host import fp16_convert, precision_link
    (ranges, candidates, all_groups, switchable, _), budget, cases = _prepared(
        tmp_path, monkeypatch, keep_fp32=())
    kept = {"square", "shrink", "grow"}

    class Seen(object):
        goal, runs = {"mask_agreement": 0.995, "miou": 0.975}, 5
        seen = {frozenset(): [], frozenset(kept): [{"logits_max_abs": 0.5, "logits_mean_abs": 0.1,
                                                     "mask_agreement": 1.0, "miou": 1.0,
                                                     "nan": 0, "inf": 0}]}
    result = {"verdict": "budget", "proven": {"square"}}
    made = (cases, kept, fp16_convert.to_mixed(_model(), kept))
    record = precision_link._contract(settings(), Seen(), result, (
        ranges, candidates, all_groups, switchable), made, budget)
    assert [(i["node"], i["reason"].split("; ")[1]) for i in record["islands"]] == [
        ("square", "the preview without it misses the mask goal"),
        ("shrink", "not tested alone: the budget ended the search"),
        ("grow", "not tested alone: the budget ended the search")]
    assert [c["node"] for c in record["dropped"]] == ["clip"] and record["keep_fp32"] == {}
    assert record["limits"]["logits_max_abs"] == 1.0 and record["preview"]["naive"] == []


class Frozen(object):
    """A clock that never moves: every step takes 0 s, so only the reserve meets the budget."""

    def time(self):
        return 1000.0


def _frozen(monkeypatch):
    from stages.host import precision_budget, precision_link
    monkeypatch.setattr(precision_budget, "time", Frozen())
    monkeypatch.setattr(precision_link, "time", Frozen())


@pytest.mark.parametrize("seconds,ok", [(5.51, True), (5.49, False)])
def test_the_link_keeps_5_s_and_a_tenth_of_a_second_per_mb_of_model_onnx_for_the_rewrite(
        tmp_path, monkeypatch, seconds, ok):
    from stages.host.precision_link import PrecisionError
    model = _model()
    model.doc_string = "x" * 5000000  # model.onnx of 5 MB: a reserve of 5.5 s
    layout = project(tmp_path, monkeypatch, model=model)
    _frozen(monkeypatch)
    if ok:
        _run(settings(minutes=seconds / 60), layout)
        assert _read(layout.precision_report)["verdict"]["kind"] == "islands"
    else:
        with pytest.raises(PrecisionError, match="the next range scan image .about 0:00. does "
                                                 "not fit in the 0:00 left"):
            _run(settings(minutes=seconds / 60), layout)


def test_a_run_whose_memory_stays_at_the_budget_completes_and_one_mb_more_is_refused(
        tmp_path, monkeypatch):
    """Resident and peak memory held at 600 MB: a step that adds nothing fits a 600 MB budget
    exactly (no step is guessed to add memory before it is measured)."""
    from stages.host import precision_budget
    from stages.host.precision_link import PrecisionError
    layout = project(tmp_path, monkeypatch)
    monkeypatch.setattr(precision_budget, "rss_mb", lambda: 600.0)
    monkeypatch.setattr(precision_budget, "peak_mb", lambda: 600.0)
    _run(settings(mb=600), layout)
    assert _read(layout.precision_report)["verdict"]["kind"] == "islands"
    with pytest.raises(PrecisionError, match="the next range scan image would take the memory "
                                             "to about 600 MB, beyond precision.budget_mb 599"):
        _run(settings(mb=599), layout)
