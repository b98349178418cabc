"""The precision link's first steps and its budget, in this process on the hand-built project
(tests/precision_project.py): the scan's and the emulation graph's cost bookkeeping, a spent
budget's island reasons, the reserve kept for the rewrite (on a frozen clock), and a run held at
its memory budget."""
import pytest

pytest.importorskip("onnx")
from precision_project import (  # noqa: E402
    IMAGES, LABELS, island_model, project, read, run, settings)


def _prepared(tmp_path, monkeypatch, keep_fp32=("Softmax",)):
    import io
    from stages.host import precision_link, precision_preview as pp
    from stages.host.precision_budget import Budget
    layout = project(tmp_path, monkeypatch)
    cases = pp.golden_cases(layout.golden_json)
    budget = Budget(10, 100000, out=io.StringIO())
    found = precision_link._prepare(island_model(), cases, list(keep_fp32), budget, 5.0)
    return found, budget, cases


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


class Clock(object):
    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now


def test_a_spent_budgets_islands_say_they_were_not_tested_alone(tmp_path, monkeypatch):
    from stages.host import fp16_convert, precision_budget, precision_link
    (ranges, candidates, all_groups, switchable, _), budget, cases = _prepared(
        tmp_path, monkeypatch, keep_fp32=())
    kept = {"square", "shrink", "grow"}

    class Seen(object):
        goal, runs = {"mask_agreement": 0.995, "miou": 0.975}, 5
        seen = {frozenset(): [], frozenset(kept): [{"logits_max_abs": 0.5, "logits_mean_abs": 0.1,
                                                     "mask_agreement": 1.0, "miou": 1.0,
                                                     "nan": 0, "inf": 0}]}
    result = {"verdict": "budget", "proven": {"square"}}
    made = (cases, kept, fp16_convert.to_mixed(island_model(), kept))
    clock = Clock()
    monkeypatch.setattr(precision_budget, "time", clock)
    budget = precision_budget.Budget(10, 100000)
    clock.now += 12.345
    record = precision_link._contract(settings(), Seen(), result, (
        ranges, candidates, all_groups, switchable), made, budget)
    assert [(i["node"], i["reason"].split("; ")[1]) for i in record["islands"]] == [
        ("square", "the preview without it misses the mask goal"),
        ("shrink", "not tested alone: the budget ended the search"),
        ("grow", "not tested alone: the budget ended the search")]
    assert [c["node"] for c in record["dropped"]] == ["clip"] and record["keep_fp32"] == {}
    assert record["limits"]["logits_max_abs"] == 1.0 and record["preview"]["naive"] == []
    assert record["search"]["seconds"] == 12.3  # to a tenth of a second


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
    model = island_model()
    model.doc_string = "x" * 5000000  # model.onnx of 5 MB: a reserve of 5.5 s
    layout = project(tmp_path, monkeypatch, model=model)
    _frozen(monkeypatch)
    if ok:
        run(settings(minutes=seconds / 60), layout)
        assert read(layout.precision_report)["verdict"]["kind"] == "islands"
    else:
        with pytest.raises(PrecisionError, match="the next range scan image .about 0:00. does "
                                                 "not fit in the 0:00 left"):
            run(settings(minutes=seconds / 60), layout)


def test_a_run_whose_memory_stays_at_the_budget_completes_and_one_mb_more_is_refused(
        tmp_path, monkeypatch):
    """Resident and peak memory held at 600 MB: a step that adds nothing fits a 600 MB budget
    exactly (no step is guessed to add memory before it is measured)."""
    from stages.host import precision_budget
    from stages.host.precision_link import PrecisionError
    layout = project(tmp_path, monkeypatch)
    monkeypatch.setattr(precision_budget, "rss_mb", lambda: 600.0)
    monkeypatch.setattr(precision_budget, "peak_mb", lambda: 600.0)
    run(settings(mb=600), layout)
    assert read(layout.precision_report)["verdict"]["kind"] == "islands"
    with pytest.raises(PrecisionError, match="the next range scan image would take the memory "
                                             "to about 600 MB, beyond precision.budget_mb 599"):
        run(settings(mb=599), layout)


def test_golden_cases_read_the_case_folders_under_the_given_root(tmp_path, monkeypatch):
    import os
    from stages.host import precision_preview as pp
    (tmp_path / "p").mkdir()
    layout = project(tmp_path / "p", monkeypatch)  # golden.json records relative folders
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    root = str(tmp_path / "p")
    cases = pp.golden_cases(os.path.join(root, layout.golden_json), root)
    assert [c[0]["dir"] for c in cases] == [
        os.path.join(root, layout.golden_case_dir(i, "img%d.jpg" % i)) for i in (0, 1)]
    assert [c[1].tolist() for c in cases] == [x.tolist() for x in IMAGES]


def test_a_preview_reads_the_logits_output_by_name(tmp_path, monkeypatch):
    from stages.host import fp16_convert, precision_preview as pp
    layout = project(tmp_path, monkeypatch)
    cases = pp.golden_cases(layout.golden_json)
    model = island_model()
    two = island_model()  # the same graph with s listed as an output before the logits
    two.graph.output.insert(0, two.graph.output[0])
    two.graph.output[0].name = "s"
    rows = pp.run_typed(fp16_convert.to_mixed(model, {"square", "shrink"}), cases, LABELS)
    assert pp.run_typed(fp16_convert.to_mixed(two, {"square", "shrink"}), cases, LABELS) == rows
    assert [r["mask_agreement"] for r in rows] == [1.0, 1.0]
