"""Numeric comparisons shared by the onnx parity check and verify (one definition of each
metric)."""
import numpy as np

from runtime.finite import nonfinite, require_finite  # noqa: F401  (the one finite check)


def abs_diff(actual, expected):
    """max/mean |actual - expected|; NaN or infinity in either is refused (callers check each
    side first with their own sentence; this is the net under them)."""
    for side, values in (("compared", actual), ("reference", expected)):
        require_finite(values, "The %s values hold %%s numbers: a comparison with them could "
                               "never fail; find what produced them." % side)
    d = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean())}


def argmax_agreement(logits, golden_logits):
    """Agreement of the class argmax at logits resolution."""
    return float(np.mean(np.argmax(logits, axis=-3) == np.argmax(golden_logits, axis=-3)))


def mask_metrics(mask, golden_mask, labels):
    """Pixel agreement, mIoU over the classes present in either mask, and per-class IoU."""
    agree = float(np.mean(mask == golden_mask))
    ious = {}
    for c in np.union1d(np.unique(mask), np.unique(golden_mask)):
        a, b = mask == c, golden_mask == c
        union = np.count_nonzero(a | b)
        ious[labels[c] if c < len(labels) else str(c)] = float(np.count_nonzero(a & b)) / union
    return {"mask_agreement": agree, "miou": float(np.mean(list(ious.values()))), "iou": ious}
