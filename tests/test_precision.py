"""The precision link: faithful fp16 emulation, islands chosen from data, preview, limits."""
import json
import os
import re

import numpy as np
import pytest

from checkouts_fp16 import island_project, tied_project
from conftest import assert_one_sentence_error, doit, edit_yaml, executed

pytestmark = pytest.mark.host


def _chain_model():
    """y = (x - mean) / sqrt(mean((x - mean)^2) + eps): a decomposed LayerNorm over 4 values."""
    from onnx import TensorProto, helper
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1], name="mean"),
             helper.make_node("Sub", ["x", "m"], ["d"], name="sub"),
             helper.make_node("Pow", ["d", "two"], ["sq"], name="pow"),
             helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1], name="var"),
             helper.make_node("Add", ["var", "eps"], ["ve"], name="add"),
             helper.make_node("Sqrt", ["ve"], ["sd"], name="sqrt"),
             helper.make_node("Div", ["d", "sd"], ["y"], name="div")]
    inits = [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
             helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-5])]
    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 4]) for n in "xy")
    graph = helper.make_graph(nodes, "ln", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _numpy_fp16(x):
    """The same chain in numpy: every op in fp32, every result stored as float16."""
    h = lambda a: np.asarray(a, np.float32).astype(np.float16).astype(np.float32)  # noqa: E731
    x = h(x)
    m = h(x.mean(-1, keepdims=True))
    d = h(x - m)
    var = h(h(d ** 2).mean(-1, keepdims=True))
    return h(d / h(np.sqrt(h(var + h(np.float32(1e-5))))))


def _emulated(model, islands, x):
    from stages.host import fp16_convert, fp16_emulate
    typed = fp16_convert.to_mixed(model, islands)
    return fp16_emulate.session(fp16_emulate.emulate_fp16_storage(typed)).run(["y"], {"x": x})[0]


def test_emulation_reproduces_numpy_float16_overflow_and_islands_repair_it():
    # the second row's squared deviations (up to 435^2) exceed 65504
    x = np.array([[1.0, 2.0, 3.0, 4.5], [-400.0, 300.0, 50.0, 250.0]], np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = _numpy_fp16(x)
    got = _emulated(_chain_model(), [], x)
    assert np.isinf(_numpy_fp16_pow(x)).any()  # the second row's squares overflow in float16
    assert np.array_equal(got, expected), (got, expected)  # bit for bit, zeros from x/inf included
    assert np.all(got[1] == 0) and np.isfinite(got[0]).all() and np.abs(got[0]).max() > 1
    fixed = _emulated(_chain_model(), ["pow", "var", "add", "sqrt"], x)
    d = x - x.mean(-1, keepdims=True)
    exact = d / np.sqrt((d ** 2).mean(-1, keepdims=True) + 1e-5)
    assert np.abs(fixed - exact).max() < 2e-3


def _numpy_fp16_pow(x):
    d = x.astype(np.float16) - x.astype(np.float16).mean(-1, keepdims=True)
    with np.errstate(over="ignore"):
        return d.astype(np.float16) ** 2


def test_mixed_model_types_follow_the_islands():
    import onnx
    from stages.host import fp16_convert, fp16_emulate
    typed = fp16_convert.to_mixed(_chain_model(), ["pow", "var"])
    types = fp16_emulate.tensor_types(typed)
    assert [i.type.tensor_type.elem_type for i in typed.graph.input] == [onnx.TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in typed.graph.output] == [onnx.TensorProto.FLOAT]
    out = dict((n.name, types[n.output[0]]) for n in typed.graph.node)  # nodes keep their names
    assert out["pow"] == out["var"] == onnx.TensorProto.FLOAT
    assert out["sub"] == out["add"] == out["sqrt"] == out["div"] == onnx.TensorProto.FLOAT16
    assert fp16_convert.island_casts(typed) >= 4  # in, out, and both island boundaries


@pytest.fixture(scope="module")
def islands_run(tmp_path_factory):
    dest = island_project(str(tmp_path_factory.mktemp("islands")))
    code, out = doit(dest, "precision")  # and checkout, golden, onnx before it
    assert code == 0, out
    with open(os.path.join(dest, "artifacts", "onnx", "precision.json")) as f:
        return dest, out, json.load(f)


def test_island_checkout_breaks_naive_fp16_and_the_islands_repair_it(islands_run):
    dest, out, report = islands_run
    assert "precision" in executed(out)
    naive, mixed = report["preview"]["naive"][0], report["preview"]["mixed"][0]
    assert naive["mask_agreement"] < 0.8 and naive["miou"] < 0.6, naive  # far below 0.99 / 0.95
    assert mixed["mask_agreement"] > 0.999 and mixed["miou"] > 0.99
    assert mixed["nan"] == mixed["inf"] == 0
    names = [i["node"] for i in report["islands"]]
    for ln in ("patch_embeddings/layer_norm/", "sequence_reduction/layer_norm/"):  # the scaled ones
        assert any(n.endswith(ln + "Pow") for n in names), names
        assert any(n.endswith(ln + "ReduceMean_1") for n in names), names
    assert all("> 65504" in i["reason"] for i in report["islands"]) and len(names) <= 8, names
    assert "naive all-fp16" in out and "island Pow" in out


def test_precision_json_and_mixed_model_follow_the_contract(islands_run):
    import onnx
    from stages.common import files
    from stages.host import fp16_emulate
    dest, _, report = islands_run
    onnx_dir = os.path.join(dest, "artifacts", "onnx")
    assert report["format"] == "segformer-precision/1" and report["tool"]["version"]
    assert report["onnx_sha256"] == files.sha256_file(os.path.join(onnx_dir, "model.onnx"))
    assert report["mixed_sha256"] == files.sha256_file(os.path.join(onnx_dir, "model.mixed.onnx"))
    metrics = {"logits_max_abs", "logits_mean_abs", "mask_agreement", "miou"}
    assert set(report["limits"]) == metrics | {"margin"}
    for row in report["preview"]["mixed"] + report["preview"]["naive"]:
        assert set(row) == metrics | {"image", "nan", "inf"}
    mixed = onnx.load(os.path.join(onnx_dir, "model.mixed.onnx"))
    types = fp16_emulate.tensor_types(mixed)
    by_name = dict((n.name, n) for n in mixed.graph.node)
    for island in report["islands"]:
        assert list(by_name[island["node"]].output) == island["mixed_outputs"], island
        assert all(types[t] == onnx.TensorProto.FLOAT for t in island["mixed_outputs"]), island
    convs = [n for n in mixed.graph.node if n.op_type == "Conv"]
    assert convs and all(types[n.output[0]] == onnx.TensorProto.FLOAT16 for n in convs)


def test_default_model_needs_no_islands_and_verify_fp16_comes_from_its_preview(built_project):
    from stages.common.config import load  # the shipped pipeline.yaml (the copy's is the same)
    with open(os.path.join(built_project, "artifacts", "onnx", "precision.json")) as f:
        report = json.load(f)
    assert report["islands"] == [] and report["preview"]["mixed"] == report["preview"]["naive"]
    derived, configured = report["limits"], load("pipeline.yaml")["verify"]["fp16"]
    for key in ("logits_max_abs", "logits_mean_abs"):  # not stricter than derived, not far looser
        assert derived[key] <= configured[key] <= 2 * derived[key], (key, derived, configured)
    for key in ("mask_agreement", "miou"):
        loosest = 1 - 2 * (1 - derived[key])
        assert loosest <= configured[key] <= derived[key], (key, derived, configured)


def test_second_doit_reruns_nothing_and_margin_reruns_only_precision(project):
    code, out = doit(project)
    assert code == 0 and executed(out) == [] and "-- precision" in out, out
    edit_yaml(os.path.join(project, "pipeline.yaml"), "margin: 4 ", "margin: 5 ")
    code, out = doit(project)
    assert code == 0 and executed(out) == ["precision"], out


def test_mixed_model_below_the_fp16_limits_fails_the_link(project):
    mixed = os.path.join(project, "artifacts", "onnx", "model.mixed.onnx")
    before = os.path.getmtime(mixed)
    pipeline = os.path.join(project, "pipeline.yaml")
    with open(pipeline) as f:
        text = f.read()
    start = text.index("\n", text.index("  fp32: {input_max_abs")) + 1  # the goal, set explicitly
    with open(pipeline, "w") as f:
        f.write(text[:start] + "  fp16: {input_max_abs: 1.0e-3, logits_max_abs: 1.0e-4, "
                "logits_mean_abs: 1.0, mask_agreement: 0.5, miou: 0.5}\n" + text[start:])
    code, out = doit(project, "precision")
    assert_one_sentence_error(code, out, "fp16 preview of model.mixed.onnx fails",
                              "verify.fp16.logits_max_abs", "engine.precision: fp32")
    assert os.path.getmtime(mixed) == before


class _MaskOracle(object):
    """Stands in for the previews: the masks meet the goal iff `needed` are all islands; after
    `budget` previews, the budget is spent."""

    def __init__(self, needed, budget=1000):
        self.needed_set, self.asked, self.budget = set(needed), 0, budget
        self.bound, self.best = 0, None

    def ok(self, islands):
        from stages.host.precision_budget import BudgetSpent
        if self.asked >= self.budget:
            raise BudgetSpent("test budget")
        self.asked += 1
        passed = self.needed_set <= set(islands)
        if passed and (self.best is None or len(islands) < len(self.best)):
            self.best = set(islands)
        return passed


GROUPS = [("beyond range", None, [["a"], ["b"]]),
          ("LayerNorm", "engine.keep_fp32 LayerNorm", [["l1", "l2"], ["l3", "l4"], ["l5"]]),
          ("Softmax", "engine.keep_fp32 Softmax", [["s1"], ["s2"]]),
          ("near range", None, [["e"], ["f"]])]


def test_search_keeps_what_the_masks_need_and_drops_the_rest_in_few_previews():
    from stages.host.precision_search import choose
    oracle = _MaskOracle(["a", "l3", "l4", "e"])  # b overflows, but the masks do not care
    result = choose(oracle, GROUPS)
    assert result["verdict"] == "islands" and result["islands"] == {"a", "l3", "l4", "e"}
    assert result["proven"] == {"a", "l3", "l4", "e"}  # each shown needed by its own preview
    assert oracle.asked <= 16, oracle.asked  # naive, all, then bisection of 4 groups
    oracle = _MaskOracle([])
    assert choose(oracle, GROUPS)["islands"] == set() and oracle.asked == 1  # naive passes


def test_keep_fp32_groups_are_seeds_dropped_only_when_a_preview_proves_them_unneeded():
    from stages.host.precision_link import _reasons
    from stages.host.precision_search import choose
    oracle = _MaskOracle(["l1", "l2", "s2"])  # one LayerNorm chain and one Softmax are needed
    result = choose(oracle, GROUPS)
    assert result["islands"] == {"l1", "l2", "s2"}
    reasons = _reasons(GROUPS, [], result["proven"], result["verdict"])
    assert reasons["l1"] == ("engine.keep_fp32 LayerNorm; the preview without it misses the "
                             "mask goal")
    assert reasons["s2"].startswith("engine.keep_fp32 Softmax;")
    # never tried without them: a spent budget keeps the seeds, and says so
    oracle = _MaskOracle(["l1", "l2", "s2"], budget=2)
    result = choose(oracle, GROUPS)
    assert result["verdict"] == "budget" and result["why"] == "test budget"
    assert result["islands"] >= {"l1", "l2", "l3", "l4", "l5", "s1", "s2"}  # all of the seeds
    reasons = _reasons(GROUPS, [], result["proven"], result["verdict"])
    assert reasons["l5"].endswith("not tested alone: the budget ended the search")


def test_no_island_set_is_the_cannot_verdict_and_a_budget_spent_early_has_no_set():
    from stages.host.precision_search import choose
    oracle = _MaskOracle(["z"])  # z is no unit: nothing the search may keep helps
    result = choose(oracle, GROUPS)
    assert result["verdict"] == "cannot" and result["islands"] is None and oracle.asked == 2
    result = choose(_MaskOracle(["a"], budget=1), GROUPS)  # naive fails, no time for "all"
    assert result["verdict"] == "budget" and result["islands"] is None


def test_budget_refuses_a_step_that_would_not_fit_in_time_or_memory():
    import time
    from stages.host.precision_budget import Budget, BudgetSpent, rss_mb
    budget = Budget(0.5 / 60, 10 ** 6)  # half a second
    started, before = budget.start("preview")
    time.sleep(0.3)
    budget.measured("preview", started, before)
    with pytest.raises(BudgetSpent) as e:
        budget.start("preview")  # 0.3 s more does not fit in the 0.2 s left
    assert "precision.budget_minutes" in e.value.why
    budget = Budget(10, rss_mb() - 1)  # less memory than this process already holds
    with pytest.raises(BudgetSpent) as e:
        budget.start("preview")
    assert "precision.budget_mb" in e.value.why
    assert 10 < rss_mb() < 10 ** 6


def test_switchboard_equals_the_mixed_model_emulation_bit_for_bit(islands_run):
    import onnx
    from runtime.sidecar import INPUT_NAME
    from stages.host import fp16_switchboard, precision_preview as pp
    from stages.host.precision import layernorm_chains
    dest, _, report = islands_run
    model = onnx.load(os.path.join(dest, "artifacts", "onnx", "model.onnx"))
    case = pp.golden_cases(os.path.join(dest, "artifacts", "golden", "golden.json"), dest)[0]
    chains = [n.name for c in layernorm_chains(model.graph) for n in c]
    islands = [i["node"] for i in report["islands"]]
    board = fp16_switchboard.Board(model, set(chains) | set(islands))
    for kept in ([], islands, chains[:14], chains):
        switched = board.run(kept, {INPUT_NAME: case[1]})
        expected = _emulated_logits(model, kept, case[1])
        assert np.array_equal(switched, expected, equal_nan=True), kept
    naive = board.run([], {INPUT_NAME: case[1]})
    assert not np.array_equal(naive, board.run(islands, {INPUT_NAME: case[1]}))


def _emulated_logits(model, islands, tensor):
    from runtime.sidecar import INPUT_NAME, OUTPUT_NAME
    from stages.host import fp16_convert, fp16_emulate
    typed = fp16_convert.to_mixed(model, islands)
    sess = fp16_emulate.session(fp16_emulate.emulate_fp16_storage(typed))
    return sess.run([OUTPUT_NAME], {INPUT_NAME: tensor})[0]


def test_nearly_tied_logits_get_the_margins_verdict(tmp_path):
    dest = tied_project(str(tmp_path))
    code, out = doit(dest, "precision")
    assert_one_sentence_error(code, out, "fp16 cannot keep these masks", "top-1/top-2 logit margin",
                              "engine.precision: fp32")
    line = [l for l in out.splitlines() if "fp16 cannot keep" in l][0]
    assert re.search(r"median [0-9.e-]+ and 5th percentile [0-9.e-]+", line), line
    assert re.search(r"[0-9.]+% of the pixels have a margin below twice that error, against", line)
    assert "preview 2 of at most" in out  # naive, then all islands: no bisection
    assert not os.path.exists(os.path.join(dest, "artifacts", "onnx", "model.mixed.onnx"))


def test_fp32_engine_skips_the_search(project):
    edit_yaml(os.path.join(project, "pipeline.yaml"), "precision: fp16", "precision: fp32")
    code, out = doit(project, "precision")
    assert code == 0 and executed(out) == ["precision"], out
    assert "skipped: engine.precision is fp32" in out and "range scan" not in out, out
    with open(os.path.join(project, "artifacts", "onnx", "precision.json")) as f:
        report = json.load(f)
    assert report["verdict"]["kind"] == "skipped" and report["islands"] == []
    code, out = doit(project, "precision")
    assert code == 0 and executed(out) == [], out  # no mixed-model target to wait for
    os.remove(os.path.join(project, "artifacts", "onnx", "model.mixed.onnx"))  # the fp16 run's
    code, out = doit(project, "bundle")  # an fp32 bundle needs no mixed model
    assert code == 0 and "bundle" in executed(out), out


def test_adjacent_islands_stay_fp32_between_them():
    # a LayerNorm-shaped chain whose deviation also feeds an fp16 Div: the converter alone would
    # send the deviation through fp16 on its way from Sub to Pow (a Cast pair between islands)
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from stages.host.fp16_convert import to_mixed
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], name="mean0", keepdims=1),
             helper.make_node("Sub", ["x", "m"], ["d"], name="sub"),
             helper.make_node("Pow", ["d", "two"], ["p"], name="pow"),
             helper.make_node("ReduceMean", ["p"], ["v"], name="var", keepdims=1),
             helper.make_node("Sqrt", ["v"], ["s"], name="sqrt"),
             helper.make_node("Div", ["d", "s"], ["y"], name="div")]
    graph = helper.make_graph(nodes, "ln",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [two])
    mixed = to_mixed(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                   ir_version=8),
                     {"sub", "pow", "var", "sqrt"})
    onnx.checker.check_model(mixed)
    by_name = dict((n.name, n) for n in mixed.graph.node)
    producer = dict((o, n) for n in mixed.graph.node for o in n.output)
    assert producer[by_name["pow"].input[0]].name == "sub"  # fp32 straight from Sub, no Cast pair
    assert producer[by_name["div"].input[0]].op_type == "Cast"  # the fp16 consumer gets its Cast
    inferred = onnx.shape_inference.infer_shapes(mixed).graph
    types = dict((v.name, v.type.tensor_type.elem_type) for v in inferred.value_info)
    assert types[by_name["pow"].output[0]] == TensorProto.FLOAT


VERDICTS = ("fp32 island(s) keep the masks", "fp16 cannot keep these masks", "Budget spent")


@pytest.mark.slow
def test_b4_size_run_ends_in_a_verdict_within_its_budget(tmp_path):
    # a SegFormer-B4-size checkout (random weights, 512x512, 35 labels): checkout, golden and onnx
    # first (about 40 s here), then `doit precision` with a 2-minute budget. Measured on this
    # 2-core host, shared: the "cannot" verdict after 2 previews.
    import subprocess
    import sys
    from conftest import ROOT, copy_project
    dest = copy_project(str(tmp_path), with_artifacts=False)
    checkout = os.path.join(dest, "models", "b4-random")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_b4_checkout.py"), checkout],
                   check=True, stdout=subprocess.PIPE)
    pipeline = os.path.join(dest, "pipeline.yaml")
    edit_yaml(pipeline, "path: models/segformer-tiny-sidewalk", "path: models/b4-random")
    edit_yaml(pipeline, "budget_minutes: 10 ", "budget_minutes: 2 ")
    code, out = doit(dest, "onnx")
    assert code == 0, out
    code, out = doit(dest, "precision")
    verdict = [l for l in out.splitlines() if any(v in l for v in VERDICTS)]
    assert len(verdict) == 1, out
    stamps = re.findall(r"^precision: \[(\d+):(\d\d), (\d+) MB\]", out, re.M)
    assert stamps and all(60 * int(m) + int(s) <= 120 for m, s, _ in stamps), stamps
    assert all(int(mb) < 6000 for _, _, mb in stamps), stamps
    assert "preview 1 of at most" in out or "Budget spent" in verdict[0], out


def test_engine_sidecar_and_build_log_name_each_island_and_why(project):
    # through the TensorRT test double (weak typing, 8.2 API): the islands are precision.json's
    from test_engine import build_alone, engine_dir, write_islands
    import onnx
    model = onnx.load(os.path.join(project, "artifacts", "onnx", "model.onnx"))
    soft = [n.name for n in model.graph.node if n.op_type == "Softmax"][:2]
    write_islands(project, soft)
    code, out = build_alone(project)
    assert code == 0, out
    with open(os.path.join(engine_dir(project), "model.json")) as f:
        islands = json.load(f)["engine"]["build"]["islands"]
    assert [(i["node"], i["op"], i["reason"]) for i in islands] == [
        (n, "Softmax", "test") for n in soft]
    with open(os.path.join(engine_dir(project), "build.log")) as f:
        log = f.read()
    assert "fp32 islands: 2" in log and "  Softmax %s: test" % soft[0] in log
