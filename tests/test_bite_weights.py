"""The checkout's scan of every safetensors tensor for NaN and infinity (issue 25, round 2), on
small hand-made files: each float format's NaN and infinity bit patterns in the last element of
a tensor that follows a finite one, each format's largest finite values (which must pass),
integer tensors whose bytes would be NaN if read as floats, tensors larger than one scan chunk,
and a read-only file. Every refusal is checked word for word: it names the tensor, the file and
the fix."""

import json
import os
import struct
import subprocess

import numpy as np
import pytest

from stages.common.errors import CheckoutError
from stages.host import checkout_weights as weights

# the stored bits of each float format, as unsigned integers of its width
BITS = {"F64": "<u8", "F32": "<u4", "F16": "<u2", "BF16": "<u2", "F8_E5M2": "u1", "F8_E4M3": "u1"}

DAMAGED = [  # (dtype, bits of a value that is not finite, the kind named)
    ("F64", 0x7FF8000000000000, "NaN"),
    ("F64", 0xFFF0000000000000, "infinite"),
    ("F32", 0x7FC00000, "NaN"),
    ("F32", 0x7F800001, "NaN"),  # the NaN with the smallest mantissa
    ("F32", 0x7F800000, "infinite"),
    ("F32", 0xFF800000, "infinite"),
    ("F16", 0x7E00, "NaN"),
    ("F16", 0xFC01, "NaN"),
    ("F16", 0x7C00, "infinite"),
    ("F16", 0xFC00, "infinite"),
    ("BF16", 0x7FC0, "NaN"),
    ("BF16", 0x7F81, "NaN"),
    ("BF16", 0xFFC0, "NaN"),
    ("BF16", 0x7F80, "infinite"),
    ("BF16", 0xFF80, "infinite"),
    ("F8_E5M2", 0x7D, "NaN"),
    ("F8_E5M2", 0xFF, "NaN"),
    ("F8_E5M2", 0x7C, "infinite"),
    ("F8_E5M2", 0xFC, "infinite"),
    ("F8_E4M3", 0x7F, "NaN"),  # E4M3 (the "fn" variant) has no infinity; NaN is S.1111.111
    ("F8_E4M3", 0xFF, "NaN"),
]

FINITE = {  # the largest finite values, subnormals, -0, 1.0 and 1.5 of each format
    "F64": [0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 1, 0x8000000000000000, 0x3FF8000000000000],
    "F32": [0x7F7FFFFF, 0xFF7FFFFF, 1, 0x80000000, 0x3F800000, 0x3FC00000],
    "F16": [0x7BFF, 0xFBFF, 1, 0x8000, 0x3C00, 0x3E00],
    "BF16": [0x7F7F, 0xFF7F, 1, 0x8000, 0x3F80, 0x3FC0, 0x4000],
    "F8_E5M2": [0x7B, 0xFB, 0x01, 0x80, 0x3C, 0x3E],
    "F8_E4M3": [0x7E, 0xFE, 0x7D, 0x78, 0x01, 0x80, 0x38, 0x3C],  # 0x78: exponent all ones, 256
}


def write(path, tensors, pad=0):
    """A safetensors file of `tensors` [(name, dtype, stored bits as a numpy array)], laid out
    in that order after a header of `pad` extra spaces (an unaligned start when pad is odd)."""
    header, blobs, at = {}, [], 0
    for name, dtype, bits in tensors:
        raw = np.ascontiguousarray(bits).tobytes()
        count = len(raw) // weights.DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": [count], "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode() + b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def bits(dtype, values):
    return np.array(values, dtype=BITS[dtype])


def damaged(path, name, kind, model_dir):
    return ("The weights are damaged: tensor %s in %s holds %s values; re-download the file "
            "(git lfs pull in %s)." % (name, path, kind, model_dir))


def refusal(path, model_dir):
    with pytest.raises(CheckoutError) as e:
        weights.check_safetensors(path, model_dir)
    return str(e.value)


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("dtype,bad,kind", DAMAGED, ids=["%s-%x" % d[:2] for d in DAMAGED])
def test_a_value_that_is_not_finite_in_the_last_element_is_named(tmp_path, dtype, bad, kind, pad):
    model = str(tmp_path)
    path = write(os.path.join(model, "model.safetensors"), [
        ("segformer.finite", dtype, bits(dtype, FINITE[dtype])),
        ("decode_head.bad", dtype, bits(dtype, FINITE[dtype] + [bad])),
    ], pad)
    assert refusal(path, model) == damaged(path, "decode_head.bad", kind, model)


@pytest.mark.parametrize("dtype", sorted(FINITE))
def test_the_extremes_of_each_float_format_are_finite_and_pass(tmp_path, dtype):
    path = write(str(tmp_path / "model.safetensors"), [
        ("segformer.a", dtype, bits(dtype, FINITE[dtype])),
        ("segformer.b", dtype, bits(dtype, FINITE[dtype][::-1])),
    ], pad=5)
    n = len(FINITE[dtype])
    assert weights.check_safetensors(path, str(tmp_path)) == {"segformer.a": [n],
                                                              "segformer.b": [n]}


INTEGERS = ["I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "BOOL"]


@pytest.mark.parametrize("count", [3, 8])
def test_integer_tensors_are_never_read_as_floats(tmp_path, count):
    """All bits set is NaN in every float format: an integer tensor holding them is fine."""
    tensors = [("segformer.%s" % d.lower(), d,
                np.full(count * weights.DTYPE_BYTES[d], 1 if d == "BOOL" else 0xFF, np.uint8))
               for d in INTEGERS]
    path = write(str(tmp_path / "model.safetensors"), tensors, pad=1)
    assert weights.check_safetensors(path, str(tmp_path)) == dict(
        (name, [count]) for name, _, _ in tensors)


def big(dtype, count, last):
    """`count` elements of 1.0 in `dtype`, the last one replaced by the bits `last`."""
    one = {"F32": 0x3F800000, "BF16": 0x3F80, "F16": 0x3C00, "F8_E5M2": 0x3C}[dtype]
    a = np.full(count, one, dtype=BITS[dtype])
    a[-1] = last
    return a


CHUNK = 1 << 24  # the scan's chunk, in bytes


@pytest.mark.parametrize("dtype,bad", [("F32", 0x7FC00000), ("BF16", 0xFF80), ("F8_E5M2", 0x7C)])
def test_a_bad_value_just_past_the_first_chunk_is_found(tmp_path, dtype, bad):
    count = CHUNK // weights.DTYPE_BYTES[dtype] + 1
    model = str(tmp_path)
    path = write(os.path.join(model, "model.safetensors"),
                 [("segformer.big", dtype, big(dtype, count, bad))], pad=1)
    kind = "NaN" if dtype == "F32" else "infinite"
    assert refusal(path, model) == damaged(path, "segformer.big", kind, model)


def test_a_chunk_that_ends_where_the_tensor_ends_is_scanned_to_its_last_value(tmp_path):
    count = CHUNK // 2
    model = str(tmp_path)
    path = os.path.join(model, "model.safetensors")
    write(path, [("segformer.big", "F16", big("F16", count, 0x7C00)),
                 ("segformer.next", "F16", bits("F16", [0x3C00]))])
    assert refusal(path, model) == damaged(path, "segformer.big", "infinite", model)
    write(path, [("segformer.big", "F16", big("F16", count, 0x3C00)),
                 ("segformer.next", "F16", bits("F16", [0x7E00, 0x3C00]))])
    assert refusal(path, model) == damaged(path, "segformer.next", "NaN", model)


def test_of_two_damaged_tensors_the_first_in_the_file_is_named(tmp_path):
    """The scan reads the file front to back: the names sort the other way round."""
    model = str(tmp_path)
    path = write(os.path.join(model, "model.safetensors"), [
        ("segformer.z", "F32", bits("F32", [0x3F800000, 0x7F800000])),
        ("segformer.a", "F32", bits("F32", [0x7FC00000])),
    ])
    assert refusal(path, model) == damaged(path, "segformer.z", "infinite", model)


def _make_read_only(path):
    """Read-only for this process: chmod for a user, the immutable flag for root (who may
    write any file chmod protects). False when the file system cannot."""
    os.chmod(path, 0o444)
    if os.geteuid() != 0:
        return True
    try:
        return subprocess.call(["chattr", "+i", path], stderr=subprocess.DEVNULL) == 0
    except OSError:
        return False


def test_a_read_only_weights_file_is_scanned_without_asking_to_write(tmp_path):
    """A checkout in a read-only model cache: the scan only reads."""
    model = str(tmp_path)
    path = write(os.path.join(model, "model.safetensors"), [
        ("segformer.x", "BF16", bits("BF16", FINITE["BF16"])),
        ("decode_head.y", "F32", bits("F32", [0x3F800000, 0x7FC00000]))])
    if not _make_read_only(path):
        pytest.skip("cannot make a file read-only here")
    try:
        assert refusal(path, model) == damaged(path, "decode_head.y", "NaN", model)
    finally:
        if os.geteuid() == 0:
            subprocess.call(["chattr", "-i", path])


@pytest.mark.parametrize("extra,accepted", [(0, True), (1, False)], ids=["128MiB", "128MiB+1"])
def test_a_header_is_read_up_to_128_mib_and_no_further(tmp_path, extra, accepted):
    """A header longer than 128 MiB is not read (memory), even when it is valid JSON: one tensor
    and then spaces up to exactly 1 << 27 bytes, or one byte more."""
    path = write(str(tmp_path / "model.safetensors"), [("w", "F32", bits("F32", [0.5]))])
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        text, data = f.read(n), f.read()
    text += b" " * ((1 << 27) + extra - n)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    if accepted:
        assert weights.check_safetensors(path, str(tmp_path)) == {"w": [1]}
    else:
        assert refusal(path, str(tmp_path)) == (
            "%s is not a valid safetensors file: re-download it (git lfs pull in %s)."
            % (path, tmp_path))
