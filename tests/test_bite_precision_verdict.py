"""The precision link's verdicts and printout: the budget verdict keeps the best set or refuses,
the "cannot" sentence's margin statistics on constructed logits, and the lines `doit precision`
prints (twenty islands at most, the seeds, the limits, the note on stricter explicit limits)."""
import numpy as np
import pytest

FP16 = {"input_max_abs": 1e-3, "logits_max_abs": 0.05, "logits_mean_abs": 0.006,
        "mask_agreement": 0.99, "miou": 0.95}


# --- the margins of the "cannot" verdict -----------------------------------------------------

def _case(gaps, top):
    """Golden logits 1x3x1xN: at each pixel the winner is `top`, the runner-up `top - gap`, and
    a third class far below; the winner's channel alternates so the sort must find it."""
    gaps = np.asarray(gaps, np.float64)
    winner, second, third = top + 0 * gaps, top - gaps, top - 500 + 0 * gaps
    odd = np.arange(len(gaps)) % 2 == 1
    first = np.where(odd, second, winner)
    other = np.where(odd, winner, second)
    logits = np.stack([third, first, other])[None, :, None, :].astype(np.float32)
    return {"source": "x.jpg"}, None, logits, None


def _rows(*means):
    return [{"logits_max_abs": 1.0, "logits_mean_abs": m, "mask_agreement": 1.0, "miou": 1.0,
             "nan": 0, "inf": 0} for m in means]


def test_margins_are_the_top2_gaps_percentiles_over_every_image_against_the_worst_error():
    from stages.host.precision_verdict import margins
    # gaps 0..100 over two images; winners at -1000: the rounding is |top| / 2048
    cases = [_case(range(0, 40), -1000.0), _case(range(40, 101), -1000.0)]
    m = margins(cases, _rows(4.0, 10.0))
    assert m["margin_p1"] == pytest.approx(1.0) and m["margin_p5"] == pytest.approx(5.0)
    assert m["margin_median"] == pytest.approx(50.0)
    assert m["fp16_logit_rounding_median"] == pytest.approx(1000 / 2048.0)
    assert m["fp16_logits_mean_abs_error"] == 10.0  # the worse of the two rows
    assert m["pixels_below_twice_error"] == pytest.approx(20 / 101.0)  # gaps 0..19 < 20
    assert m["pixels_below_twice_rounding"] == pytest.approx(1 / 101.0)  # only the gap of 0
    assert sorted(m) == ["fp16_logit_rounding_median", "fp16_logits_mean_abs_error",
                         "margin_median", "margin_p1", "margin_p5", "pixels_below_twice_error",
                         "pixels_below_twice_rounding"]
    assert all(type(v) is float for v in m.values())


def test_margins_rounding_grows_with_the_top_logit_and_counts_gaps_below_twice_it():
    from stages.host.precision_verdict import margins
    # winners at 4096 (rounding 2, twice 4): gaps 0..3 of 0..9 are below; 4 is not
    m = margins([_case(range(10), 4096.0)], _rows(2.0))
    assert m["fp16_logit_rounding_median"] == 2.0
    assert m["pixels_below_twice_rounding"] == pytest.approx(0.4)
    assert m["pixels_below_twice_error"] == pytest.approx(0.4)  # gaps 0..3 < 2 x 2.0
    assert m["margin_median"] == pytest.approx(4.5)


# --- the verdict of a spent budget, and what the link prints ---------------------------------

def _row(agree=1.0, miou=1.0, max_abs=0.01, mean_abs=0.001, image="examples/a.jpg"):
    return {"image": image, "mask_agreement": agree, "miou": miou, "logits_max_abs": max_abs,
            "logits_mean_abs": mean_abs, "nan": 0, "inf": 0}


class Seen(object):
    """What _verdict reads of a finished search: the rows of each previewed set, goal, runs."""
    goal, runs = {"mask_agreement": 0.995, "miou": 0.975}, 4
    seen = {frozenset(): [_row(0.5)], frozenset({"a"}): [_row(0.997, 0.99)],
            frozenset({"a", "b"}): [_row()]}


def test_a_budget_spent_mid_search_keeps_the_best_set_and_without_one_is_refused():
    import io
    from stages.host import precision_verdict as pv
    from stages.host.precision_budget import Budget
    from stages.host.precision_link import PrecisionError, _verdict
    budget = Budget(3, 1000, out=io.StringIO())
    found = ([], [], [], {"a", "b"})
    result = {"verdict": "budget", "islands": frozenset({"a"}), "why": "no time"}
    kept, verdict = _verdict(result, Seen(), found, [], budget)
    assert kept == {"a"} and verdict == {
        "kind": "budget", "sentence": pv.spent("no time", {"a"}, [_row(0.997, 0.99)],
                                               Seen.goal, 3)}
    assert "mask agreement 99.7000% and mIoU 0.9900" in verdict["sentence"]
    with pytest.raises(PrecisionError) as e:
        _verdict(dict(result, islands=None), Seen(), found, [], budget)
    assert str(e.value) == pv.spent("no time", None, None, Seen.goal, 3)
    kept, verdict = _verdict(dict(result, verdict="islands"), Seen(), found, [], budget)
    assert verdict["kind"] == "islands" and verdict["sentence"].startswith(
        "1 fp32 island(s) keep the masks within the goal (4 previews, ")


def _report(islands, limits):
    return {"islands": [{"op": "Mul", "node": "n%d" % i, "reason": "why %d" % i}
                        for i in range(islands)],
            "dropped": [{"node": "x"}], "previews_run": 9,
            "keep_fp32": {"Softmax": {"units": 3, "kept": 1}, "LayerNorm": {"units": 2,
                                                                          "kept": 2}},
            "preview": {"mixed": [_row(max_abs=0.5)], "naive": [_row(0.25)]}, "limits": limits}


def test_the_printout_shows_twenty_islands_the_seeds_and_the_limits(capsys):
    from stages.host.precision_link import _print
    limits = {"logits_max_abs": 0.25, "logits_mean_abs": 0.125, "mask_agreement": 0.98765,
              "miou": 0.875}
    _print(_report(21, limits), FP16, {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "precision: 21 fp32 island(s) chosen (1 beyond-range candidate(s) " \
                       "dropped, 9 previews)"
    assert lines[1] == "  island Mul          n0: why 0" and lines[20] == "  island Mul          " \
                                                                          "n19: why 19"
    assert lines[21] == "  ... and 1 more (precision.json lists them all)"
    assert lines[22].startswith("precision: engine.keep_fp32 LayerNorm: 2 of 2 kept")
    assert lines[23].startswith("precision: engine.keep_fp32 Softmax: 1 of 3 kept")
    assert lines[24] == "precision: mixed model (model.mixed.onnx), emulated fp16"
    assert lines[27] == "precision: naive all-fp16 model, emulated fp16"
    assert lines[26].split()[1:3] == ["0.5", "0.001"] and lines[29].split()[3] == "25.0000%"
    assert lines[30].startswith("precision: limits derived for the device: logits max abs 0.25, "
                                "mean abs 0.125, mask agreement 98.7650%, mIoU 0.8750, used by")
    assert lines[30].endswith("(the goal, verify.fp16 as set or by default: 0.05, 0.006, "
                              "99.0000%, 0.9500)") and len(lines) == 31
    _print(_report(20, limits), FP16, {})
    out = capsys.readouterr().out
    assert "n19: why 19" in out and "more (precision.json" not in out


@pytest.mark.parametrize("limits,stricter", [
    ({"logits_max_abs": 0.06, "logits_mean_abs": 0.007, "mask_agreement": 0.98, "miou": 0.9},
     "logits_max_abs, verify.fp16.logits_mean_abs, verify.fp16.mask_agreement, "
     "verify.fp16.miou"),
    ({"logits_max_abs": 0.05, "logits_mean_abs": 0.006, "mask_agreement": 0.99, "miou": 0.95},
     None),  # equal is not stricter
    ({"logits_max_abs": 0.04, "logits_mean_abs": 0.005, "mask_agreement": 0.995, "miou": 0.96},
     None),
])
def test_only_explicit_limits_stricter_than_the_derived_ones_get_the_note(
        capsys, limits, stricter):
    from stages.host.precision_link import _print
    explicit = dict(("verify.fp16." + k, "pipeline.yaml") for k in limits)
    _print(_report(1, limits), FP16, explicit)
    notes = [l for l in capsys.readouterr().out.splitlines() if "note:" in l]
    assert notes == ([] if stricter is None else [
        "precision: note: verify.fp16.%s is stricter than this preview supports, so the device's "
        "verify may reject a sound fp16 engine" % stricter])
    _print(_report(1, limits), FP16, dict(list(explicit.items())[1:]))  # max abs not set
    notes = [l for l in capsys.readouterr().out.splitlines() if "note:" in l]
    assert notes == ([] if stricter is None else [
        "precision: note: verify.fp16.logits_mean_abs, verify.fp16.mask_agreement, verify.fp16."
        "miou is stricter than this preview supports, so the device's verify may reject a sound "
        "fp16 engine"])


def test_the_preview_table_has_one_line_per_image_under_its_title_and_header():
    from stages.host.precision_preview import table
    rows = [dict(_row(0.987654, 0.5, 0.25, 1.5e-05, image="examples/" + "n" * 30 + ".jpg"),
                 nan=3, inf=12)]
    assert table("title", rows) == [
        "title",
        "  image                           max abs   mean abs      agree     mIoU    NaN    Inf",
        "  " + "n" * 28 + "       0.25    1.5e-05   98.7654%   0.5000      3     12"]
    assert table("empty", []) == table("empty", rows)[:1] + table("x", rows)[1:2]


# --- the device limits' flip bound -----------------------------------------------------------

def _limits(golden, max_abs, margin=1.0):
    from stages.host.precision_preview import derive_limits
    golden = np.asarray(golden, np.float32)
    case = ({"source": "x.jpg"}, None, golden, golden.reshape(golden.shape[-3:]).argmax(0))
    return derive_limits([_row(max_abs=max_abs)], [case], margin)


def test_the_flip_bound_flips_pixels_whose_top2_gap_is_below_twice_the_limit_not_at_it():
    # three classes, the winner in a different channel at each pixel; top-2 gaps 1, 3 and 6
    # (the third class far below: the gap is to the runner-up, not the sum or the last)
    golden = [[[[3.0, -9.0, 0.0]], [[2.0, -6.0, 6.0]], [[-50.0, -3.0, -50.0]]]]
    assert _limits(golden, 0.25, 2.0)["mask_agreement"] == 1.0  # 2 x 0.5 = 1: a gap of 1 holds
    low = _limits(golden, 0.26, 2.0)  # 1.04 > 1: the first pixel flips to its runner-up
    assert low["mask_agreement"] == pytest.approx(2 / 3.0)
    assert low["miou"] == pytest.approx((0 + 1 / 2.0 + 1) / 3)  # class 0 gone, 1 doubled, 2
    assert _limits(golden, 1.6)["mask_agreement"] == pytest.approx(1 / 3.0)  # 3.2 > 1 and 3
    assert _limits(golden, 1.5)["mask_agreement"] == pytest.approx(2 / 3.0)  # 3 is not below 3


def test_the_flip_bound_measures_the_gap_in_float64():
    # 1 - 1e-8 is 1.0 in float32 arithmetic but 0.99999999 in float64: below 0.999999995
    golden = [[[[1.0]], [[1e-8]]]]
    assert _limits(golden, 0.4999999975)["mask_agreement"] == 0.0


def test_the_limits_say_how_they_were_derived():
    assert _limits([[[[1.0]], [[0.0]]]], 0.1, 4.0)["margin"] == (
        "logits max/mean abs: 4 x the emulated fp16 error; mask agreement and mIoU: the golden "
        "masks with every pixel flipped whose top-2 logit gap is below 2 x that max abs limit "
        "(at logits resolution)")


def test_the_verdict_sentences_in_full():
    from stages.host import precision_verdict as pv
    rows, goal = [_row(0.97, 0.9)], {"mask_agreement": 0.995, "miou": 0.98}
    m = {"margin_median": 1.5, "margin_p5": 0.25, "fp16_logits_mean_abs_error": 0.125,
         "fp16_logit_rounding_median": 0.002, "pixels_below_twice_error": 0.1234}
    assert pv.cannot(m, rows, goal, 9) == (
        "fp16 cannot keep these masks: even with all 9 LayerNorm, Softmax and range nodes in fp32 "
        "the fp16 preview reaches mask agreement 97.0000% and mIoU 0.9000 (goal 99.5000%, "
        "0.9800), because too many of this model's logits are nearly tied: the fp32 top-1/top-2 "
        "logit margin has median 1.5 and 5th percentile 0.25, the fp16 logits differ by 0.125 on "
        "average (fp16 stores them to about 0.002), and 12.34% of the pixels have a margin below "
        "twice that error, against the 0.500% disagreement the goal allows; use "
        "engine.precision: fp32 (a trained model's wider margins may allow fp16).")
    assert pv.spent("no time", None, None, goal, 2.5) == (
        "Budget spent before any island set was shown to keep the masks: no time; raise "
        "precision.budget_minutes (now 2.5) or precision.budget_mb in pipeline.yaml, or use "
        "engine.precision: fp32.")
    assert pv.spent("no time", {"a", "b"}, rows, goal, 2.5) == (
        "Budget spent: no time; keeping the best set found, 2 fp32 island(s) with mask agreement "
        "97.0000% and mIoU 0.9000 (goal 99.5000%, 0.9800); raise precision.budget_minutes (now "
        "2.5) to look for a smaller set.")


def test_a_non_finite_logit_counts_as_0_for_the_preview_mask():
    from stages.host.precision_preview import row
    golden = np.array([[[[0.5, 0.5]], [[-1.0, -1.0]]]], np.float32)  # class 0 wins both pixels
    logits = golden.copy()
    logits[0, 0, 0, 0] = np.nan  # read as 0: still above -1 (NaN itself would never win)
    r = row({"source": "a.jpg", "height": 1, "width": 2}, logits, golden, np.zeros((1, 2),
                                                                                   np.uint8),
            ["a", "b"])
    assert (r["nan"], r["mask_agreement"], r["miou"]) == (1, 1.0, 1.0)


def test_margins_measures_the_gaps_in_float64():
    from stages.host.precision_verdict import margins
    # 1 - 1e-8: 1.0 in float32 arithmetic, 0.99999999 in float64, below 2 x 0.4999999975
    golden = np.array([[[[1.0]], [[1e-8]]]], np.float32)
    m = margins([({"source": "x.jpg"}, None, golden, None)], _rows(0.4999999975))
    assert m["margin_median"] == 1.0 - float(np.float32(1e-8))
    assert m["pixels_below_twice_error"] == 1.0
