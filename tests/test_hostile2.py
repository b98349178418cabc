"""The hostile-input catalogue, round 2 (issue 20), through the real doit command line on copies of
a built project, in six classes: (1) non-finite numbers, (2) tracebacks that remained, (3)
unbounded work from a small input, (4) ambiguous or senseless settings, (5) how infer decides
what image= is, (6) files that are not the project's.

Every case asserts the exit status, no traceback, one sentence naming the file or key, a bounded
run time and output size, and that a victim file planted outside the project is untouched (the
`watch` fixture checks it after each case)."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

from conftest import doit
from test_hostile import (ODD, ONNX, Watched, case, config_with, refused,  # noqa: F401
                          shared, snapshot, temps)
from runtime.files import TEMP_NAME

pytestmark = pytest.mark.host
MODEL = os.path.join("models", "segformer-tiny-sidewalk")
WEIGHTS = os.path.join(MODEL, "model.safetensors")
GOLDEN = os.path.join("artifacts", "golden")
SECONDS, CHARS = 120, 20000  # every case: at most this long, and this much output


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A folder outside the project holding a victim file nothing may touch."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "victim.txt").write_text("mine\n")
    return str(folder)


@pytest.fixture
def watch(case, outside):
    """The shared project copy, checked afterwards: the victim and its folder are untouched."""
    before = sorted(os.listdir(outside))
    yield case
    assert sorted(os.listdir(outside)) == before
    with open(os.path.join(outside, "victim.txt")) as f:
        assert f.read() == "mine\n"


def run(project, *args, **kw):
    """doit with the bounds every case asserts: run time and output size."""
    limit = kw.pop("limit", SECONDS)
    t0 = time.time()
    code, out = doit(project, *args, timeout=limit, **kw)
    assert time.time() - t0 < limit and len(out) < CHARS, (time.time() - t0, len(out))
    return code, out


def write_config(project, text, name="h.yaml"):
    with open(os.path.join(project, name), "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode("utf-8"))
    return "config=" + name


def pipeline_text(project):
    with open(os.path.join(project, "pipeline.yaml")) as f:
        return f.read()


# --- (1) non-finite numbers -------------------------------------------------------------------

def _damage_tensor(model, pick, value):
    from safetensors.numpy import load_file, save_file
    path = os.path.join(model, "model.safetensors")
    tensors = load_file(path)
    name = sorted(k for k in tensors if pick(k))[0]
    flat = tensors[name].reshape(-1).copy()
    flat[flat.size // 2] = value
    tensors[name] = flat.reshape(tensors[name].shape)
    save_file(tensors, path, metadata={"format": "pt"})
    return name


@pytest.mark.parametrize("pick,value,kind", [
    (lambda k: k == "decode_head.classifier.weight", np.nan, "NaN"),
    (lambda k: k.startswith("segformer.encoder") and k.endswith("weight"), np.nan, "NaN"),
    (lambda k: k.startswith("decode_head") and k.endswith("bias"), np.inf, "infinite"),
    (lambda k: k.startswith("segformer.encoder") and k.endswith("bias"), -np.inf, "infinite"),
])
def test_1_checkout_refuses_non_finite_weights(watch, pick, value, kind):
    name = _damage_tensor(watch.file(MODEL), pick, value)
    code, out = run(watch.path, "checkout")
    line = refused(code, out, "The weights are damaged", name, "model.safetensors", kind)
    assert "opset" not in line
    watch.assert_intact()


def test_1_checkout_refuses_non_finite_pickle_weights(watch):
    import torch
    from safetensors.torch import load_file
    model = watch.file(MODEL)
    state = load_file(os.path.join(model, "model.safetensors"))
    state["decode_head.classifier.bias"][0] = float("nan")
    torch.save(state, os.path.join(model, "pytorch_model.bin"))
    os.remove(os.path.join(model, "model.safetensors"))
    code, out = run(watch.path, "checkout", config_with(watch.path, {"model.allow_pickle": True}))
    refused(code, out, "The weights are damaged", "decode_head.classifier.bias", "NaN")
    watch.assert_intact()


def _golden_logits(case, value, i=0):
    """Replace one golden logits file by one holding `value`, with a matching sha256."""
    index_path = case.file(os.path.join(GOLDEN, "golden.json"))
    with open(index_path) as f:
        index = json.load(f)
    rec = index["images"][i]
    path = case.file(os.path.join(rec["dir"], "logits.npy"))
    logits = np.load(path)
    logits.reshape(-1)[7] = value
    np.save(path, logits)
    with open(path, "rb") as f:
        rec["sha256"]["logits.npy"] = hashlib.sha256(f.read()).hexdigest()
    with open(index_path, "w") as f:
        json.dump(index, f)
    return os.path.basename(rec["source"])


@pytest.mark.parametrize("value,kind", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_1_verify_refuses_non_finite_golden_logits(watch, value, kind):
    image = _golden_logits(watch, value)
    code, out = run(watch.path, "-s", "verify", "backend=onnxruntime")
    line = refused(code, out, "The model produces %s logits on" % kind, image, "damaged")
    assert "ok" not in [l.split()[-1] for l in out.splitlines() if l.strip()], out
    assert "100.0000%" not in line


def test_1_onnx_parity_refuses_non_finite_golden_logits(watch):
    _golden_logits(watch, np.nan, i=1)
    code, out = run(watch.path, "-s", "onnx")
    line = refused(code, out, "produces NaN logits on", "odd_641x479")
    assert "check the opset" not in line


def test_1_precision_refuses_non_finite_golden_logits(watch):
    _golden_logits(watch, np.nan)
    code, out = run(watch.path, "-s", "precision")
    refused(code, out, "produces NaN logits on", "street_1920x1080")


@pytest.mark.parametrize("value,kind", [(np.nan, "NaN"), (-np.inf, "infinite")])
def test_1_verify_refuses_a_backend_that_produces_non_finite_logits(built_project, monkeypatch,
                                                                     value, kind):
    from runtime.errors import NonFiniteError
    from runtime.golden import load_case, read_index
    from stages.device.verify import check_case
    monkeypatch.chdir(built_project)
    rec = read_index(os.path.join(GOLDEN, "golden.json"))[0]
    tensor, logits, _ = load_case(rec)

    class Backend(object):
        name, source = "tensorrt", "artifacts/engine/x/model.engine"
        input_shape, output_shape = tensor.shape, logits.shape

        def infer(self, t):
            out = logits.copy()
            out[0, 0, 0, 0] = value
            return out

    class Seg(object):
        backend = Backend()

        def preprocess(self, image):
            return tensor
    with pytest.raises(NonFiniteError) as e:
        check_case(Seg(), rec, None)
    assert "The tensorrt backend produces %s logits on" % kind in str(e.value)
    assert "street_1920x1080" in str(e.value) and "doit build_engine" in str(e.value)


def test_1_the_comparison_itself_refuses_nan_and_inf():
    from runtime.errors import NonFiniteError
    from stages.common import compare
    good = np.zeros((1, 2, 3, 3), np.float32)
    for bad_value in (np.nan, np.inf, -np.inf):
        bad = good.copy()
        bad[0, 1, 2, 2] = bad_value
        for pair in ((bad, good), (good, bad)):
            with pytest.raises(NonFiniteError):
                compare.abs_diff(*pair)
    assert compare.abs_diff(good, good) == {"max_abs": 0.0, "mean_abs": 0.0}


# --- (2) tracebacks that remained -------------------------------------------------------------

@pytest.mark.parametrize("make,needle", [
    (lambda text: text.encode("utf-16"), "not UTF-8 text"),
    (lambda text: text.encode("utf-16-le"), "not UTF-8 text"),
    (lambda text: bytes(range(256)) * 8, "not UTF-8 text"),
    (lambda text: ("# caf\xe9\n" + text).encode("latin-1"), "not UTF-8 text (byte 5)"),
    (lambda text: text.replace("workspace_mb: 1024", "workspace_mb: " + "9" * 6000).encode(),
     "a value YAML cannot hold"),
])
def test_2_a_pipeline_file_that_is_not_utf8_text(watch, make, needle):
    code, out = run(watch.path, "verify", write_config(watch.path, make(pipeline_text(watch.path))))
    refused(code, out, "h.yaml", needle)
    assert code == 2
    watch.assert_intact()


def test_2_a_margin_of_1e308_is_refused_by_its_bound(watch):
    code, out = run(watch.path, "precision", config_with(watch.path, {"precision.margin": 1e308}))
    refused(code, out, "precision.margin", "at most 1000")


def _swapped_pickle(project):
    """A pickle checkout validated by `doit checkout`, then swapped for another pickle."""
    import torch
    from safetensors.torch import load_file
    model = os.path.join(project, MODEL)
    torch.save(load_file(os.path.join(model, "model.safetensors")),
               os.path.join(model, "pytorch_model.bin"))
    os.remove(os.path.join(model, "model.safetensors"))
    cfg = config_with(project, {"model.allow_pickle": True})
    code, out = run(project, "checkout", cfg)
    assert code == 0, out
    with open(os.path.join(model, "pytorch_model.bin"), "wb") as f:
        f.write(b"cbuiltins\nprint\n(Vpwned\ntR.")
    return cfg


@pytest.mark.parametrize("args", [("bench", "n=1"), ("-s", "golden"), ("-s", "onnx")])
def test_2_a_pickle_swapped_after_checkout_is_refused_before_loading(project, args):
    cfg = _swapped_pickle(project)
    code, out = run(project, *(args + (cfg,)), limit=300)  # bench times ONNX Runtime first
    refused(code, out, "pytorch_model.bin changed since `doit checkout`", "doit checkout")
    assert "pwned" not in out


# --- (3) unbounded work from a small input ----------------------------------------------------

BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    'a%d: &a%d [%s]\n' % (i, i, ",".join(["*a%s" % (i - 1 if i > 1 else "")] * 9))
    for i in range(1, 9)) + "onnx:\n  opset: *a8\n")


@pytest.mark.parametrize("text,needle", [
    (BOMB, "uses the YAML alias"),
    ("onnx:\n  opset: " + "[" * 3000 + "]" * 3000 + "\n", "nests deeper than 16 levels"),
    ("onnx:\n  opset: " + "x" * 200000 + "\n", "onnx.opset"),
    ("x" * 1000 + ": 1\n", "Unknown key"),
    ("x" * 20000 + ": 1\n", "not valid YAML at line 1"),
    ("# padding\n" * 120000, "over the 1048576 a settings file may have"),
], ids=["alias-bomb", "deep-nesting", "200k-value", "1k-key", "20k-key", "over-1-MiB"])
# (short ids: pytest puts the test id in PYTEST_CURRENT_TEST, and the child doit inherits it; a
# 200,000-character id is over Linux's 128 KiB limit for one environment string: E2BIG)
def test_3_a_small_or_odd_file_gives_a_short_refusal(watch, text, needle):
    code, out = run(watch.path, "verify", write_config(watch.path, text))
    line = refused(code, out, needle)
    assert len(line) < 400, len(line)


def test_3_a_huge_command_line_name_gives_a_short_refusal(watch):
    code, out = run(watch.path, "verify", "x" * 5000 + "=1")
    line = refused(code, out, "Unknown variable 'xxx", "known variables are")
    assert len(line) < 400, len(line)


def _fifo(path):
    if os.path.lexists(path):
        os.remove(path)
    os.mkfifo(path)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_3_a_checkout_file_that_is_a_fifo_is_refused_not_read(watch, tmp_path, name):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    target = watch.file(os.path.join(MODEL, name))
    os.remove(target)
    os.symlink(fifo, target)
    code, out = run(watch.path, "checkout")
    refused(code, out, name, "is not a regular file")
    watch.assert_intact()


def test_3_a_pipeline_file_that_is_a_fifo_is_refused_not_read(watch):
    _fifo(watch.file("fifo.yaml"))
    try:
        code, out = run(watch.path, "verify", "config=fifo.yaml")
    finally:
        os.remove(watch.file("fifo.yaml"))
    refused(code, out, "fifo.yaml is not a regular file")


def test_3_an_image_that_is_a_fifo_is_refused_not_read(watch, tmp_path):
    fifo = str(tmp_path / "cam.jpg")
    os.mkfifo(fifo)
    code, out = run(watch.path, "infer", "image=" + fifo, "out=" + str(tmp_path / "o"))
    refused(code, out, "image=" + fifo, "is not a regular file")  # named as typed (issue 27)


# --- (4) ambiguous or senseless settings ------------------------------------------------------

@pytest.mark.parametrize("edit,needles", [
    (("opset: 13", "opset: 13\n  opset: 12"), ["'opset' is given twice", "lines 20 and 21"]),
    (("precision:", "onnx:\n  opset: 12\nprecision:"), ["'onnx' is given twice", "lines 19 and"]),
    (("alpha: 0.5\n  mode", "alpha: 0.5\n  alpha: 0.7\n  mode"), ["'alpha' is given twice"]),
])
def test_4_a_key_or_section_given_twice_is_refused_with_both_lines(watch, edit, needles):
    text = pipeline_text(watch.path)
    assert edit[0] in text
    code, out = run(watch.path, "verify", write_config(watch.path, text.replace(edit[0], edit[1],
                                                                                1)))
    refused(code, out, "h.yaml", *needles)


@pytest.mark.parametrize("key,value,needle", [
    ("engine.workspace_mb", 99999999999999999999999, "at most 262144"),
    ("onnx.opset", 1000, "at most 23"),
    ("bench.iterations", 10 ** 12, "at most 1000000"),
    ("bench.warmup", 10 ** 9, "at most 10000"),
    ("infer.max_megapixels", 1e9, "at most 1000"),
    ("verify.fp32.logits_max_abs", 1e300, "at most 1000"),
    ("onnx.max_abs", 1e10, "at most 1000"),
    ("engine.keep_fp32", ["LayerNorm", "; rm -rf /", "Banana", ""],
     "'; rm -rf /', which is not one of LayerNorm, Softmax"),
    ("engine.keep_fp32", ["LayerNorm", "LayerNorm"], "names a value twice"),
])
def test_4_every_number_has_a_range_and_every_name_list_its_values(watch, key, value, needle):
    for task in ("verify", "doctor"):
        code, out = run(watch.path, task, config_with(watch.path, {key: value}))
        refused(code, out, key, needle)


@pytest.mark.parametrize("n", ["9" * 5000, "1" + "0" * 30])
def test_4_a_huge_command_line_number_is_bounded(watch, n):
    code, out = run(watch.path, "infer", "image=" + ODD, "n=" + n)
    line = refused(code, out, "infer.n", "n= takes an integer from 1 to 1000000000")
    assert len(line) < 300


def test_4_the_schema_bounds_every_number():
    from stages.common.schema import SCHEMA

    def keys(node, prefix=""):
        for name, spec in node.items():
            if isinstance(spec, dict):
                yield from keys(spec, prefix + name + ".")
            else:
                yield prefix + name, spec
    unbounded = [k for k, s in keys(SCHEMA) if s.kind in ("int", "float")
                 and (s.minimum is None or s.maximum is None)]
    assert unbounded == []


# --- (5) infer decides by what exists on disk first -------------------------------------------

def _video(path, frames=3, size=(64, 48)):
    import cv2
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        w.write(np.full((size[1], size[0], 3), 30 * i % 255, np.uint8))
    w.release()
    assert os.path.getsize(path) > 0


def test_5_an_existing_folder_named_like_a_camera_is_a_folder(watch, tmp_path):
    import shutil
    src = watch.file("2024")
    os.mkdir(src)
    shutil.copy(watch.file(ODD), os.path.join(src, "a.jpg"))
    try:
        code, out = run(watch.path, "infer", "image=2024", "out=" + str(tmp_path / "out"))
    finally:
        shutil.rmtree(src)
    assert code == 0 and "1 done" in out and "Traceback" not in out, out
    assert sorted(os.listdir(str(tmp_path / "out"))) == ["a_mask.png", "a_overlay.jpg"]


def test_5_an_existing_file_with_a_bang_is_an_image(watch, tmp_path):
    import shutil
    shutil.copy(watch.file(ODD), str(tmp_path / "wow!.jpg"))
    code, out = run(watch.path, "infer", "image=" + str(tmp_path / "wow!.jpg"),
                    "out=" + str(tmp_path / "out"))
    assert code == 0 and "1 done" in out and "Traceback" not in out, out


@pytest.mark.parametrize("ext", ["ts", "m2ts", "bin"])
def test_5_a_video_is_known_by_its_content_not_its_name(watch, tmp_path, ext):
    _video(str(tmp_path / ("clip.mp4")))
    os.rename(str(tmp_path / "clip.mp4"), str(tmp_path / ("clip." + ext)))
    code, out = run(watch.path, "infer", "image=" + str(tmp_path / ("clip." + ext)),
                    "out=" + str(tmp_path / "out"), "mode=overlay")
    assert code == 0 and "3 done" in out and "Traceback" not in out, out
    video = tmp_path / "out" / "clip_overlay.mp4"
    assert video.stat().st_size > 0 and not temps(str(tmp_path), "out")


def test_5_a_video_over_the_megapixel_limit_is_refused_and_writes_nothing(watch, tmp_path):
    _video(str(tmp_path / "big.mp4"), frames=2, size=(640, 480))
    code, out = run(watch.path, "infer", "image=" + str(tmp_path / "big.mp4"),
                    "out=" + str(tmp_path / "out"),
                    config_with(watch.path, {"infer.max_megapixels": 0.1}))
    refused(code, out, "big.mp4 has 640x480 frames", "infer.max_megapixels")
    assert "wrote" not in out
    assert not [n for n in os.listdir(str(tmp_path / "out")) if n.endswith(".mp4")]


def test_5_a_camera_index_that_is_not_a_path_is_a_camera(watch, tmp_path):
    code, out = run(watch.path, "infer", "image=7", "out=" + str(tmp_path / "out"))
    refused(code, out, "7 cannot be opened as a camera")


def test_5_a_text_file_named_like_a_video_is_one_sentence(watch, tmp_path):
    (tmp_path / "clip.mp4").write_text("not a video")
    code, out = run(watch.path, "infer", "image=" + str(tmp_path / "clip.mp4"),
                    "out=" + str(tmp_path / "out"))
    refused(code, out, "clip.mp4")


def test_5_the_video_writer_checks():
    from runtime.errors import ImageError
    from stages.device import sources
    assert [sources.writer_fps(f) for f in (float("nan"), 0.0, -5.0, 1e9, None, 25.0)] == [
        30.0, 30.0, 30.0, 30.0, 30.0, 25.0]
    with pytest.raises(ImageError):
        sources.open_writer(os.path.join("/nonexistent-folder", "x.mp4"), 30.0, 64, 48)


# --- (6) files that are not the project's -----------------------------------------------------

def test_6_a_lock_file_that_is_a_symlink_is_refused(watch, outside):
    lock = watch.file(os.path.join("artifacts", ".doit.json.lock"))
    os.remove(lock)
    os.symlink(os.path.join(outside, "victim.txt"), lock)
    try:
        code, out = run(watch.path, "verify")
    finally:
        os.remove(lock)
    refused(code, out, ".doit.json.lock is a symlink")


def test_6_an_artifacts_folder_leading_outside_is_refused(watch, outside):
    os.symlink(outside, watch.file("elsewhere"))
    try:
        code, out = run(watch.path, "verify", config_with(watch.path, {"artifacts": "elsewhere"}))
    finally:
        os.remove(watch.file("elsewhere"))
    refused(code, out, "Key 'artifacts'", "outside the project")


def test_6_an_artifacts_sub_folder_leading_outside_is_not_written(watch, outside):
    verify_dir = watch.file(os.path.join("artifacts", "verify"))
    os.rename(verify_dir, verify_dir + ".keep")
    os.symlink(outside, verify_dir)
    try:
        code, out = run(watch.path, "-s", "verify", "backend=onnxruntime")
    finally:
        os.remove(verify_dir)
        os.rename(verify_dir + ".keep", verify_dir)
    refused(code, out, "outside the project", "remove the link")


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_6_cleanup_removes_only_our_temps_of_dead_runs(watch):
    art = watch.file("artifacts")
    mine = [os.path.join(art, "notes.export"), os.path.join(art, "onnx", ".x.tmp"),
            os.path.join(art, "infer", "run.candidate", "keep.txt"),
            os.path.join(art, ".model.onnx.~doit-%d-abcdefgh.tmp" % os.getpid())]
    dead = os.path.join(art, "onnx", ".model.onnx.~doit-%d-abcdefgh.tmp.onnx" % _dead_pid())
    for p in mine + [dead]:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write("x")
        os.utime(p, (time.time() - 3600,) * 2)
    try:
        code, out = run(watch.path, "doctor")
        assert "Traceback" not in out and "removed 1 temp file(s)" in out, out
        assert all(os.path.exists(p) for p in mine) and not os.path.exists(dead)
    finally:
        import shutil
        for p in mine:
            os.remove(p)
        shutil.rmtree(os.path.join(art, "infer", "run.candidate"))


def test_6_a_killed_video_infer_leaves_no_temp_in_an_outside_out(watch, tmp_path):
    _video(str(tmp_path / "long.mp4"), frames=400, size=(320, 240))
    out_dir = str(tmp_path / "out")
    job = Watched(watch.path, "infer", "image=" + str(tmp_path / "long.mp4"), "out=" + out_dir,
                  "mode=overlay", "sequential=1")
    deadline = time.time() + 120
    while time.time() < deadline and not temps(str(tmp_path), "out"):
        time.sleep(0.02)  # polling for the event: the temp video appearing
    os.killpg(job.proc.pid, signal.SIGKILL)
    job.finish()
    assert temps(str(tmp_path), "out"), "the kill left no temp video"
    code, out = run(watch.path, "infer", "image=" + ODD, "out=" + out_dir)
    assert code == 0 and "Traceback" not in out, out
    assert not temps(str(tmp_path), "out")


def test_6_bundle_packs_the_file_a_symlinked_example_points_at(project, outside, tmp_path):
    import shutil
    target = str(tmp_path / "real.jpg")
    shutil.copy(os.path.join(project, ODD), target)
    os.symlink(target, os.path.join(project, "examples", "link.jpg"))
    code, out = run(project, "bundle", config_with(project, {"bench.image": "examples/link.jpg"}))
    assert code == 0 and "Traceback" not in out, out
    path = os.path.join(project, "artifacts", "bundle", "segformer-device-bundle.tar.gz")
    with tarfile.open(path) as tar:
        member = tar.getmember("segformer-trt/examples/link.jpg")
        assert member.isfile() and member.size == os.path.getsize(target)
