"""Limits and hostile inputs, each at its edge: the megapixel limit (read_image and infer), infer's
n= and bench's iterations counted exactly, `artifacts: .` refused, a safetensors file with
trailing bytes or a Git LFS pointer for pytorch_model.bin refused."""

import json
import os
import types

import numpy as np
import pytest
from PIL import Image

from runtime.errors import ImageError
from runtime.images import read_image
from stages.common.errors import CheckoutError, ConfigError


def png(path, w, h, mode="RGB"):
    Image.new(mode, (w, h)).save(str(path))
    return str(path)


def test_megapixel_limit_accepts_the_limit_and_refuses_one_pixel_row_more(tmp_path):
    at = png(tmp_path / "at.png", 1000, 1000)
    over = png(tmp_path / "over.png", 1000, 1001)
    assert read_image(at, 1.0).shape == (1000, 1000, 3)
    with pytest.raises(ImageError) as e:
        read_image(over, 1.0)
    assert "1000x1001" in str(e.value) and "infer.max_megapixels" in str(e.value)
    assert read_image(over, None).shape == (1001, 1000, 3)


class FakeSeg(object):
    palette = [[0, 0, 0], [255, 0, 0]]

    def __init__(self):
        self.seen = []

    def segment(self, image, overlay_alpha=0.5):
        self.seen.append(image.shape)
        return types.SimpleNamespace(
            mask=np.zeros(image.shape[:2], np.uint8), overlay=image, timings={"infer": 1.0}
        )


def infer_cfg(image, out, n=None, max_mp=80.0):
    return {
        "infer": {
            "image": image,
            "out": out,
            "alpha": 0.5,
            "mode": "mask",
            "backend": "auto",
            "n": n,
            "sequential": False,
            "max_megapixels": max_mp,
        }
    }


def run_infer(monkeypatch, cfg):
    from stages.device import infer, select

    seg = FakeSeg()
    monkeypatch.setattr(select, "open_runtime", lambda layout, backend: seg)
    monkeypatch.setattr(select, "describe", lambda s: {"backend": "fake", "pre_post": "cpu"})
    infer.run_infer(cfg, None)
    return seg


def test_infer_applies_the_megapixel_limit_from_its_settings(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    png(folder / "a_small.png", 100, 100)
    png(folder / "b_big.png", 1000, 1001)
    out = str(tmp_path / "out")
    with pytest.raises(ImageError) as e:
        run_infer(monkeypatch, infer_cfg(str(folder), out, max_mp=1.0))
    assert "1 of 2 inputs could not be read" in str(e.value)
    assert os.listdir(out) == ["a_small_mask.png"]
    seg = run_infer(monkeypatch, infer_cfg(str(folder), str(tmp_path / "out2"), max_mp=1.01))
    assert seg.seen == [(100, 100, 3), (1001, 1000, 3)]


@pytest.mark.parametrize("n,expected", [(None, 3), (1, 1), (2, 2), (3, 3), (5, 3)])
def test_infer_n_limits_a_folder_to_exactly_n_images(tmp_path, monkeypatch, n, expected):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        png(folder / name, 8, 8)
    out = str(tmp_path / "out")
    seg = run_infer(monkeypatch, infer_cfg(str(folder), out, n=n))
    assert len(seg.seen) == expected
    assert sorted(os.listdir(out)) == ["%s_mask.png" % s for s in "abc"[:expected]]


@pytest.mark.parametrize("n,expected", [(None, 6), (1, 1), (4, 4), (9, 6)])
def test_infer_n_limits_a_video_to_exactly_n_frames(tmp_path, monkeypatch, n, expected):
    import cv2

    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    for i in range(6):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    out = str(tmp_path / "out")
    seg = run_infer(monkeypatch, infer_cfg(video, out, n=n))
    assert len(seg.seen) == expected
    assert len(os.listdir(os.path.join(out, "clip_masks"))) == expected


def test_bench_times_exactly_n_iterations_after_the_warmup():
    from stages.device.bench import timed

    calls = []
    times = timed(lambda: calls.append(1), 7, 3)
    assert len(calls) == 10 and len(times) == 7 and all(t >= 0 for t in times)
    assert len(timed(lambda: None, 1, 0)) == 1


def test_bench_pipeline_keeps_n_samples_per_stage(tmp_path):
    from stages.device.bench import pipeline_bench

    image = png(tmp_path / "i.png", 16, 16)
    seg = FakeSeg()
    out = pipeline_bench(seg, image, 4, 2)
    assert len(seg.seen) == 6
    assert out["infer"]["n"] == out["read"]["n"] == out["total"]["n"] == 4
    assert out["infer"]["p50"] == 1.0 and out["fps"] == pytest.approx(1000.0 / out["total"]["p50"])


# ---- the pipeline file --------------------------------------------------------------------


def load_in(tmp_path, monkeypatch, text):
    from stages.common import config

    monkeypatch.setattr(config, "ROOT", str(tmp_path))
    (tmp_path / "examples").mkdir(exist_ok=True)
    png(tmp_path / "examples" / "street_1920x1080.jpg", 4, 4)
    (tmp_path / "pipeline.yaml").write_text(text)
    return config.load(str(tmp_path / "pipeline.yaml"))


@pytest.mark.parametrize("value", [".", "./", "..", "../elsewhere", "/tmp/abs", "sub/../.."])
def test_artifacts_must_be_a_folder_inside_the_project(tmp_path, monkeypatch, value):
    with pytest.raises(ConfigError) as e:
        load_in(tmp_path, monkeypatch, "artifacts: %s\n" % value)
    assert "Key 'artifacts'" in str(e.value) and "inside the project" in str(e.value)


@pytest.mark.parametrize(
    "value,stored",
    [("artifacts", "artifacts"), ("out/a", os.path.join("out", "a")), ("./x/../y", "y")],
)
def test_artifacts_inside_the_project_are_stored_relative(tmp_path, monkeypatch, value, stored):
    assert load_in(tmp_path, monkeypatch, "artifacts: %s\n" % value)["artifacts"] == stored


# ---- the checkout's weights (through validate, the checkout's public check) -------------


@pytest.fixture
def model(tmp_path):
    import shutil
    from conftest import ROOT

    dest = str(tmp_path / "model")
    shutil.copytree(os.path.join(ROOT, "models", "segformer-tiny-sidewalk"), dest)
    return dest


def test_the_intact_checkout_validates(model):
    from stages.host.checkout import validate

    manifest = validate(model, False)
    assert manifest["weights"] == {"format": "safetensors", "files": ["model.safetensors"]}


@pytest.mark.parametrize(
    "cut", [1, -1, 4096], ids=["one-byte-more", "one-byte-less", "trailing-4k"]
)
def test_safetensors_of_any_other_size_is_refused(model, cut):
    from stages.host.checkout import validate

    path = os.path.join(model, "model.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data + b"\0" * cut if cut > 0 else data[:cut])
    with pytest.raises(CheckoutError) as e:
        validate(model, False)
    assert "model.safetensors" in str(e.value)


@pytest.mark.parametrize(
    "damage", [b"", b"\x05\0\0\0\0\0\0\0{}", b"\x02\0\0\0\0\0\0\0[]", b"\xff" * 8 + b"{}"]
)
def test_safetensors_with_a_broken_header_is_refused(model, damage):
    from stages.host.checkout import validate

    open(os.path.join(model, "model.safetensors"), "wb").write(damage)
    with pytest.raises(CheckoutError) as e:
        validate(model, False)
    assert "model.safetensors" in str(e.value)


LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.safetensors"])
def test_a_git_lfs_pointer_for_the_weights_is_refused(model, name):
    from stages.host.checkout import validate

    os.remove(os.path.join(model, "model.safetensors"))
    open(os.path.join(model, name), "wb").write(LFS)
    with pytest.raises(CheckoutError) as e:
        validate(model, allow_pickle=True)
    assert "Git LFS pointer" in str(e.value) and "git lfs pull" in str(e.value)
