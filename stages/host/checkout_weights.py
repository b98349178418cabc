"""The checkout's weight files, checked without loading a model: safetensors headers (every
tensor's dtype, shape and byte range, the file's exact size), Git LFS pointers, the pickle policy,
and the segmentation head (decode_head.*, with one output per label). Part of the checkout link."""
import json
import os
import stat
import struct

from stages.common.errors import CheckoutError

LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
FLOAT_VIEWS = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}  # safetensors is little-endian
HEAD, CLASSIFIER, ENCODER = "decode_head.", "decode_head.classifier.weight", "segformer."


def require_regular(path, model_dir):
    """A checkout file must be a regular file (after symlinks): reading a FIFO or a device would
    block or never end."""
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        raise CheckoutError("%s is not a regular file (a FIFO, a device or a folder): put the real "
                            "file in %s." % (path, model_dir))


def reject_lfs_pointer(path, model_dir):
    require_regular(path, model_dir)
    with open(path, "rb") as f:
        head = f.read(len(LFS_MAGIC))
    if head == LFS_MAGIC:
        what = "weights are" if not path.endswith(".json") else "%s is" % os.path.basename(path)
        raise CheckoutError("%s a Git LFS pointer: run `git lfs pull` in %s." % (what, model_dir))


def _header(path, model_dir):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        raw = f.read(n) if 0 < n <= min(size - 8, 1 << 27) else b""
    try:
        meta = json.loads(raw.decode("utf-8"))
        spans = {}
        for name, v in meta.items():
            if name != "__metadata__":
                count = 1
                for d in v["shape"]:
                    count *= int(d)
                begin, end = int(v["data_offsets"][0]), int(v["data_offsets"][1])
                if end - begin != count * DTYPE_BYTES[v["dtype"]] or begin < 0:
                    raise ValueError(name)
                spans[name] = (begin, end, list(v["shape"]), v["dtype"])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, UnicodeDecodeError):
        raise CheckoutError("%s is not a valid safetensors file: re-download it (git lfs pull in "
                            "%s)." % (path, model_dir))
    return spans, size - 8 - n, 8 + n


def check_safetensors(path, model_dir):
    """Check the header and the exact size of a safetensors file; return {name: shape}."""
    reject_lfs_pointer(path, model_dir)
    spans, data_bytes, start = _header(path, model_dir)
    end = 0
    for begin, stop, _, _ in sorted(spans.values()):
        if begin != end:
            raise CheckoutError("%s is corrupt (its tensors overlap or leave gaps): re-download it "
                                "(git lfs pull in %s)." % (path, model_dir))
        end = stop
    if data_bytes < end:
        raise CheckoutError("%s is truncated or corrupt (expected %d bytes, found %d): re-download "
                            "it (git lfs pull in %s)." % (
                                path, os.path.getsize(path) - data_bytes + end,
                                os.path.getsize(path), model_dir))
    if data_bytes > end:
        raise CheckoutError("%s has %d bytes of trailing garbage after its last tensor (damaged or "
                            "tampered): re-download it (git lfs pull in %s)." % (
                                path, data_bytes - end, model_dir))
    check_finite_weights(path, spans, start, model_dir)
    return dict((name, span[2]) for name, span in spans.items())


def _float_chunks(block, dtype):
    """The values of one tensor's bytes as numpy floats, a chunk at a time (bf16 and fp8 widened
    bit-exactly: NaN stays NaN, infinity stays infinity)."""
    import numpy as np
    step = 1 << 24
    for at in range(0, block.size, step):
        part = block[at:at + step]
        if dtype in FLOAT_VIEWS:
            yield part.view(FLOAT_VIEWS[dtype])
        elif dtype == "BF16":
            yield (part.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dtype == "F8_E5M2":  # the top byte of an fp16
            yield (part.astype(np.uint16) << 8).view(np.float16)
        elif dtype == "F8_E4M3":  # no infinity; NaN is S.1111.111
            yield np.where((part & 0x7F) == 0x7F, np.float16("nan"), np.float16(0))


def check_finite_weights(path, spans, start, model_dir):
    """NaN or infinity in any tensor: the weights are damaged (one sentence naming the tensor).
    The file is memory-mapped and scanned in chunks: no model is loaded."""
    import numpy as np
    from runtime.finite import nonfinite
    if not spans:
        return
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    for name, (begin, end, _, dtype) in sorted(spans.items(), key=lambda kv: kv[1][0]):
        for values in _float_chunks(raw[start + begin:start + end], dtype):
            kind = nonfinite(values)
            if kind:
                raise CheckoutError("The weights are damaged: tensor %s in %s holds %s values; "
                                    "re-download the file (git lfs pull in %s)." % (
                                        name, path, kind, model_dir))


def _pickle_shapes(path, model_dir):
    """{name: shape} of a pytorch_model.bin, read with torch's weights_only loader (no code
    runs)."""
    import torch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        shapes = dict((k, list(v.shape)) for k, v in state.items())
    except Exception as e:  # torch raises many types for a bad or malicious pickle
        raise CheckoutError("%s cannot be read as plain weights (%s): torch's safe loader refused "
                            "it; re-download it, or convert the checkout to safetensors." % (
                                path, type(e).__name__))
    from runtime.finite import nonfinite
    for name, tensor in sorted(state.items()):
        kind = nonfinite(tensor.detach().float().numpy()) if tensor.is_floating_point() else None
        if kind:
            raise CheckoutError("The weights are damaged: tensor %s in %s holds %s values; "
                                "re-download the file." % (name, path, kind))
    return shapes


def check_head(shapes, model_dir, num_labels):
    """The weights must hold the encoder and the segmentation head, sized for the labels."""
    if not any(k.startswith(HEAD) for k in shapes):
        raise CheckoutError("The weights in %s have no decode_head.* tensors (the segmentation "
                            "head): this is a backbone-only checkpoint; use one fine-tuned for "
                            "semantic segmentation." % model_dir)
    if not any(k.startswith(ENCODER) for k in shapes):
        raise CheckoutError("The weights in %s have no segformer.* tensors (the encoder): the "
                            "checkout is incomplete; clone it again." % model_dir)
    shape = shapes.get(CLASSIFIER)
    if shape and shape[0] != num_labels:
        raise CheckoutError("The weights in %s have a head for %d classes but config.json's "
                            "id2label names %d: make the config match the checkpoint." % (
                                model_dir, shape[0], num_labels))


def weight_files(model_dir, allow_pickle, num_labels):
    """(format, file names) of the checkout's weights, after checking every one of them."""
    names = sorted(os.listdir(model_dir))
    safe = [n for n in names if n.endswith(".safetensors")]
    shapes = {}
    if safe:
        for n in safe:
            shapes.update(check_safetensors(os.path.join(model_dir, n), model_dir))
        check_head(shapes, model_dir, num_labels)
        return "safetensors", safe + [n for n in names if n.endswith(".safetensors.index.json")]
    pickles = [n for n in names if n.startswith("pytorch_model") and n.endswith(".bin")]
    for n in pickles:
        reject_lfs_pointer(os.path.join(model_dir, n), model_dir)
    if pickles and not allow_pickle:
        raise CheckoutError("%s has only %s, a pickle that can run code when loaded: convert it to "
                            "safetensors, or set model.allow_pickle: true if you trust it." % (
                                model_dir, pickles[0]))
    if pickles:
        for n in pickles:
            shapes.update(_pickle_shapes(os.path.join(model_dir, n), model_dir))
        check_head(shapes, model_dir, num_labels)
        return "pytorch_pickle", pickles
    raise CheckoutError("%s has no model.safetensors: the weights are missing; clone the model "
                        "again with git-lfs installed." % model_dir)
