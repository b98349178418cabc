"""The range scan and the search, in this process on small hand-built ONNX graphs (fast, for the
mutation run, issue 25): peaks below 1 and of empty tensors, a fused op's peak over several
images, its intermediates in double precision at 65504, the fused LayerNorm seed, and the
search's previews (the real switchboard's feed, the budget's reserve, the best set, and its
progress line under a budget whose clock the test fixes)."""
import io

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from test_bite_precision import FakeBoard, FakeSearch, _case, _io, _model  # noqa: E402

FP16_MAX = 65504.0


def _ranges(model, *images):
    from stages.host.precision_scan import node_ranges
    feeds = [{"x": np.asarray(x, np.float32)} for x in images]
    return dict((r["node"], r) for r in node_ranges(model, feeds))


# --- the scan --------------------------------------------------------------------------------

def test_small_values_and_an_empty_tensor_keep_their_own_peaks():
    """An int64 Constant first (nothing to measure), a Resize with an empty roi: the peaks are
    the values themselves, below 1, and 0 for the empty tensor."""
    sizes = helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 1, 2, 4])
    roi = numpy_helper.from_array(np.zeros(0, np.float32), "roi")
    nodes = [helper.make_node("Constant", [], ["sz"], name="sizes", value=sizes),
             helper.make_node("Resize", ["x", "roi", "", "sz"], ["y"], name="resize",
                              mode="nearest")]
    model = _model(nodes, [_io("x", [1, 1, 1, 2])], [_io("y", [1, 1, 2, 4])], [roi], opset=13)
    rows = _ranges(model, [[[[0.25, -0.5]]]])
    assert list(rows) == ["resize"]
    assert rows["resize"]["max_abs"] == 0.5 and rows["resize"]["where"] == "output y"
    from stages.host.precision_scan import tensor_maxima
    peaks, inside = tensor_maxima(model, [{"x": np.array([[[[0.25, -0.5]]]], np.float32)}])
    assert peaks == {"roi": 0.0, "x": 0.5, "y": 0.5} and inside == {}


def _layernorm(scale):
    s = numpy_helper.from_array(np.full(2, scale, np.float32), "scale")
    node = helper.make_node("LayerNormalization", ["x", "scale"], ["y"], name="ln", axis=-1)
    return _model([node], [_io("x", [1, 2])], [_io("y", [1, 2])], [s])


def test_a_fused_ops_intermediate_peak_is_kept_over_images_and_may_be_below_1():
    from stages.host.precision_scan import candidates
    big = _ranges(_layernorm(1.0), [[-300.0, 300.0]], [[-10.0, 10.0]])["ln"]
    assert big["max_abs"] == 90000.0 and big["where"] == "its intermediates"
    [found] = candidates([big])
    assert found["reason"] == "max |x| 9e+04 > 65504 (its intermediates)"
    # squared deviations 1e-4, the output +-0.095: the scale, 0.1, is the peak, not 1
    tiny = _ranges(_layernorm(0.1), [[-0.01, 0.01]])["ln"]
    assert (tiny["max_abs"], tiny["where"]) == (float(np.float32(0.1)), "input scale")


def test_a_fused_ops_intermediates_are_judged_in_double_precision_at_65504():
    """Squared deviations of 65503.99998 (in range): float32 arithmetic would round them to
    65504.0039, beyond fp16's range."""
    from stages.host.precision_scan import candidates
    x = np.array([383.90625, 2.3e-05, 0.0], np.float32)
    exact = float(((x.astype(np.float64) - x.astype(np.float64).mean()) ** 2).max())
    assert exact <= FP16_MAX < float(((x - x.mean()) ** 2).max())
    s = numpy_helper.from_array(np.ones(3, np.float32), "scale")
    node = helper.make_node("LayerNormalization", ["x", "scale"], ["y"], name="ln", axis=-1)
    model = _model([node], [_io("x", [1, 3])], [_io("y", [1, 3])], [s])
    rows = _ranges(model, [x])
    assert rows["ln"]["max_abs"] == exact and candidates(list(rows.values())) == []


# --- the search ------------------------------------------------------------------------------

def test_a_fused_layernorm_is_a_layernorm_seed():
    from stages.host.precision_search import groups
    s = numpy_helper.from_array(np.ones(2, np.float32), "scale")
    nodes = [helper.make_node("LayerNormalization", ["x", "scale"], ["h"], name="ln"),
             helper.make_node("Relu", ["h"], ["y"], name="relu")]
    model = _model(nodes, [_io("x", [1, 2])], [_io("y", [1, 2])], [s])
    ranges = [{"node": "ln", "max_abs": 3.0}, {"node": "relu", "max_abs": 1.0}]
    assert groups(model, ranges, [], ["LayerNorm"]) == [
        ("LayerNorm", "engine.keep_fp32 LayerNorm", [["ln"]])]


def test_a_budget_spent_after_a_unit_was_proven_keeps_it_proven():
    from stages.host.precision_budget import BudgetSpent
    from stages.host.precision_search import choose

    class Spent(FakeSearch):
        def ok(self, islands):
            if len(self.asked) == 4:
                raise BudgetSpent("no time")
            return FakeSearch.ok(self, islands)
    search = Spent(lambda kept: "a" in kept)
    search.best = frozenset({"a", "b"})
    # naive, all, without a+b (fails), without a (fails: a proven), then the budget ends it
    result = choose(search, [("beyond range", None, [["a"], ["b"]])])
    assert result == {"verdict": "budget", "islands": frozenset({"a", "b"}), "proven": {"a"},
                      "why": "no time"}


def _scale_model():
    """pixel_values [1, 2, 1, 2] x w -> logits: fp16 rounds both, fp32 keeps them."""
    w = numpy_helper.from_array(np.array([0.3, 1.7], np.float32).reshape(1, 2, 1, 1), "w")
    node = helper.make_node("Mul", ["pixel_values", "w"], ["logits"], name="scale")
    return _model([node], [_io("pixel_values", [1, 2, 1, 2])], [_io("logits", [1, 2, 1, 2])],
                  [w], opset=13)


def test_the_search_runs_each_golden_tensor_on_the_switchboard():
    from stages.host.fp16_switchboard import Board
    from stages.host.precision_budget import Budget
    from stages.host.precision_search import Search
    x = np.array([0.1, 0.7, 0.35, 0.9], np.float32).reshape(1, 2, 1, 2)
    golden = x * np.array([0.3, 1.7], np.float32).reshape(1, 2, 1, 1)
    rec, _, golden, mask = _case(golden)
    search = Search(Board(_scale_model(), ["scale"]), [(rec, x, golden, mask)], ["a", "b"],
                    {"mask_agreement": 0.99, "miou": 0.98}, Budget(1, 1e6, out=io.StringIO()),
                    0.0)
    [fp32] = search.rows({"scale"})
    assert fp32["logits_max_abs"] == 0.0
    [fp16] = search.rows(set())
    h = lambda a: np.asarray(a, np.float32).astype(np.float16).astype(np.float32)  # noqa: E731
    error = np.abs(h(h(x) * h(np.array([0.3, 1.7], np.float32).reshape(1, 2, 1, 1))) - golden)
    assert fp16["logits_max_abs"] == pytest.approx(float(error.max()), rel=1e-6)
    assert fp16["logits_max_abs"] > 0


@pytest.mark.parametrize("cost,reserve,spent", [(20.0, 50.0, True), (20.0, 30.0, False)])
def test_a_preview_needs_its_last_cost_and_the_reserve_left(cost, reserve, spent):
    from stages.host.precision_budget import Budget, BudgetSpent
    from stages.host.precision_search import Search
    budget = Budget(1, 1e6, out=io.StringIO())  # 60 s
    budget.cost["preview"] = (cost, 0.0)
    board = FakeBoard(_case(np.array([[[[3.0]], [[0.0]]]], np.float32))[2])
    rec, _, golden, mask = _case(board.golden)
    search = Search(board, [(rec, np.zeros(1, np.float32), golden, mask)], ["x", "y"],
                    {"mask_agreement": 0.99, "miou": 0.98}, budget, reserve)
    if spent:
        with pytest.raises(BudgetSpent, match="the next preview"):
            search.ok({"a"})
        assert board.calls == []
    else:
        assert search.ok({"a"}) and len(board.calls) == 1


# --- the search's best set and its progress lines, under a budget whose clock is fixed -------

def _fixed_budget(left, each):
    """The real Budget with a fixed time left and a fixed cost per preview (no wall clock)."""
    from stages.host.precision_budget import Budget

    class Fixed(Budget):
        def left(self):
            return left

        def measured(self, kind, started, rss_before):
            self.cost[kind] = (each, 0.0)
    return Fixed(1, 1e6, out=io.StringIO())


def _fixed_search(left, each, reserve=0.0):
    from stages.host.precision_search import Search
    rec, _, golden, mask = _case(np.array([[[[3.0, 1.0]], [[0.0, 2.0]]]], np.float32))
    board = FakeBoard(golden)  # the golden logits when "a" is kept, else every pixel flipped
    return Search(board, [(rec, np.zeros(1, np.float32), golden, mask)], ["x", "y"],
                  {"mask_agreement": 0.99, "miou": 0.98}, _fixed_budget(left, each), reserve)


def _lines(search):
    return [l.split("] ", 1)[1] for l in search.budget.out.getvalue().splitlines()]


def test_the_best_set_is_the_first_smallest_that_passes_and_the_lines_say_what_is_left():
    search = _fixed_search(0.75, 0.1, reserve=0.25)  # 0.5 s for previews of 0.1 s: 4 more
    assert search.ok({"a", "b"})
    search.bound = 20
    assert not search.ok(set()) and search.ok({"a", "c"})
    assert search.best == frozenset({"a", "b"})
    goal = "goal 99.0000%, 0.9800); best set so far: 2 islands; ETA 0:00"
    assert _lines(search) == [
        "preview 1 of at most 1 (2 islands: agreement 100.0000%, mIoU 1.0000; " + goal,
        "preview 2 of at most 6 (0 islands: agreement 0.0000%, mIoU 0.0000; " + goal,
        "preview 3 of at most 7 (2 islands: agreement 100.0000%, mIoU 1.0000; " + goal]
    slow = _fixed_search(100.0, 7.0)
    slow.bound = 20
    slow.ok({"a"})
    assert _lines(slow)[0].endswith("best set so far: 1 islands; ETA 1:38")  # 14 x 7 s


def test_a_preview_of_no_measured_cost_promises_no_more():
    search = _fixed_search(100.0, 0.0)
    search.bound = 5
    search.ok({"a"})
    assert _lines(search)[0].startswith("preview 1 of at most 1 (1 islands")


def test_a_search_with_no_unit_says_one_preview_at_most():
    from stages.host.precision_search import choose
    search = _fixed_search(100.0, 1.0)
    assert choose(search, [])["verdict"] == "cannot"
    assert _lines(search) == ["preview 1 of at most 1 (0 islands: agreement 0.0000%, mIoU "
                              "0.0000; goal 99.0000%, 0.9800); best set so far: none; ETA 0:00"]
