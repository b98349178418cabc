"""The golden files' reader (the host's golden link writes them): one case as arrays, each file
checked against the sha256 that golden.json records before it is used. Lives in the runtime so
the device can check itself against the golden output. A damaged, replaced or unreadable golden
file is one sentence naming it and `doit golden` (ArtifactError), never a numpy traceback."""
import os

import numpy as np

from runtime import files
from runtime import palette as pal
from runtime.errors import ArtifactError
from runtime.finite import DAMAGED, require_finite

RERUN = "rerun `doit golden` on the host (or copy the golden folder from one bundle)"
CASE_FILES = ("input.npy", "logits.npy", "mask.png")


def _checked_bytes(folder, name, expected):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise ArtifactError("%s is missing: %s." % (path, RERUN))
    with open(path, "rb") as f:
        data = f.read()
    if files.sha256_bytes(data) != expected:
        raise ArtifactError("%s does not match the sha256 in golden.json (damaged, or from another "
                            "run): %s." % (path, RERUN))
    return path, data


def _record(record):
    hashes = record.get("sha256") if isinstance(record, dict) else None
    if not (isinstance(hashes, dict) and isinstance(record.get("dir"), str)
            and all(isinstance(hashes.get(n), str) for n in CASE_FILES)):
        raise ArtifactError("golden.json has a damaged image record (no dir or sha256 for %s): "
                            "%s." % (", ".join(CASE_FILES), RERUN))
    return record["dir"], hashes


def load_case(record):
    """One golden case as arrays: (input tensor, logits, mask), each file hash-checked first."""
    folder, hashes = _record(record)
    arrays = []
    for name in ("input.npy", "logits.npy"):
        path, data = _checked_bytes(folder, name, hashes[name])
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise ArtifactError("%s cannot be read as a numpy array: %s." % (path, RERUN))
        if array.dtype != np.float32 or array.ndim != 4 or array.shape[0] != 1:
            raise ArtifactError("%s is not a 1xCxHxW float32 array: %s." % (path, RERUN))
        what = "%s (golden %s)" % (record.get("source", folder), name)
        require_finite(array, DAMAGED % what if name == "logits.npy" else
                       "%s holds %%s values: %s." % (path, RERUN))
        arrays.append(array)
    path, _ = _checked_bytes(folder, "mask.png", hashes["mask.png"])
    try:
        mask = pal.decode_mask_png(path)
    except (ValueError, OSError, SyntaxError):
        raise ArtifactError("%s cannot be decoded as a mask: %s." % (path, RERUN))
    return arrays[0], arrays[1], mask


def read_index(path):
    """golden.json: its image records, after checking its shape (ArtifactError otherwise)."""
    if not os.path.isfile(path):
        raise ArtifactError("%s is missing: run `doit golden` on the host (or copy the bundle)."
                            % path)
    index = files.read_json(path)
    images = index.get("images") if isinstance(index, dict) else None
    if not isinstance(images, list) or not images:
        raise ArtifactError("%s has no image records: %s." % (path, RERUN))
    for rec in images:
        _record(rec)
    return images
