"""The hostile-input catalogue (issue 14), through the real doit command line, on copies of a
built project. Eight classes: (1) checks that cannot fail, (2) tampered or mismatched artifacts,
(3) malformed checkouts, (4) the pickle policy, (5) output paths and names, (6) command-line
values, (7) faults of the machine, (8) small things a user notices.

Every case asserts a non-zero exit (or a documented success), no traceback, one error line that
names the problem, and artifacts byte-identical (refusals) or complete (reruns). Most cases share
one project copy per module and restore what they damaged; only cases that rerun links get a
private copy. Events (a line printed, a file appearing) trigger signals, never a bare sleep."""
import fcntl
import hashlib
import json
import os
import queue
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import threading
import time

import pytest
import yaml

from conftest import HAS_HOST, doit, executed, huge_png
from runtime.files import EXEC_MODE, FILE_MODE, TEMP_NAME, UMASK

pytestmark = pytest.mark.host
MODEL = os.path.join("models", "segformer-tiny-sidewalk")
ODD = os.path.join("examples", "odd_641x479.jpg")


# --- helpers ----------------------------------------------------------------------------------

def snapshot(project, sub="artifacts"):
    """sha256 of every file under `sub` (doit's state file and its lock are not artifacts)."""
    out = {}
    for folder, _, names in os.walk(os.path.join(project, sub)):
        for n in names:
            if not n.startswith(".doit.json"):
                path = os.path.join(folder, n)
                with open(path, "rb") as f:
                    out[os.path.relpath(path, project)] = hashlib.sha256(f.read()).hexdigest()
    return out


def temps(project, sub="artifacts"):
    return [os.path.join(d, n) for d, dirs, names in os.walk(os.path.join(project, sub))
            for n in dirs + names if TEMP_NAME.match(n)]


def refused(code, out, *needles):
    """Non-zero exit, no traceback, exactly one error line, naming each needle."""
    assert code != 0, out
    assert "Traceback" not in out, out
    errors = [l for l in out.splitlines() if l.startswith("error")]
    assert len(errors) == 1, out
    for n in needles:
        assert n in errors[0], (n, out)
    return errors[0]


def config_with(project, changes, name="h.yaml"):
    """A copy of pipeline.yaml with dotted keys changed; returns the `config=` argument."""
    with open(os.path.join(project, "pipeline.yaml")) as f:
        cfg = yaml.safe_load(f)
    for dotted, value in changes.items():
        node = cfg
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})  # verify.fp16 is not in the shipped file (issue 23)
        node[parts[-1]] = value
    with open(os.path.join(project, name), "w") as f:
        yaml.safe_dump(cfg, f)
    return "config=" + name


class Shared(object):
    """One copy of the built project that refusals run in; `restore` puts back what a case
    changed (the model checkout, damaged artifacts) from the pristine build."""

    def __init__(self, pristine, path):
        self.pristine, self.path = pristine, path
        shutil.copytree(pristine, path)
        self.before = snapshot(path)

    def file(self, rel):
        return os.path.join(self.path, rel)

    def restore(self):
        model = self.file(MODEL)
        if os.path.lexists(model):
            shutil.rmtree(model) if os.path.isdir(model) and not os.path.islink(model) \
                else os.remove(model)
        shutil.copytree(os.path.join(self.pristine, MODEL), model)
        for rel, sha in self.before.items():
            if snapshot_one(self.file(rel)) != sha:
                shutil.copy2(os.path.join(self.pristine, rel), self.file(rel))
        for rel in set(snapshot(self.path)) - set(self.before):
            os.remove(self.file(rel))

    def assert_intact(self):
        assert snapshot(self.path) == self.before
        assert not temps(self.path)


def snapshot_one(path):
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def shared(built_project, tmp_path_factory):
    return Shared(built_project, str(tmp_path_factory.mktemp("hostile") / "p"))


@pytest.fixture
def case(shared):
    yield shared
    shared.restore()


class Watched(object):
    """A doit process whose output lines are read as they come, to act on observed events."""

    def __init__(self, cwd, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "doit"] + list(args), cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     universal_newlines=True, start_new_session=True)
        self.lines, self.queue = [], queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            self.queue.put(line)
        self.queue.put(None)

    def wait_for(self, text, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.queue.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if line is None:
                break
            if text in line:
                return line
        raise AssertionError("never printed %r: %s" % (text, "".join(self.lines)))

    def finish(self, timeout=300):
        code = self.proc.wait(timeout=timeout)
        deadline = time.time() + 10
        while time.time() < deadline and (not self.lines or self.queue.qsize()):
            time.sleep(0.01)
        return code, "".join(self.lines)


def mount(*args):
    """mount(8), or skip: tmpfs and bind mounts need root with CAP_SYS_ADMIN."""
    proc = subprocess.run(["mount"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount here (needs root and CAP_SYS_ADMIN): %s" % proc.stdout.strip())


def umount(path):
    subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def flip_byte(path, offset=None):
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        at = size // 2 if offset is None else offset
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0xFF]))


def truncate(path, keep=0.5):
    with open(path, "r+b") as f:
        f.truncate(int(os.fstat(f.fileno()).st_size * keep))


# --- (1) checks that cannot fail: non-finite or out-of-range limits ---------------------------

NAN_KEYS = ["onnx.max_abs", "onnx.mask_agreement", "golden.overlay_alpha", "precision.margin",
            "infer.alpha", "infer.max_megapixels"] + [
    "verify.%s.%s" % (p, k) for p in ("fp32", "fp16")
    for k in ("input_max_abs", "logits_max_abs", "logits_mean_abs", "mask_agreement", "miou")]


@pytest.mark.parametrize("key,value,needle", [(k, float("nan"), "finite") for k in NAN_KEYS] + [
    ("onnx.max_abs", float("inf"), "finite"),
    ("verify.fp32.logits_max_abs", float("inf"), "finite"),
    ("verify.fp16.miou", float("-inf"), "finite"),
    ("onnx.max_abs", -1.0, "at least 0"),
    ("verify.fp32.mask_agreement", 2.0, "at most 1"),
])
def test_1_limits_that_could_never_fail_are_refused(case, key, value, needle):
    code, out = doit(case.path, "verify", config_with(case.path, {key: value}))
    refused(code, out, key, needle)
    case.assert_intact()


# --- (2) tampered or mismatched artifacts are refused before use ------------------------------

ONNX = os.path.join("artifacts", "onnx", "model.onnx")
SIDECAR = os.path.join("artifacts", "onnx", "model.json")
GOLDEN = os.path.join("artifacts", "golden")


def other_size_onnx(path):
    """A model.onnx from another run: another input size (512x512)."""
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, 512, 512])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 512, 512])
    node = helper.make_node("Identity", ["pixel_values"], ["logits"])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def edit_json(path, fn):
    with open(path) as f:
        data = json.load(f)
    data = fn(data) or data
    with open(path, "w") as f:
        json.dump(data, f)


TAMPER = {
    "onnx_byte_flipped": (ONNX, flip_byte,
                          ["model.onnx does not match the onnx_sha256", "doit onnx"]),
    "onnx_truncated": (ONNX, truncate, ["model.onnx does not match", "doit onnx"]),
    "onnx_from_another_run": (ONNX, other_size_onnx, ["model.onnx does not match", "another run"]),
    "onnx_replaced_by_mixed": (ONNX,
                               lambda p: shutil.copy(
                                   os.path.join(os.path.dirname(p), "model.mixed.onnx"), p),
                               ["model.onnx does not match"]),
    "sidecar_truncated": (SIDECAR, truncate, ["model.json is not valid JSON"]),
    "sidecar_hash_edited": (SIDECAR,
                            lambda p: edit_json(p, lambda d: d.update(onnx_sha256="0" * 64)),
                            ["does not match the onnx_sha256"]),
    "sidecar_missing": (SIDECAR, os.remove, ["model.json is missing"]),
    "logits_byte_flipped": (os.path.join(GOLDEN, "00_street_1920x1080", "logits.npy"), flip_byte,
                            ["logits.npy does not match the sha256 in golden.json", "doit golden"]),
    "input_truncated": (os.path.join(GOLDEN, "01_odd_641x479", "input.npy"), truncate,
                        ["input.npy does not match", "doit golden"]),
    "mask_replaced": (os.path.join(GOLDEN, "02_portrait_720x1280", "mask.png"),
                      lambda p: shutil.copy(p.replace("02_portrait_720x1280", "01_odd_641x479"), p),
                      ["mask.png does not match", "doit golden"]),
    "logits_swapped_between_images": (
        os.path.join(GOLDEN, "01_odd_641x479", "logits.npy"),
        lambda p: shutil.copy(p.replace("01_odd_641x479", "02_portrait_720x1280"), p),
        ["logits.npy does not match", "doit golden"]),
    "golden_json_truncated": (os.path.join(GOLDEN, "golden.json"), truncate,
                              ["golden.json is damaged (not valid JSON)", "doit golden"]),
    "golden_json_empty": (os.path.join(GOLDEN, "golden.json"), lambda p: truncate(p, 0),
                          ["golden.json is damaged (empty)", "doit golden"]),
    "golden_case_missing": (os.path.join(GOLDEN, "00_street_1920x1080", "input.npy"), os.remove,
                            ["input.npy is missing", "doit golden"]),
}


@pytest.mark.parametrize("name", sorted(TAMPER))
def test_2_tampered_artifacts_are_refused_by_verify(case, name):
    rel, damage, needles = TAMPER[name]
    damage(case.file(rel))
    before = snapshot(case.path)
    code, out = doit(case.path, "-s", "verify", "backend=onnxruntime")
    refused(code, out, *needles)
    assert "ok" not in [w for l in out.splitlines() for w in l.split()[-1:]], out  # no "ok" rows
    assert snapshot(case.path) == before


@pytest.mark.parametrize("task", [("infer", "image=" + ODD), ("bench", "n=1", "cpu=0")])
def test_2_a_flipped_model_onnx_is_refused_by_infer_and_bench(case, tmp_path, task):
    flip_byte(case.file(ONNX))
    out_dir = str(tmp_path / "out")
    code, out = doit(case.path, *(task + ("out=" + out_dir,) if task[0] == "infer" else task))
    refused(code, out, "model.onnx does not match the onnx_sha256", "doit onnx")
    assert not os.listdir(out_dir) if os.path.isdir(out_dir) else True


def test_2_a_damaged_manifest_is_named_with_its_link(case):
    truncate(case.file(os.path.join("artifacts", "checkout", "manifest.json")))
    code, out = doit(case.path, "-s", "golden")
    refused(code, out, "manifest.json is damaged", "doit checkout")


@pytest.mark.parametrize("rel,link", [
    (os.path.join(GOLDEN, "01_odd_641x479", "logits.npy"), "golden"),
    (os.path.join(GOLDEN, "golden.json"), "golden"),
    (os.path.join("artifacts", "checkout", "manifest.json"), "checkout"),
    (os.path.join("artifacts", "onnx", "report.json"), "onnx"),
])
def test_2_plain_doit_reruns_the_link_that_owns_a_damaged_output(project, rel, link):
    """Documented success: doit now fingerprints targets, so the owner reruns and the output is
    made again, byte-identical (the chain is deterministic); nothing downstream reruns."""
    before = snapshot(project)
    flip_byte(os.path.join(project, rel), offset=5)
    code, out = doit(project)
    assert code == 0 and "Traceback" not in out, out
    assert executed(out) == [link], out
    after = snapshot(project)
    changed = [k for k in before if after.get(k) != before[k]]
    # it times the export
    assert changed in ([], [os.path.join("artifacts", "onnx", "report.json")]), changed
    assert executed(doit(project)[1]) == []


# --- (3) malformed checkouts: `doit checkout` is the gate -------------------------------------

def _json(name, fn):
    def damage(model):
        path = os.path.join(model, name)
        with open(path) as f:
            data = json.load(f)
        data = fn(data)
        with open(path, "w") as f:
            json.dump(data, f)
    return damage


def _text(name, text):
    def damage(model):
        with open(os.path.join(model, name), "w") as f:
            f.write(text)
    return damage


def _set(name, **changes):
    return _json(name, lambda d: dict(d, **changes))


def _without_keys(prefix, keep=False):
    def damage(model):
        from safetensors.numpy import load_file, save_file
        path = os.path.join(model, "model.safetensors")
        tensors = load_file(path)
        save_file(dict((k, v) for k, v in tensors.items() if k.startswith(prefix) == keep), path)
    return damage


def _append(data):
    def damage(model):
        with open(os.path.join(model, "model.safetensors"), "ab") as f:
            f.write(data)
    return damage


def _header_size(n):
    def damage(model):
        with open(os.path.join(model, "model.safetensors"), "r+b") as f:
            f.write(struct.pack("<Q", n))
    return damage


def _labels(n, extra=None):
    def fn(d):
        d["id2label"] = dict((str(i), "c%d" % i) for i in range(n))
        d["label2id"] = dict(("c%d" % i, i) for i in range(n))
        d.update(extra or {})
        return d
    return _json("config.json", fn)


def _pickle_bin(model, payload=None):
    os.remove(os.path.join(model, "model.safetensors"))
    with open(os.path.join(model, "pytorch_model.bin"), "wb") as f:
        f.write(payload or b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")


def _lfs_bin(model):
    _pickle_bin(model)


def _plain_pickle(model):
    _pickle_bin(model, b"\x80\x02}q\x00.")  # a real (empty dict) pickle


CFG, PRE = "config.json", "preprocessor_config.json"
CHECKOUT_CASES = {
    "config_is_a_list": (_text(CFG, "[1, 2]"), "config.json in %s is a JSON list"),
    "config_is_a_string": (_text(CFG, '"segformer"'), "is a JSON str, not an object"),
    "config_not_json": (_text(CFG, "{model_type: segformer"), "config.json in %s is not valid "
                                                              "JSON"),
    "config_empty": (_text(CFG, ""), "config.json in %s is not valid JSON"),
    "config_lfs_pointer": (_text(CFG, "version https://git-lfs.github.com/spec/v1\n"),
                           "config.json is a Git LFS pointer"),
    "not_segformer": (_set(CFG, model_type="bert"), "describes a 'bert' model"),
    "classification_head": (_set(CFG, architectures=["SegformerForImageClassification"]),
                            "not for semantic segmentation"),
    "no_id2label": (_json(CFG, lambda d: dict((k, v) for k, v in d.items() if k != "id2label")),
                    "has no id2label"),
    "id2label_word_keys": (_json(CFG, lambda d: dict(d, id2label=dict(
        ("k%s" % k, v) for k, v in d["id2label"].items()))),
                           "id2label key 'k"),
    "id2label_padded_keys": (_json(CFG, lambda d: dict(d, id2label=dict(
        ("0" + k, v) for k, v in d["id2label"].items()))),
                             "id2label key '0"),
    "id2label_gap": (_json(CFG, lambda d: dict(d, id2label=dict(
        (k, v) for k, v in d["id2label"].items() if k != "5"))),
                     "with gaps"),
    "id2label_null_name": (_json(CFG,
                                 lambda d: dict(d, id2label=dict(d["id2label"], **{"3": None}))),
                           "name that is not a string"),
    "num_labels_disagrees": (_set(CFG, num_labels=34), "says num_labels 34 but id2label names 35"),
    "head_for_other_label_count": (_labels(34, {"num_labels": 34}),
                                   "head for 35 classes but config.json's id2label names 34"),
    "too_many_labels": (_labels(300, {"num_labels": 300}), "300 labels"),
    "preprocessor_is_a_list": (_text(PRE, "[]"), "preprocessor_config.json in %s is a JSON list"),
    "preprocessor_missing": (lambda m: os.remove(os.path.join(m, PRE)),
                             "preprocessor_config.json is missing"),
    "size_zero": (_set(PRE, size={"height": 0, "width": 256}), "size height 0"),
    "size_huge": (_set(PRE, size={"height": 256, "width": 100000}), "size width 100000"),
    "size_text": (_set(PRE, size={"height": "abc", "width": 256}), "size height 'abc'"),
    "size_bool": (_set(PRE, size={"height": True, "width": 256}), "size height True"),
    "size_float": (_set(PRE, size={"height": 256.5, "width": 256}), "size height 256.5"),
    "size_shortest_edge": (_set(PRE, size={"shortest_edge": 512}),
                           "must give size as height and width"),
    "mean_text": (_set(PRE, image_mean=["a", "b", "c"]), "image_mean as 3 numbers"),
    "mean_two_numbers": (_set(PRE, image_mean=[0.5, 0.5]), "image_mean as 3 numbers"),
    "std_nan": (lambda m: _text(PRE, open(os.path.join(m, PRE)).read().replace(
        '"image_std": [\n    0.229', '"image_std": [\n    NaN'))(m), "image_std as 3 numbers"),
    "std_zero": (_set(PRE, image_std=[0, 0.2, 0.2]), "image_std of 0 or less"),
    "resample_bicubic": (_set(PRE, resample=3), "resample=3"),
    "rescale_text": (_set(PRE, rescale_factor="x"), "rescale_factor 'x'"),
    "normalize_off": (_set(PRE, do_normalize=False), "turns off resize or normalize"),
    "weights_truncated": (lambda m: truncate(os.path.join(m, "model.safetensors")),
                          "is truncated or corrupt"),
    "weights_trailing_garbage": (_append(b"\x00" * 100), "100 bytes of trailing garbage"),
    "weights_header_length_huge": (_header_size(1 << 40), "is not a valid safetensors file"),
    "weights_empty": (lambda m: truncate(os.path.join(m, "model.safetensors"), 0),
                      "is not a valid safetensors file"),
    "weights_lfs_pointer": (_text("model.safetensors",
                                  "version https://git-lfs.github.com/spec/v1\noid sha256:0\n"),
                            "weights are a Git LFS pointer"),
    "weights_without_head": (_without_keys("decode_head."), "no decode_head.* tensors (the "
                                                            "segmentation head)"),
    "weights_without_encoder": (_without_keys("decode_head.", keep=True), "no segformer.* tensors"),
    "weights_missing": (lambda m: os.remove(os.path.join(m, "model.safetensors")),
                        "has no model.safetensors"),
    "bin_lfs_pointer": (_lfs_bin, "weights are a Git LFS pointer"),
}


@pytest.mark.parametrize("name", sorted(CHECKOUT_CASES))
def test_3_malformed_checkouts_are_refused_by_checkout(case, name):
    damage, needle = CHECKOUT_CASES[name]
    damage(case.file(MODEL))
    code, out = doit(case.path, "checkout")
    refused(code, out, needle.replace("%s", MODEL) if "%s" in needle else needle)
    case.assert_intact()


# --- (4) the pickle policy has no side door -----------------------------------------------------

def _stale_pickle_manifest(case):
    """A checkout converted to a pickle after `doit checkout` ran with allow_pickle: true."""
    import torch
    from safetensors.torch import load_file
    model = case.file(MODEL)
    torch.save(load_file(os.path.join(model, "model.safetensors")),
               os.path.join(model, "pytorch_model.bin"))
    os.remove(os.path.join(model, "model.safetensors"))
    edit_json(case.file(os.path.join("artifacts", "checkout", "manifest.json")),
              lambda d: d.update(weights={"format": "pytorch_pickle",
                                          "files": ["pytorch_model.bin"]}))


@pytest.mark.parametrize("args", [("-s", "golden"), ("-s", "onnx"), ("bench", "n=1")])
def test_4_a_pickle_is_not_loaded_without_allow_pickle_by_any_link(case, args):
    _stale_pickle_manifest(case)
    code, out = doit(case.path, *args)
    refused(code, out, "are a pickle", "model.allow_pickle is false")


def test_4_checkout_refuses_a_pickle_without_the_opt_in(case):
    _plain_pickle(case.file(MODEL))
    code, out = doit(case.path, "checkout")
    refused(code, out, "pytorch_model.bin, a pickle that can run code", "model.allow_pickle: true")
    case.assert_intact()


def test_4_a_pickle_that_runs_code_is_refused_even_with_the_opt_in(case, tmp_path):
    marker = str(tmp_path / "ran")
    payload = b"cbuiltins\nopen\n(V" + marker.encode() + b"\nVw\ntR."
    _pickle_bin(case.file(MODEL), payload)
    code, out = doit(case.path, "checkout", config_with(case.path, {"model.allow_pickle": True}))
    refused(code, out, "pytorch_model.bin cannot be read as plain weights")
    assert not os.path.exists(marker)
    case.assert_intact()


def test_4_only_the_checkout_loader_calls_from_pretrained():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    hits = []
    for top in ("stages", "runtime"):
        for folder, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                with open(os.path.join(folder, n), "rb") as f:
                    if n.endswith(".py") and b"from_pretrained(" in f.read():
                        hits.append(os.path.relpath(os.path.join(folder, n), root))
    # the model family modules call it; only the checkout loader calls a family's load()
    assert hits and all(h.startswith(os.path.join("stages", "host", "families")) for h in hits)


# --- (5) output paths and names ---------------------------------------------------------------

def test_5_out_under_a_file_is_refused(case):
    code, out = doit(case.path, "infer", "image=" + ODD, "out=dodo.py/results")
    refused(code, out, "out=dodo.py/results cannot be written", "out=DIR")


def test_5_out_on_a_read_only_filesystem_is_refused(case, tmp_path):
    ro = str(tmp_path / "ro")
    os.mkdir(ro)
    mount("-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro)
    try:
        code, out = doit(case.path, "infer", "image=" + ODD, "out=" + ro + "/x")
    finally:
        umount(ro)
    refused(code, out, "cannot be written (read-only file system)")


def test_5_out_not_writable_for_this_user(case, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop root (the read-only mount case "
                    "covers it)")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    code, out = doit(case.path, "infer", "image=" + ODD, "out=" + str(locked))
    refused(code, out, "cannot be written (permission denied)")


def test_5_same_name_other_extension_gives_distinct_outputs(case, tmp_path):
    from PIL import Image
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(case.file(ODD), str(src / "photo.jpg"))
    Image.open(case.file(ODD)).transpose(Image.FLIP_LEFT_RIGHT).save(str(src / "photo.png"))
    out_dir = tmp_path / "out"
    code, out = doit(case.path, "infer", "image=" + str(src), "out=" + str(out_dir))
    assert code == 0 and "2 done" in out, out
    names = sorted(os.listdir(str(out_dir)))
    assert names == ["photo_jpg_mask.png", "photo_jpg_overlay.jpg", "photo_png_mask.png",
                     "photo_png_overlay.jpg"]
    assert snapshot_one(str(out_dir / names[0])) != snapshot_one(str(out_dir / names[2]))
    assert all(stat.S_IMODE(os.stat(str(out_dir / n)).st_mode) == FILE_MODE for n in names)


def test_5_when_no_input_could_be_read_nothing_is_claimed_written(case, tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    for n in ("a.jpg", "b.png"):
        (src / n).write_bytes(b"not an image")
    code, out = doit(case.path, "infer", "image=" + str(src), "out=" + str(tmp_path / "out"))
    line = refused(code, out, "None of the 2 inputs could be read", "nothing was written")
    assert "the other" not in line


def test_5_when_some_inputs_fail_the_written_ones_are_counted(case, tmp_path):
    src = tmp_path / "mixed"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"not an image")
    shutil.copy(case.file(ODD), str(src / "b.jpg"))
    code, out = doit(case.path, "infer", "image=" + str(src), "out=" + str(tmp_path / "out"))
    refused(code, out, "1 of 2 inputs could not be read", "the other 1 were written to")
    assert sorted(os.listdir(str(tmp_path / "out"))) == ["b_mask.png", "b_overlay.jpg"]


# --- (6) command-line values ------------------------------------------------------------------

@pytest.mark.parametrize("args,needles", [
    (("infer", "image=" + ODD, "backend=bogus"),
     ["backend=bogus", "auto, tensorrt or onnxruntime"]),
    (("bench", "backend=bogus"), ["backend=bogus"]),
    (("verify", "backend=bogus"), ["backend=bogus"]),
    (("infer", "image=" + ODD, "n=abc"), ["infer.n", "an integer"]),
    (("bench", "n=abc"), ["n=abc", "an integer"]),
    (("infer", "image=" + ODD, "n=0"), ["infer.n", "from 1 to 1000000000"]),
    (("bench", "n=0"), ["from 1 to 1000000000"]),
    (("bench", "n=-1"), ["from 1 to 1000000000"]),
    (("infer", "image=" + ODD, "n=-1"), ["from 1 to 1000000000"]),
    (("infer", "image=" + ODD, "alpha=2"), ["alpha=2", "a number from 0 to 1"]),
    (("infer", "image=" + ODD, "alpha=-0.5"), ["alpha=-0.5", "from 0 to 1"]),
    (("infer", "image=" + ODD, "alpha=nan"), ["alpha=nan", "a number from 0 to 1"]),
    (("infer", "image=" + ODD, "mode=bogus"), ["infer.mode", "overlay, mask or both"]),
    (("infer", "image=" + ODD, "sequential=maybe"), ["infer.sequential", "1 or 0"]),
    (("bench", "cpu=2"), ["bench.cpu", "1 or 0"]),
    (("infer", "image=" + ODD, "out="), ["out= on the command line", "empty"]),
    (("infer", "image=" + ODD, "out=dodo.py"), ["out=dodo.py", "is a file"]),
    (("infer", "image=examples/nope.jpg"), ["image=examples/nope.jpg", "does not exist"]),
    (("infer", "imgae=x"), ["Unknown variable 'imgae='"]),
])
def test_6_bad_command_line_values(case, args, needles):
    code, out = doit(case.path, *args)
    refused(code, out, *needles)
    assert code == 2
    case.assert_intact()


# --- (7) faults of the machine ----------------------------------------------------------------

DEP = os.path.join("artifacts", ".doit.json")


@pytest.mark.parametrize("content,needle", [
    (None, "is damaged (not a valid state file)"),
    (b"", "is damaged (empty)"),
    (b"[]", "is damaged (not a valid state file)"),
    (b"\xff\xfe\x00garbage", "is damaged (not a valid state file)"),
])
def test_7_a_damaged_doit_state_file_is_one_sentence(case, content, needle):
    path = case.file(DEP)
    with open(path, "rb") as f:
        good = f.read()
    with open(path, "wb") as f:
        f.write(good[: len(good) // 2] if content is None else content)
    try:
        code, out = doit(case.path)
    finally:
        with open(path, "wb") as f:
            f.write(good)
    refused(code, out, ".doit.json", needle, "delete it")
    case.assert_intact()


def test_7_doit_info_on_a_damaged_state_file_is_one_line(case):
    path = case.file(DEP)
    with open(path, "rb") as f:
        good = f.read()
    with open(path, "wb") as f:
        f.write(good[:10])
    try:
        code, out = doit(case.path, "info", "verify")
    finally:
        with open(path, "wb") as f:
            f.write(good)
    refused(code, out, ".doit.json", "is damaged", "delete it")


def test_7_a_read_only_artifacts_folder_is_one_sentence(case):
    art = case.file("artifacts")
    mount("--bind", art, art)
    try:
        mount("-o", "remount,ro,bind", art)
        code, out = doit(case.path, "verify")
    finally:
        umount(art)
    refused(code, out, "read-only file system", "artifacts")
    assert "opset" not in out
    case.assert_intact()


def test_7_a_file_where_an_artifacts_folder_belongs_is_one_sentence(case):
    verify_dir = case.file(os.path.join("artifacts", "verify"))
    shutil.rmtree(verify_dir)
    open(verify_dir, "w").close()
    try:
        code, out = doit(case.path, "-s", "verify", "backend=onnxruntime")
    finally:
        os.remove(verify_dir)
        shutil.copytree(os.path.join(case.pristine, "artifacts", "verify"), verify_dir)
    refused(code, out, "a file stands where a folder is expected")


def test_7_artifacts_folder_not_writable_for_this_user(case):
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop root (the read-only mount case "
                    "covers it)")
    os.chmod(case.file("artifacts"), 0o555)
    try:
        code, out = doit(case.path, "verify")
    finally:
        os.chmod(case.file("artifacts"), 0o755)
    refused(code, out, "Permission denied")


def test_7_a_full_disk_during_export_is_one_sentence_not_an_opset_hint(project):
    small = os.path.join(project, "small")
    os.mkdir(small)
    golden_bytes = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in
                       os.walk(os.path.join(project, "artifacts", "golden")) for n in ns)
    mount("-t", "tmpfs", "-o", "size=%dk" % ((golden_bytes >> 10) + 1536), "tmpfs", small)
    try:
        code, out = doit(project, config_with(project, {"artifacts": "small"}))
        left = temps(project, "small")
        golden = snapshot(project, os.path.join("small", "golden"))
    finally:
        umount(small)
    line = refused(code, out, "No space left on the device")
    assert "opset" not in line and executed(out)[-1] == "onnx", out
    assert not left, left
    assert len(golden) == 13  # the golden set that fitted is complete: 3 x 4 files + golden.json


def test_7_ctrl_c_is_one_line_and_the_rerun_is_exact(project):
    overlay = os.path.join(project, GOLDEN, "00_street_1920x1080", "overlay.jpg")
    good = snapshot_one(overlay)
    with open(overlay, "ab") as f:
        f.write(b"damage")  # golden reruns
    before = snapshot(project)
    run = Watched(project, "golden")
    run.wait_for(".  golden")
    run.proc.send_signal(signal.SIGINT)
    code, out = run.finish()
    refused(code, out, "interrupted (Ctrl-C)", "run the same doit command again")
    assert snapshot(project) == before and not temps(project)
    code, out = doit(project)
    assert code == 0 and executed(out) == ["golden"], out
    assert snapshot_one(overlay) == good


def test_7_ctrl_c_while_waiting_for_the_lock_is_one_line(case):
    with open(case.file(os.path.join("artifacts", ".doit.json.lock")), "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        run = Watched(case.path, "verify")
        run.wait_for("waiting for it to finish")
        run.proc.send_signal(signal.SIGINT)
        code, out = run.finish()
    refused(code, out, "interrupted (Ctrl-C)")


def test_7_sigkill_during_export_leaves_temps_that_the_next_run_removes(project):
    flip_byte(os.path.join(project, "artifacts", "onnx", "report.json"), offset=3)  # onnx reruns
    onnx_dir = os.path.join(project, "artifacts", "onnx")
    run = Watched(project)
    run.wait_for(".  onnx")
    deadline = time.time() + 120
    while time.time() < deadline and not [n for n in os.listdir(onnx_dir) if TEMP_NAME.match(n)]:
        time.sleep(0.02)  # polling for the event: the export's temp file appearing
    os.killpg(run.proc.pid, signal.SIGKILL)
    run.finish()
    assert temps(project), "the kill left no temp file to clean"
    code, out = doit(project)
    assert code == 0 and "Traceback" not in out, out
    assert "removed" in out and "temp file(s) an interrupted run left" in out, out
    assert not temps(project)
    assert executed(out)[0] == "onnx"


def test_7_two_doit_runs_in_one_folder_wait_and_end_consistent(project):
    flip_byte(os.path.join(project, "artifacts", "onnx", "report.json"), offset=3)  # onnx reruns
    first = Watched(project)
    first.wait_for(".  onnx")
    second = Watched(project)
    second.wait_for("waiting for it to finish")
    code1, out1 = first.finish()
    code2, out2 = second.finish()
    assert code1 == 0 and code2 == 0, out1 + out2
    assert "onnx" in executed(out1) and executed(out2) == [], out2
    assert "Traceback" not in out1 + out2
    with open(os.path.join(project, SIDECAR)) as f:
        assert json.load(f)["onnx_sha256"] == snapshot_one(os.path.join(project, ONNX))
    assert not temps(project)


# --- (8) small things a user notices ---------------------------------------------------------

def test_8_artifacts_are_readable_by_other_users(built_project):
    modes = dict((p, stat.S_IMODE(os.stat(os.path.join(built_project, p)).st_mode))
                 for p in snapshot(built_project))
    assert modes and all(m == FILE_MODE for m in modes.values()), modes
    assert FILE_MODE == 0o666 & ~UMASK and (UMASK & 0o044 or FILE_MODE & 0o044 == 0o044)


def test_8_bundle_members_are_readable_by_other_users(project):
    code, out = doit(project, "bundle")
    assert code == 0, out
    path = os.path.join(project, "artifacts", "bundle", "segformer-device-bundle.tar.gz")
    assert stat.S_IMODE(os.stat(path).st_mode) == FILE_MODE
    with tarfile.open(path) as tar:
        modes = [m.mode for m in tar.getmembers() if m.isfile()]
    assert modes and all(m in (FILE_MODE, EXEC_MODE) for m in modes), sorted(set(modes))


def test_8_a_symlink_loop_is_not_reported_as_missing(case):
    os.symlink("loop", case.file(os.path.join("models", "loop")))
    try:
        code, out = doit(case.path, "checkout",
                         config_with(case.path, {"model.path": "models/loop"}))
    finally:
        os.remove(case.file(os.path.join("models", "loop")))
    line = refused(code, out, "model.path models/loop is a symlink loop")
    assert "does not exist" not in line


def test_8_a_model_path_that_is_a_file_is_not_reported_as_missing(case):
    code, out = doit(case.path, "checkout", config_with(case.path, {"model.path": "dodo.py"}))
    line = refused(code, out, "model.path dodo.py is a file, not a folder")
    assert "does not exist" not in line


def test_8_a_dangling_model_link_names_its_target(case):
    os.symlink("gone", case.file(os.path.join("models", "dangling")))
    try:
        code, out = doit(case.path, "checkout",
                         config_with(case.path, {"model.path": "models/dangling"}))
    finally:
        os.remove(case.file(os.path.join("models", "dangling")))
    refused(code, out, "is a symlink to gone, which does not exist")


def test_8_an_oversized_golden_image_names_golden_and_keeps_the_set(case):
    huge = case.file(os.path.join("examples", "huge.png"))
    huge_png(huge)
    try:
        images = ["examples/street_1920x1080.jpg", "examples/odd_641x479.jpg", "examples/huge.png"]
        code, out = doit(case.path, "golden", config_with(case.path, {"golden.images": images}))
    finally:
        os.remove(huge)
    line = refused(code, out, "huge.png in golden.images is 20000x20000",
                   "golden.images in pipeline.yaml")
    assert "infer.max_megapixels" not in line
    case.assert_intact()  # the previous set, whole: no mix of two runs, no stale hashes


def test_8_the_readme_says_the_embedded_model_is_a_demo():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md")) as f:
        text = f.read()
    intro = " ".join(text.split("\n## ")[0].split())
    assert "demo" in intro and "not a segmenter" in intro
    assert intro.index("Using a real checkout") < intro.index("97.97")


def test_model_and_golden_files_from_different_input_sizes():
    # a model and sidecar from a run at another input size agree with each other (hashes pass),
    # not with the golden files: verify names both and the links to rerun, before numpy broadcasts
    import numpy as np
    from runtime.errors import ArtifactError
    from stages.device.verify import check_shapes

    class Backend(object):
        input_shape, output_shape, source = (1, 3, 512, 512), (1, 35, 128, 128), "model.onnx"
    tensor, logits = np.zeros((1, 3, 256, 256), np.float32), np.zeros((1, 35, 64, 64), np.float32)
    with pytest.raises(ArtifactError) as e:
        check_shapes(Backend(), tensor, logits, {"dir": "artifacts/golden/00_street"})
    assert "different models or input sizes" in str(e.value) and "1x3x256x256" in str(e.value)
    assert "1x3x512x512" in str(e.value) and "doit golden onnx" in str(e.value)
    check_shapes(Backend(), np.zeros((1, 3, 512, 512), np.float32),
                 np.zeros((1, 35, 128, 128), np.float32), {"dir": "d"})  # matching shapes pass


def test_golden_json_without_image_records(project):
    path = os.path.join(project, "artifacts", "golden", "golden.json")
    with open(path, "w") as f:
        json.dump({"versions": {}}, f)
    code, out = doit(project, "-s", "verify", "backend=onnxruntime")
    refused(code, out, "golden.json has no image records", "doit golden")
