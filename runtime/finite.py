"""The one finite-number check. Every comparison (onnx parity, the precision preview, verify,
the device's check against the golden files) and the checkout gate call `require_finite` before
they compare, so NaN or infinity is always a failure with its own sentence, never a difference
of `nan` that a `>` test lets pass. `nonfinite` is the test itself (chunked, so a memory-mapped
256 MB weight file is scanned without loading it)."""
import numpy as np

from runtime.errors import NonFiniteError

CHUNK = 1 << 22  # elements per isfinite call: bounded memory on any array


def nonfinite(values):
    """None when every value is finite, else "NaN" or "infinite" (NaN when both occur)."""
    a = np.asarray(values)
    if a.dtype.kind not in "fc":
        return None
    flat = a.reshape(-1)
    seen_inf = False
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK]
        if not np.isfinite(part).all():
            if np.isnan(part).any():
                return "NaN"
            seen_inf = True
    return "infinite" if seen_inf else None


def require_finite(values, sentence):
    """Raise NonFiniteError(sentence % kind) when `values` hold NaN or infinity; `sentence` has
    one %s for the kind ("NaN" or "infinite") and names what holds it and the fix."""
    kind = nonfinite(values)
    if kind:
        raise NonFiniteError(sentence % kind)


DAMAGED = ("The model produces %%s logits on %s: its weights are damaged; restore the checkout "
           "(re-download model.safetensors), then run `doit checkout golden`.")
