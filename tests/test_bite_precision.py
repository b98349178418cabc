"""The precision link's decisions, in this process on small hand-built ONNX graphs (fast, for the
mutation run): where a value counts as beyond fp16's range, the intermediates of fused ops, the
margin, the order the search tries candidates in, Inf logits, the rows the device limits come
from, the island names recorded for the device (pinned by an 8.x build through the TensorRT
test double: NOT TensorRT), and the guards of the graph rewrite."""
import os

import numpy as np
import pytest

from conftest import use_trt_doubles

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

FP16_MAX = 65504.0
ABOVE = float(np.nextafter(np.float32(FP16_MAX), np.float32(np.inf)))  # 65504.004 in fp32


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _io(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _ranges(model, x):
    from stages.host.precision_scan import node_ranges
    return dict((r["node"], r) for r in node_ranges(model, [{"x": np.asarray(x, np.float32)}]))


# --- where a value counts as beyond fp16's range ---------------------------------------------

def test_65504_is_in_range_and_the_next_float_above_is_beyond():
    from stages.host.precision_scan import candidates
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                   [_io("x", [1, 2])], [_io("y", [1, 2])])
    at = _ranges(model, [[FP16_MAX, -1.0]])
    assert at["relu"]["max_abs"] == FP16_MAX and candidates(list(at.values())) == []
    above = _ranges(model, [[1.0, -ABOVE]])  # |x| counts: a negative value too
    assert above["relu"]["max_abs"] == ABOVE > FP16_MAX
    found = candidates(list(above.values()))
    assert [c["node"] for c in found] == ["relu"] and "65504" in found[0]["reason"]


def test_near_range_starts_just_above_65504_over_16():
    from stages.host.precision_search import groups
    model = _model([], [], [])
    ranges = [{"node": "at", "max_abs": FP16_MAX / 16}, {"node": "over", "max_abs": 4094.001},
              {"node": "far", "max_abs": 1.0}]
    assert groups(model, ranges, [], []) == [("near range", None, [["over"]])]


# --- the internal intermediates of fused operations ------------------------------------------

def _layernorm(axis=-1):
    scale = numpy_helper.from_array(np.ones(2, np.float32), "scale")
    bias = numpy_helper.from_array(np.zeros(2, np.float32), "bias")
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], name="ln",
                            axis=axis, epsilon=1e-5)
    return _model([node], [_io("x", [2, 2])], [_io("y", [2, 2])], [scale, bias])


def test_a_layernorm_whose_squared_deviations_leave_fp16_is_a_candidate():
    from stages.host.precision_scan import candidates
    # row 0: deviations +-300, squared 90,000 > 65504; row 1: no deviation (over all axes the
    # deviations would be ~15,000, squared 2.3e8: the axes are the last ones only)
    ranges = _ranges(_layernorm(), [[-300.0, 300.0], [20000.0, 20000.0]])
    ln = ranges["ln"]
    assert ln["max_abs"] == pytest.approx(90000.0) and ln["where"] == "its intermediates"
    assert ln["op"] == "LayerNormalization" and ln["outputs"] == ["y"]
    assert [c["node"] for c in candidates(list(ranges.values()))] == ["ln"]


def test_a_layernorm_below_the_range_inside_is_not_a_candidate():
    from stages.host.precision_scan import candidates
    ranges = _ranges(_layernorm(), [[-250.0, 250.0], [3.0, 5.0]])  # squares 62,500
    assert ranges["ln"]["max_abs"] == pytest.approx(62500.0)
    assert candidates(list(ranges.values())) == []


def test_a_layernorm_axis_other_than_the_last_is_honoured():
    # axis 0 over [2, 2]: both axes, one mean over the whole tensor
    ranges = _ranges(_layernorm(axis=0), [[-300.0, 300.0], [20000.0, 20000.0]])
    mean = (-300 + 300 + 40000) / 4.0  # 10,000; the largest deviation is -300's
    assert ranges["ln"]["max_abs"] == pytest.approx((-300 - mean) ** 2, rel=1e-6)


def test_a_layernorm_without_an_axis_normalises_over_the_last_one():
    scale = numpy_helper.from_array(np.ones(2, np.float32), "scale")
    node = helper.make_node("LayerNormalization", ["x", "scale"], ["y"], name="ln")
    model = _model([node], [_io("x", [1, 2, 2])], [_io("y", [1, 2, 2])], [scale])
    ranges = _ranges(model, [[[-300.0, 300.0], [20000.0, 20000.0]]])
    assert ranges["ln"]["max_abs"] == pytest.approx(90000.0)


def test_a_reduce_l2_whose_sum_of_squares_leaves_fp16_is_a_candidate():
    from stages.host.precision_scan import candidates
    node = helper.make_node("ReduceL2", ["x"], ["y"], name="l2", keepdims=1)
    model = _model([node], [_io("x", [1, 2])], [_io("y", [1, 1])])
    ranges = _ranges(model, [[200.0, 200.0]])  # output 282.8, the squares' sum 80,000
    assert ranges["l2"]["max_abs"] == pytest.approx(80000.0)
    assert ranges["l2"]["where"] == "its intermediates"
    assert [c["node"] for c in candidates(list(ranges.values()))] == ["l2"]
    node = helper.make_node("ReduceSumSquare", ["x"], ["y"], name="sq", keepdims=1)
    model = _model([node], [_io("x", [1, 2])], [_io("y", [1, 1])])
    assert _ranges(model, [[-150.0, 170.0]])["sq"]["max_abs"] == pytest.approx(51400.0)


# --- the margin tightens the goal ------------------------------------------------------------

def test_the_margin_tightens_the_search_goal():
    from stages.host.precision_search import mask_goal
    limits = {"mask_agreement": 0.99, "miou": 0.96}
    goal = mask_goal(limits, 2.0)
    assert goal["mask_agreement"] == pytest.approx(0.995) and goal["miou"] == pytest.approx(0.98)
    assert mask_goal(limits, 1.0) == pytest.approx(limits)


def _row(agree=1.0, miou=1.0, max_abs=0.01, mean_abs=0.001, nan=0, inf=0):
    return {"image": "a.jpg", "mask_agreement": agree, "miou": miou, "logits_max_abs": max_abs,
            "logits_mean_abs": mean_abs, "nan": nan, "inf": inf}


def test_meets_compares_each_metric_at_its_goal_inclusive():
    from stages.host.precision_search import meets
    goal = {"mask_agreement": 0.995, "miou": 0.98}
    assert meets([_row(0.995, 0.98)], goal)
    assert not meets([_row(0.9949, 0.99)], goal) and not meets([_row(1.0, 0.9799)], goal)
    assert not meets([_row(), _row(nan=1)], goal) and not meets([_row(inf=1), _row()], goal)


# --- Inf logits fail a preview ---------------------------------------------------------------

def _case(logits):
    golden = np.asarray(logits, np.float32)
    mask = golden.reshape(golden.shape[-3:]).argmax(0)
    rec = {"source": "a.jpg", "height": golden.shape[-2], "width": golden.shape[-1]}
    return rec, None, golden, mask


def test_inf_logits_fail_a_preview_whose_masks_still_agree():
    from stages.host import precision_link, precision_preview as pp
    from stages.host.precision_search import meets
    # pixel (0, 0): class 0 wins at 0.5 over 0.2; a non-finite class 1 is read as 0 there
    golden = np.array([[[[0.5, 1.0], [2.0, 0.5]], [[0.2, 2.0], [1.0, 4.0]]]], np.float32)
    rec, _, golden, mask = _case(golden)
    for bad, key in ((-np.inf, "inf"), (np.nan, "nan")):
        logits = golden.copy()
        logits[0, 1, 0, 0] = bad  # a losing class: the mask is the golden one
        row = pp.row(rec, logits, golden, mask, ["a", "b"])
        assert row[key] == 1 and row["mask_agreement"] == 1.0 and row["miou"] == 1.0
        assert sorted(row) == sorted(pp.ROW_KEYS + ("image",)) and row["image"] == "a.jpg"
        assert row["logits_max_abs"] == np.inf
        assert not meets([row], {"mask_agreement": 0.5, "miou": 0.5})
        limits = {"logits_max_abs": 1e9, "logits_mean_abs": 1e9, "mask_agreement": 0,
                  "miou": 0}
        assert precision_link._misses(row, limits)[0] == "NaN/Inf logits"
    clean = pp.row(rec, golden + np.float32(0.25), golden, mask, ["a", "b"])
    assert clean["inf"] == clean["nan"] == 0 and clean["logits_max_abs"] == pytest.approx(0.25)


def test_misses_names_the_first_limit_a_row_misses_at_its_boundary():
    from stages.host.precision_link import _misses
    limits = {"logits_max_abs": 0.5, "logits_mean_abs": 0.1, "mask_agreement": 0.99,
              "miou": 0.9}
    assert _misses(_row(0.99, 0.9, 0.5, 0.1), limits) is None
    assert _misses(_row(0.99, 0.9, 0.51, 0.1), limits)[2] == "verify.fp16.logits_max_abs"
    assert _misses(_row(0.99, 0.9, 0.5, 0.11), limits)[2] == "verify.fp16.logits_mean_abs"
    assert _misses(_row(0.98, 0.9, 0.5, 0.1), limits)[2] == "verify.fp16.mask_agreement"
    assert _misses(_row(0.99, 0.89, 0.5, 0.1), limits)[2] == "verify.fp16.miou"


# --- the order candidates are tried ----------------------------------------------------------

class FakeSearch(object):
    """ok(): the masks meet the goal when `needs` says so; counts what it was asked."""

    def __init__(self, needs):
        self.needs, self.asked, self.bound, self.best, self.runs = needs, [], 0, None, 0

    def ok(self, islands):
        self.asked.append(frozenset(islands))
        return self.needs(set(islands))


def test_the_search_tries_the_unit_less_close_to_fp16s_range_first():
    from stages.host.precision_search import choose, groups
    ranges = [{"node": "low", "max_abs": 70000.0}, {"node": "high", "max_abs": 900000.0}]
    candidates = [dict(r, reason="beyond") for r in reversed(ranges)]  # high listed first
    all_groups = groups(_model([], [], []), ranges, candidates, [])
    assert all_groups == [("beyond range", None, [["low"], ["high"]])]
    search = FakeSearch(lambda kept: bool(kept & {"low", "high"}))  # either one is enough
    result = choose(search, all_groups)
    # naive, all, drop both (fails), drop "low" (passes), drop "high" too (fails: proven)
    assert result["islands"] == {"high"} and result["proven"] == {"high"}
    assert search.asked == [frozenset(), frozenset({"low", "high"}), frozenset(),
                            frozenset({"high"}), frozenset()]


def test_the_search_tries_naive_first_and_groups_in_their_order():
    from stages.host.precision_search import choose
    all_groups = [("beyond range", None, [["a"]]), ("LayerNorm", "engine.keep_fp32 LayerNorm",
                                                   [["b1", "b2"]]),
                  ("near range", None, [["c"]])]
    search = FakeSearch(lambda kept: "a" in kept)
    result = choose(search, all_groups)
    assert result == {"verdict": "islands", "islands": {"a"}, "proven": {"a"}, "why": None}
    assert search.asked[:3] == [frozenset(), frozenset({"a", "b1", "b2", "c"}),
                                frozenset({"b1", "b2", "c"})]
    assert search.asked[3:] == [frozenset({"a", "c"}), frozenset({"a"})]
    naive = FakeSearch(lambda kept: True)
    assert choose(naive, all_groups) == {"verdict": "islands", "islands": set(), "proven": set(),
                                         "why": None}
    assert naive.asked == [frozenset()]
    never = FakeSearch(lambda kept: False)
    assert choose(never, all_groups) == {"verdict": "cannot", "islands": None, "proven": set(),
                                         "why": None}


def test_a_budget_spent_mid_search_keeps_the_best_set_and_what_was_proven():
    from stages.host.precision_budget import BudgetSpent
    from stages.host.precision_search import choose

    class Spent(FakeSearch):
        def ok(self, islands):
            if len(self.asked) == 4:
                raise BudgetSpent("no time")
            ok = FakeSearch.ok(self, islands)
            if ok and (self.best is None or len(islands) < len(self.best)):
                self.best = frozenset(islands)
            return ok
    search = Spent(lambda kept: "a" in kept)
    result = choose(search, [("beyond range", None, [["b"], ["a"]]), ("near range", None,
                                                                      [["c"]])])
    # naive, all, without a+b (fails), without b (passes); then the budget ends it
    assert result == {"verdict": "budget", "islands": frozenset({"a", "c"}), "proven": set(),
                      "why": "no time"}


def test_seed_units_take_no_node_that_is_already_a_candidate():
    from stages.host.precision_search import groups
    scale = numpy_helper.from_array(np.ones(2, np.float32), "scale")
    nodes = [helper.make_node("LayerNormalization", ["x", "scale"], ["h"], name="ln"),
             helper.make_node("Softmax", ["h"], ["y"], name="soft")]
    model = _model(nodes, [_io("x", [1, 2])], [_io("y", [1, 2])], [scale])
    ranges = [{"node": "ln", "max_abs": 1e5}, {"node": "soft", "max_abs": 5000.0}]
    cands = [dict(ranges[0], reason="beyond")]
    out = groups(model, ranges, cands, ["LayerNorm", "Softmax"])
    assert out == [("beyond range", None, [["ln"]]),
                   ("Softmax", "engine.keep_fp32 Softmax", [["soft"]])]


# --- which rows the device limits are derived from -------------------------------------------

def test_device_limits_come_from_the_worst_row_times_the_margin():
    from stages.host.precision_preview import derive_limits
    golden = np.zeros((1, 2, 1, 2), np.float32)
    golden[0, 0] = [[10.0, 10.0]]  # class 0 wins by 10: no flip within these errors
    case = _case(golden)
    rows = [_row(0.999, 0.99, 0.1, 0.01), _row(0.998, 0.995, 0.3, 0.002)]
    lim = derive_limits(rows, [case], 2.0)
    assert lim["logits_max_abs"] == pytest.approx(0.6)
    assert lim["logits_mean_abs"] == pytest.approx(0.02)
    assert lim["mask_agreement"] == 0.998 and lim["miou"] == 0.99
    # an error of 2 x 3 = 6 >= half the gap flips every pixel: the flip bound is the limit
    assert derive_limits([_row(1.0, 1.0, 3.0, 0.1)], [case], 2.0)["mask_agreement"] == 0.0
    assert derive_limits([_row(1.0, 1.0, 2.4, 0.1)], [case], 2.0)["mask_agreement"] == 1.0
    golden[0, 0] = [[10.0, 1.0]]  # gaps 10 and 1: an error of 0.6 flips the second pixel only
    lim = derive_limits([_row(1.0, 1.0, 0.3, 0.1)], [_case(golden)], 2.0)
    assert (lim["mask_agreement"], lim["miou"]) == (0.5, 0.25)
    assert lim["margin"].startswith("logits max/mean abs: 2 x the emulated fp16 error")


# --- the islands recorded for the device -----------------------------------------------------

def _island_model():
    """x -> square (Mul x*x, the island) -> h -> relu -> r -> soft -> logits (opset 13: the 8.2
    double's parser)."""
    nodes = [helper.make_node("Mul", ["pixel_values", "pixel_values"], ["h"], name="square"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["logits"], name="soft", axis=1)]
    return _model(nodes, [_io("pixel_values", [1, 4])], [_io("logits", [1, 4])], opset=13)


def _record(model, kept):
    """precision.json's record of a search that kept `kept`, through the link's own _contract."""
    from stages.host import fp16_convert, precision_link
    from stages.host.precision_budget import Budget
    from stages.host.precision_scan import node_ranges
    golden = np.array([[[[1.0, 2.0, 3.0, 4.0]], [[4.0, 3.0, 2.0, 1.0]]]], np.float32)
    cases = [_case(golden)]
    ranges = node_ranges(model, [{"pixel_values": np.array([[1.0, -2.0, 3.0, -4.0]],
                                                            np.float32)}])
    all_groups = [("beyond range", None, [[n] for n in sorted(kept)]),
                  ("near range", None, [["relu"]])]

    class Seen(object):
        runs, goal = 3, {"mask_agreement": 0.99, "miou": 0.98}
        seen = {frozenset(): [_row(0.5, 0.5, 9.0, 1.0)],
                frozenset(kept): [_row(1.0, 1.0, 0.2, 0.01), _row(1.0, 1.0, 0.1, 0.03)]}
    cfg = {"precision": {"margin": 2.0, "budget_minutes": 1, "budget_mb": 1000},
           "verify": {"fp16": {"mask_agreement": 0.99, "miou": 0.98}}}
    result = {"proven": set(kept), "verdict": "islands"}
    mixed = fp16_convert.to_mixed(model, set(kept))
    found = (ranges, [], all_groups, set(kept) | {"relu"})
    report = precision_link._contract(cfg, Seen(), result, found, (cases, set(kept), mixed),
                                    Budget(1, 1000, out=open(os.devnull, "w")))
    return report, mixed


def test_the_report_names_model_onnx_tensors_and_the_mixed_rows_give_the_limits():
    model = _island_model()
    report, mixed = _record(model, {"square"})
    [island] = report["islands"]
    names = set(t for n in model.graph.node for t in n.output)
    assert island["node"] == "square" and island["op"] == "Mul"
    assert island["outputs"] == ["h"] and set(island["outputs"]) <= names
    assert island["reason"] == "near fp16's range; the preview without it misses the mask goal"
    assert island["mixed_outputs"] != island["outputs"]  # the converter did rename them
    assert set(island["mixed_outputs"]) <= set(t for n in mixed.graph.node for t in n.output)
    assert report["preview"]["mixed"] == [_row(1.0, 1.0, 0.2, 0.01), _row(1.0, 1.0, 0.1, 0.03)]
    assert report["preview"]["naive"] == [_row(0.5, 0.5, 9.0, 1.0)]
    assert report["limits"]["logits_max_abs"] == pytest.approx(0.4)  # 2 x the mixed worst
    assert report["limits"]["logits_mean_abs"] == pytest.approx(0.06)
    assert report["keep_fp32"] == {} and report["previews_run"] == 3


def test_an_8x_build_through_the_double_pins_exactly_the_recorded_islands(
        tmp_path, monkeypatch, request):
    from runtime import files, sidecar
    from stages.common.layout import Layout
    from stages.device import engine, settings
    model = _island_model()
    report, mixed = _record(model, {"square"})
    monkeypatch.chdir(tmp_path)
    use_trt_doubles(monkeypatch, request, "8.2")
    layout = Layout({"artifacts": "artifacts", "golden": {"images": []}})
    data, mixed_data = model.SerializeToString(), mixed.SerializeToString()
    files.write_bytes(layout.onnx_model, data)
    manifest = {"input": {"height": 1, "width": 4}, "labels": ["a", "b", "c", "d"],
                "mean": [0, 0, 0], "std": [1, 1, 1], "rescale_factor": 1.0}
    meta = sidecar.model_sidecar(manifest, "pillow13", [1, 4], files.sha256_bytes(data), [])
    files.write_json(os.path.join(layout.onnx_dir, "model.json"), meta)
    files.write_bytes(layout.precision_model, mixed_data)
    files.write_json(layout.precision_report, dict(
        report, onnx_sha256=meta["onnx_sha256"], mixed_sha256=files.sha256_bytes(mixed_data)))
    cfg = {"engine": {"precision": "fp16", "workspace_mb": 64, "timing_cache": False,
                      "keep_fp32": ["LayerNorm"]}}
    engine.run_build(cfg, layout)
    pins = settings.engine_folder(layout).read()["engine"]["build"]["precision"]
    assert pins["typing"] == "weak" and pins["islands"] == 1
    assert pins["unmatched_islands"] == [] and pins["pinned_layers"] == ["square"]
    assert pins["island_tensors"] == ["h"]


# --- the rewrite's guards: join_islands and unshare_initializers -----------------------------

def _cast(src, dst, to, name):
    return helper.make_node("Cast", [src], [dst], name=name, to=to)


def _joined(nodes, inputs, outputs):
    from stages.host.fp16_convert import join_islands
    out = join_islands(_model(nodes, inputs, outputs, opset=13))
    return [n.name for n in out.graph.node], dict((n.name, list(n.input)) for n in out.graph.node)


F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def test_join_islands_removes_an_fp32_fp16_fp32_round_trip():
    one = helper.make_tensor("one", F32, [2], [1.0, 1.0])
    names, inputs = _joined([helper.make_node("Constant", [], ["k"], name="k", value=one),
                             _cast("x", "x16", F16, "down"), _cast("x16", "x32", F32, "up"),
                             helper.make_node("Add", ["x32", "k"], ["y"], name="add")],
                            [_io("x", [2])], [_io("y", [2])])  # a node without inputs too
    assert names == ["k", "down", "add"] and inputs["add"] == ["x", "k"]


@pytest.mark.parametrize("nodes,inputs,outputs,why", [
    # the round trip's end is a graph output: its name must stay produced
    ([_cast("x", "x16", F16, "down"), _cast("x16", "y", F32, "up")], [_io("x", [2])],
     [_io("y", [2])], "graph output"),
    # the first step is no Cast: an fp16 op's output is cast up, a real conversion
    ([_cast("x", "x16", F16, "down"), helper.make_node("Relu", ["x16"], ["r16"], name="relu"),
      _cast("r16", "up32", F32, "up"), helper.make_node("Relu", ["up32"], ["y"], name="out")],
     [_io("x", [2])], [_io("y", [2])], "not a cast"),
    # the first Cast goes to fp32, not fp16
    ([_cast("x", "a", F32, "down"), _cast("a", "up32", F32, "up"),
      helper.make_node("Relu", ["up32"], ["y"], name="out")],
     [_io("x", [2])], [_io("y", [2])], "first cast to fp32"),
    # the second Cast goes to fp16, not fp32: renaming would make an fp16 tensor fp32
    ([_cast("x", "x16", F16, "down"), _cast("x16", "up", F16, "up"),
      _cast("up", "y", F32, "out")], [_io("x", [2])], [_io("y", [2])], "second cast to fp16"),
    # the source is fp16 already: Cast(fp16->fp16)->Cast(fp32) is a real conversion
    ([_cast("x", "x16", F16, "down"), _cast("x16", "up32", F32, "up"),
      helper.make_node("Relu", ["up32"], ["y"], name="out")],
     [_io("x", [2], F16)], [_io("y", [2])], "source is fp16"),
])
def test_join_islands_leaves_every_other_cast_alone(nodes, inputs, outputs, why):
    names, _ = _joined(nodes, inputs, outputs)
    assert "up" in names, why


def _shared_bias_model():
    """Two Adds read the same initializer `b`: `first` (the island) and `second` (fp16)."""
    b = numpy_helper.from_array(np.array([1.5, -2.0], np.float32), "b")
    c = numpy_helper.from_array(np.array([3.0, 4.0], np.float32), "c")
    nodes = [helper.make_node("Add", ["x", "b"], ["h"], name="first"),
             helper.make_node("Add", ["h", "b"], ["k"], name="second"),
             helper.make_node("Add", ["k", "c"], ["y"], name="third")]
    return _model(nodes, [_io("x", [2])], [_io("y", [2])], [b, c], opset=13)


def test_unshare_gives_an_island_its_own_copy_of_a_shared_initializer_only():
    from stages.host.fp16_convert import unshare_initializers
    model = _shared_bias_model()
    unshare_initializers(model, {"first", "third"})
    inits = dict((t.name, numpy_helper.to_array(t)) for t in model.graph.initializer)
    assert sorted(inits) == ["b", "b__fp32_island", "c"]  # c: read by an island only
    assert np.array_equal(inits["b__fp32_island"], inits["b"])
    inputs = dict((n.name, list(n.input)) for n in model.graph.node)
    assert inputs == {"first": ["x", "b__fp32_island"], "second": ["h", "b"],
                      "third": ["k", "c"]}
    alone = _shared_bias_model()
    unshare_initializers(alone, set())  # no island: nothing shared between fp32 and fp16
    assert [t.name for t in alone.graph.initializer] == ["b", "c"]


def test_the_mixed_model_types_each_reader_of_a_shared_initializer_as_its_node():
    from stages.host.fp16_convert import to_mixed
    from stages.host.fp16_emulate import tensor_types
    mixed = to_mixed(_shared_bias_model(), {"first"})
    types = tensor_types(mixed)
    by_name = dict((n.name, n) for n in mixed.graph.node)
    assert types[by_name["first"].input[1]] == F32
    assert types[by_name["second"].input[1]] == F16
    onnx.checker.check_model(mixed)


# --- the switchboard equals the converter + emulation path, bit for bit ----------------------

def _board_model():
    """pixel_values -> scale (x * w) -> a -> square (a * a: 90,000 for 300, inf in fp16) -> b
    -> root (Sqrt) -> c -> add (c + w: w shared with `scale`) -> d -> relu -> logits; tiny
    weights (1e-8: zero in fp16), a value beyond 65504 (clamped) and fractions that fp16 rounds."""
    w = numpy_helper.from_array(np.array([300.0, 0.5001, 3.14159, -2.7], np.float32), "w")
    big = numpy_helper.from_array(np.array([1e-8, 70000.0, 0.1, 1.0 / 3], np.float32), "big")
    nodes = [helper.make_node("Mul", ["pixel_values", "w"], ["a"], name="scale"),
             helper.make_node("Mul", ["a", "a"], ["b"], name="square"),
             helper.make_node("Sqrt", ["b"], ["c"], name="root"),
             helper.make_node("Add", ["c", "w"], ["d"], name="add"),
             helper.make_node("Mul", ["d", "big"], ["e"], name="tiny"),
             helper.make_node("Relu", ["e"], ["logits"], name="relu")]
    return _model(nodes, [_io("pixel_values", [1, 4])], [_io("logits", [1, 4])], [w, big],
                  opset=13)


def _emulated(model, islands, x):
    from stages.host import fp16_convert, fp16_emulate
    typed = fp16_convert.to_mixed(model, set(islands))
    sess = fp16_emulate.session(fp16_emulate.emulate_fp16_storage(typed))
    return sess.run(["logits"], {"pixel_values": x})[0]


@pytest.mark.parametrize("switchable", [("scale", "square", "root", "add", "tiny"),
                                        ("square", "root", "relu")])
def test_the_switchboard_equals_the_mixed_model_emulation_bit_for_bit(switchable):
    from itertools import combinations
    from stages.host.fp16_switchboard import Board
    model = _board_model()
    x = np.array([[1.0, 0.3, 0.7, -0.2]], np.float32)
    board = Board(model, switchable)
    for k in range(len(switchable) + 1):
        for kept in combinations(switchable, k):
            got = board.run(kept, {"pixel_values": x})
            assert np.array_equal(got, _emulated(model, kept, x), equal_nan=True), kept
    naive, kept = (board.run(k, {"pixel_values": x})[0] for k in ([], ["square", "root"]))
    assert np.isnan(naive[0]) and kept[0] == 0  # 90,000 -> inf in fp16, times 1e-8 -> 0
    assert 30000 < kept[1] < FP16_MAX  # 0.65 x 70000 clamped to 65504, not 0.65 x inf
    assert kept[2] == np.float32(np.float16(kept[2]))


# --- the link's refusals ---------------------------------------------------------------------

def test_the_link_fails_naming_the_image_and_the_limit_missed():
    from stages.host.precision_link import _failure
    limits = {"logits_max_abs": 0.5, "logits_mean_abs": 0.1, "mask_agreement": 0.99,
              "miou": 0.9}
    good = _row(0.99, 0.9, 0.5, 0.1)
    assert _failure([good, good], limits, "model.mixed.onnx") is None
    bad = dict(_row(0.99, 0.85, 0.5, 0.1), image="examples/b.jpg")
    text = _failure([good, bad], limits, "model.mixed.onnx")
    assert text.startswith("The fp16 preview of model.mixed.onnx fails on examples/b.jpg: miou")
    assert "against verify.fp16.miou 0.9;" in text
    inf = dict(_row(inf=3), image="c.jpg")
    assert "c.jpg: NaN/Inf logits 3;" in _failure([inf], limits, "m")


def test_an_unknown_keep_fp32_group_is_refused_and_the_known_ones_pass():
    from stages.common.errors import ConfigError
    from stages.host.precision_link import _check_groups
    _check_groups(["LayerNorm", "Softmax"])
    _check_groups([])
    with pytest.raises(ConfigError, match="engine.keep_fp32 names softmax, but the groups are "
                                          "LayerNorm, Softmax"):
        _check_groups(["LayerNorm", "softmax"])


def test_an_island_that_makes_a_graph_output_keeps_it_fp32():
    """Found by these tests: onnxconverter-common (keep_io_types) cast such an island's output to
    fp16 and declared the graph output fp16, so model.mixed.onnx's logits were fp16."""
    from stages.host.fp16_convert import to_mixed
    from stages.host.fp16_emulate import tensor_types
    model = _board_model()
    for kept in ({"relu"}, {"tiny", "relu"}, set()):
        mixed = to_mixed(model, kept)
        onnx.checker.check_model(mixed)
        assert [o.type.tensor_type.elem_type for o in mixed.graph.output] == [F32], kept
        producer = dict((o, n) for n in mixed.graph.node for o in n.output)["logits"]
        assert producer.op_type == "Cast" and tensor_types(mixed)[producer.input[0]] == (
            F32 if "relu" in kept else F16)


# --- the search's previews: one per island set, the best set, the budget ---------------------

class FakeBoard(object):
    """Logits per island set: the golden ones when "a" is kept, else a flipped class."""

    def __init__(self, golden):
        self.golden, self.calls = golden, []

    def run(self, key, feed):
        self.calls.append(key)
        return self.golden if "a" in key else self.golden[:, ::-1].copy()


def _search(budget_minutes=1.0):
    from stages.host.precision_budget import Budget
    from stages.host.precision_search import Search
    golden = np.array([[[[3.0, 1.0]], [[0.0, 2.0]]]], np.float32)
    rec, _, golden, mask = _case(golden)
    cases = [(rec, np.zeros((1, 2), np.float32), golden, mask)] * 2
    import io
    budget = Budget(budget_minutes, 1e6, out=io.StringIO())
    board = FakeBoard(golden)
    goal = {"mask_agreement": 0.99, "miou": 0.98}
    return Search(board, cases, ["x", "y"], goal, budget, 0.0), board


def test_a_search_previews_each_island_set_once_and_remembers_the_smallest_passing_one():
    search, board = _search()
    assert search.ok({"a", "b"}) and not search.ok(set()) and search.ok({"a"})
    assert search.ok({"b", "a"}) and not search.ok(set())  # from memory: no new run
    assert search.runs == 3 and len(board.calls) == 6  # one run per golden image
    assert search.best == frozenset({"a"})
    assert search.seen[frozenset()][0]["mask_agreement"] == 0.0
    assert search.budget.estimate("preview") >= 0.0 and "preview" in search.budget.cost


def test_a_search_out_of_time_raises_budget_spent_before_running():
    from stages.host.precision_budget import BudgetSpent
    search, board = _search(budget_minutes=0.0)
    with pytest.raises(BudgetSpent):
        search.ok(set())
    assert board.calls == [] and search.runs == 0


def test_the_verdict_sentences_carry_their_numbers():
    from stages.host import precision_verdict as pv
    rows = [_row(0.97, 0.9)]
    goal = {"mask_agreement": 0.995, "miou": 0.98}
    assert pv.found({"a", "b"}, 7, 12.4) == ("2 fp32 island(s) keep the masks within the goal "
                                            "(7 previews, 12 s).")
    text = pv.spent("time", {"a"}, rows, goal, 3)
    assert text.startswith("Budget spent: time; keeping the best set found, 1 fp32 island(s) "
                           "with mask agreement 97.0000% and mIoU 0.9000 (goal 99.5000%, 0.9800)")
    assert "precision.budget_minutes (now 3)" in text
    assert "precision.budget_minutes (now 3)" in pv.spent("memory", None, None, goal, 3)
    m = {"margin_median": 1.5, "margin_p5": 0.25, "fp16_logits_mean_abs_error": 0.125,
         "fp16_logit_rounding_median": 0.002, "pixels_below_twice_error": 0.1234}
    text = pv.cannot(m, rows, goal, 9)
    assert "even with all 9 LayerNorm" in text and "median 1.5 and 5th percentile 0.25" in text
    assert "differ by 0.125 on average (fp16 stores them to about 0.002), and 12.34% of" in text
    assert "against the 0.500% disagreement the goal allows" in text


def test_the_real_search_chooses_through_its_previews():
    from stages.host.precision_search import choose
    search, board = _search()
    groups = [("beyond range", None, [["b"], ["a"]]), ("near range", None, [["c"]])]
    result = choose(search, groups)
    assert result["verdict"] == "islands" and result["islands"] == {"a"}
    assert result["proven"] == {"a"} and search.best == frozenset({"a"})
    assert search.runs == 5  # naive, all, without b+a, without b, without c
    lines = [l for l in search.budget.out.getvalue().splitlines() if "] preview " in l]
    assert [l.split("] ")[1].split(" (")[0] for l in lines] == [
        "preview 1 of at most 6", "preview 2 of at most 6", "preview 3 of at most 7",
        "preview 4 of at most 7", "preview 5 of at most 6"]  # the drop step's bound counts
    # the preview being made too, so its "at most" is one above (a progress line only)


def test_the_scan_keeps_each_tensors_peak_over_every_image_initializers_and_outputs_too():
    from stages.host.precision_scan import node_ranges
    w = numpy_helper.from_array(np.array([2.0, -3.0], np.float32), "w")
    zero = numpy_helper.from_array(np.zeros(2, np.float32), "zero")
    big = numpy_helper.from_array(np.array([70000.0, 1.0], np.float32), "big")
    nodes = [helper.make_node("Mul", ["x", "w"], ["y"], name="mul"),  # its output is its peak
             helper.make_node("Mul", ["x", "zero"], ["z"], name="zeros"),
             helper.make_node("Mul", ["z", "big"], ["g"], name="gate"),  # an initializer's peak
             helper.make_node("Shape", ["y"], ["s"], name="shape"),  # int64 out: not measured
             helper.make_node("Cast", ["s"], ["f"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Add", ["g", "f"], ["out"], name="add")]
    model = _model(nodes, [_io("x", [1, 2])], [_io("out", [1, 2]), _io("y", [1, 2])],
                   [w, zero, big], opset=13)
    seen = []
    feeds = [{"x": np.array([[-50.0, 1.0]], np.float32)},  # the larger image first
             {"x": np.array([[1.0, 2.0]], np.float32)}]
    rows = dict((r["node"], r) for r in node_ranges(model, feeds, lambda i, n: seen.append((i, n))))
    assert seen == [(1, 2), (2, 2)]
    assert (rows["mul"]["max_abs"], rows["mul"]["where"]) == (100.0, "output y")
    assert (rows["gate"]["max_abs"], rows["gate"]["where"]) == (70000.0, "input big")
    assert (rows["shape"]["max_abs"], rows["shape"]["where"]) == (100.0, "input y")
    assert (rows["cast"]["max_abs"], rows["cast"]["where"]) == (2.0, "output f")
    assert list(rows) == ["mul", "zeros", "gate", "shape", "cast", "add"]


def test_each_island_says_why_and_the_seed_groups_count_what_was_kept():
    from stages.host.precision_link import _reasons, _seeds
    all_groups = [("beyond range", None, [["a"]]),
                  ("LayerNorm", "engine.keep_fp32 LayerNorm", [["l1", "l2"], ["l3"]]),
                  ("near range", None, [["c"]])]
    cands = [{"node": "a", "reason": "max |x| 7e+04 > 65504 (output y)"}]
    out = _reasons(all_groups, cands, {"a"}, "islands")
    assert out == {"a": "max |x| 7e+04 > 65504 (output y); the preview without it misses the "
                        "mask goal",
                   "l1": "engine.keep_fp32 LayerNorm; kept with its group",
                   "l2": "engine.keep_fp32 LayerNorm; kept with its group",
                   "l3": "engine.keep_fp32 LayerNorm; kept with its group",
                   "c": "near fp16's range; kept with its group"}
    spent = _reasons(all_groups, cands, set(), "budget")
    assert spent["c"] == "near fp16's range; not tested alone: the budget ended the search"
    assert _seeds(all_groups, {"a", "l2"}) == {"LayerNorm": {"units": 2, "kept": 1}}
