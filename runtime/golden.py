"""The golden files' reader (the host's golden link writes them): one case as arrays.
Lives in the runtime so the device can check itself against the golden output."""
import os

import numpy as np

from runtime import palette as pal


def load_case(record):
    """One golden case as arrays: (input tensor, logits, mask)."""
    folder = record["dir"]
    return (np.load(os.path.join(folder, "input.npy")), np.load(os.path.join(folder, "logits.npy")),
            pal.decode_mask_png(os.path.join(folder, "mask.png")))
