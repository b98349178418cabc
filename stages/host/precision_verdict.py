"""The precision link's verdicts as sentences, and the logit margins that explain the "cannot" one.

A pixel's mask flips when an error moves its top-1 logit below its top-2: so fp16 can keep a mask
only where the fp32 model's top-1/top-2 margin is wider than fp16's error. `margins` measures
both on the golden images: the margins' percentiles (at logits resolution), fp16's rounding of
the logits themselves (half a unit in the last place of the top logit), the logits error of the
best fp16 preview, and the share of pixels whose margin is below twice that error."""
import numpy as np

from stages.host import precision_preview as pp

HALF_ULP = 2.0 ** -11  # fp16's relative rounding (10 fraction bits)


def margins(cases, rows):
    """Margin statistics over the golden logits; `rows`: the preview whose error is compared."""
    gaps, rounding = [], []
    for _, _, golden_logits, _ in cases:
        chw = np.asarray(golden_logits, np.float64).reshape(golden_logits.shape[-3:])
        top2 = np.sort(chw, axis=0)[-2:]
        gaps.append((top2[1] - top2[0]).ravel())
        rounding.append(np.abs(top2[1]).ravel() * HALF_ULP)
    gaps, rounding = np.concatenate(gaps), np.concatenate(rounding)
    error = pp.worst(rows)["logits_mean_abs"]
    p1, p5, p50 = (float(np.percentile(gaps, q)) for q in (1, 5, 50))
    return {"margin_p1": p1, "margin_p5": p5, "margin_median": p50,
            "fp16_logit_rounding_median": float(np.median(rounding)),
            "fp16_logits_mean_abs_error": float(error),
            "pixels_below_twice_error": float(np.mean(gaps < 2 * error)),
            "pixels_below_twice_rounding": float(np.mean(gaps < 2 * rounding))}


def _masks(rows, goal):
    w = pp.worst(rows)
    return "mask agreement %.4f%% and mIoU %.4f (goal %.4f%%, %.4f)" % (
        100 * w["mask_agreement"], w["miou"], 100 * goal["mask_agreement"], goal["miou"])


def cannot(m, rows, goal, count):
    """Verdict (b): no island set keeps the masks, with the margins that say why."""
    return ("fp16 cannot keep these masks: even with all %d LayerNorm, Softmax and range nodes in "
            "fp32 the fp16 preview reaches %s, because too many of this model's logits are nearly "
            "tied: the fp32 top-1/top-2 logit margin has median %.3g and 5th percentile %.3g, the "
            "fp16 logits differ by %.3g on average (fp16 stores them to about %.2g), and %.2f%% "
            "of the pixels have a margin below twice that error, against the %.3f%% disagreement "
            "the goal allows; use engine.precision: fp32 (a trained model's wider margins may "
            "allow fp16)." % (
                count, _masks(rows, goal), m["margin_median"], m["margin_p5"],
                m["fp16_logits_mean_abs_error"], m["fp16_logit_rounding_median"],
                100 * m["pixels_below_twice_error"], 100 * (1 - goal["mask_agreement"])))


def found(islands, runs, seconds):
    return ("%d fp32 island(s) keep the masks within the goal (%d previews, %.0f s)."
            % (len(islands), runs, seconds))


def spent(why, best, rows, goal, minutes):
    """Verdict (c): the budget ended the search; `best` is the smallest set meeting the goal."""
    if best is None:
        return ("Budget spent before any island set was shown to keep the masks: %s; raise "
                "precision.budget_minutes (now %g) or precision.budget_mb in pipeline.yaml, or "
                "use engine.precision: fp32." % (why, minutes))
    return ("Budget spent: %s; keeping the best set found, %d fp32 island(s) with %s; raise "
            "precision.budget_minutes (now %g) to look for a smaller set."
            % (why, len(best), _masks(rows, goal), minutes))
