"""The engine folder refuses an engine whose sidecar names another device in any one identity
field; the device fingerprint, its identity and its folder slug are what they say."""

import json
import os

import pytest

from runtime import device
from runtime.engine_folder import IDENTITY_KEYS, EngineFolder
from runtime.errors import ArtifactError, EngineError
from runtime.sidecar import FORMAT

HERE = {
    "gpu": "NVIDIA Tegra X1",
    "compute_capability": "5.3",
    "cuda": "10.2",
    "tensorrt": "8.2.1.8",
    "l4t": "32.7.1",
}
OTHER = {
    "gpu": "Orin",
    "compute_capability": "8.7",
    "cuda": "11.4",
    "tensorrt": "8.5.2.2",
    "l4t": "35.4.1",
}
LABEL = {
    "gpu": "GPU",
    "compute_capability": "compute capability",
    "cuda": "CUDA",
    "tensorrt": "TensorRT",
    "l4t": "L4T",
}


def built_folder(tmp_path, device_record, plan=b"engine bytes"):
    folder = EngineFolder(str(tmp_path / "engine"))
    meta = {
        "format": FORMAT,
        "labels": ["a"],
        "palette": [[0, 0, 0]],
        "input": {},
        "output": {},
        "preprocess": {},
        "onnx_sha256": "x",
    }
    folder.write(
        plan, meta, {"precision": "fp16"}, dict(device_record), {}, 2.0, device_record["tensorrt"]
    )
    return folder


def test_identity_fields_are_the_five_an_engine_depends_on():
    assert IDENTITY_KEYS == ("gpu", "compute_capability", "cuda", "tensorrt", "l4t")
    assert device.identity(dict(HERE, memory_mb=4096)) == HERE


def test_the_same_device_is_accepted_even_with_other_memory(tmp_path):
    folder = built_folder(tmp_path, HERE)
    folder.check_compatible(dict(HERE, memory_mb=1))
    assert folder.device() == HERE and folder.precision() == "fp16"


@pytest.mark.parametrize(
    "key", IDENTITY_KEYS, ids=["other-" + k for k in IDENTITY_KEYS]
)  # not the gpu mark
def test_a_sidecar_differing_in_one_identity_field_is_refused(tmp_path, key):
    folder = built_folder(tmp_path, HERE)
    current = dict(HERE, **{key: OTHER[key]})
    with pytest.raises(EngineError) as e:
        folder.check_compatible(current)
    message = str(e.value)
    assert (
        "another %s (%s %s) than this device's (%s %s)"
        % (LABEL[key], LABEL[key], HERE[key], LABEL[key], OTHER[key])
        in message
    )
    assert folder.engine in message and "doit build_engine" in message
    others = [LABEL[k] + " " for k in IDENTITY_KEYS if k != key and LABEL[k] not in LABEL[key]]
    assert not any(o in message for o in others)


def test_the_given_sidecar_record_is_the_one_checked(tmp_path):
    folder = built_folder(tmp_path, HERE)
    other = json.load(open(folder.sidecar))
    other["engine"]["device"] = dict(OTHER)
    with pytest.raises(EngineError):
        folder.check_compatible(HERE, meta=other)  # the record passed in, not the file on disk
    folder.check_compatible(OTHER, meta=other)
    assert repr(folder) == "EngineFolder(%r)" % folder.path


def test_every_differing_field_is_named(tmp_path):
    folder = built_folder(tmp_path, HERE)
    with pytest.raises(EngineError) as e:
        folder.check_compatible(dict(HERE, cuda="12.2", l4t=None))
    assert (
        "another CUDA, L4T (CUDA 10.2, L4T 32.7.1) than this device's (CUDA 12.2, L4T None)"
        in str(e.value)
    )


def test_an_engine_record_without_sha_device_or_settings_is_refused(tmp_path):
    folder = built_folder(tmp_path, HERE)
    for key in ("sha256", "device", "settings"):
        meta = json.load(open(folder.sidecar))
        meta["engine"].pop(key)
        open(folder.sidecar, "w").write(json.dumps(meta))
        with pytest.raises(EngineError) as e:
            folder.read()
        assert "has no engine record" in str(e.value)
        assert folder.recorded_sha256() is None
        folder = built_folder(tmp_path, HERE)
    assert len(folder.recorded_sha256()) == 64


def test_an_engine_that_is_not_the_recorded_one_is_refused(tmp_path):
    folder = built_folder(tmp_path, HERE)
    assert folder.read_plan() == b"engine bytes"
    with open(folder.engine, "wb") as f:
        f.write(b"engine bytez")
    with pytest.raises(ArtifactError) as e:
        folder.read_plan()
    assert "does not match the sha256" in str(e.value)


def test_a_folder_exists_only_with_both_engine_and_sidecar(tmp_path):
    import os

    folder = built_folder(tmp_path, HERE)
    assert folder.exists()
    os.remove(folder.sidecar)
    assert not folder.exists()
    folder = built_folder(tmp_path, HERE)
    os.remove(folder.engine)
    assert not folder.exists()


def test_the_next_estimate_reads_the_build_time_from_the_sidecar(tmp_path):
    folder = EngineFolder(str(tmp_path / "e"))
    assert folder.previous_build_seconds() is None
    folder = built_folder(tmp_path, HERE)  # a build that took 2.0 s
    assert folder.previous_build_seconds() == 2.0
    folder.write_log(["[TRT] one", "two"], seconds=123.45)  # build.log is for people
    assert folder.previous_build_seconds() == 2.0
    assert open(folder.build_log).read() == "[TRT] one\ntwo\nbuild_engine: built in 123.5 s\n"
    folder.write_log(["x"], failed_after=3.0)
    assert open(folder.build_log).read() == "x\nbuild_engine: failed after 3.0 s\n"
    with open(folder.sidecar, "w") as f:
        f.write("{not json")
    assert folder.previous_build_seconds() is None
    os.remove(folder.engine)
    assert folder.previous_build_seconds() is None


def test_timing_cache_is_read_back_when_written(tmp_path):
    folder = built_folder(tmp_path, HERE)
    assert folder.read_timing_cache() is None
    folder = EngineFolder(folder.path)
    meta = json.load(open(folder.sidecar))
    folder.write(b"p", meta, {"precision": "fp32"}, HERE, {}, 1.0, "8.2", cache=b"cache")
    assert folder.read_timing_cache() == b"cache"
    assert "precision_groups" not in json.load(open(folder.sidecar))


def test_slug_names_every_identity_field_and_the_l4t_only_on_jetson():
    assert (
        device.slug(dict(HERE, memory_mb=1)) == "nvidia-tegra-x1_sm53_cuda10.2_trt8.2.1.8_l4t32.7.1"
    )
    none = dict((k, None) for k in HERE)
    assert device.slug(none) == "nogpu_sm0_cudanone_trtnone"


def test_l4t_release_reads_etc_nv_tegra_release_by_default(monkeypatch):
    import io

    opened = []
    monkeypatch.setattr(
        device,
        "open",
        lambda path, *a: opened.append(path)
        or io.StringIO("# R35 (release), REVISION: 4.1, GCID: 1\n"),
        raising=False,
    )
    assert device.l4t_release() == "35.4.1" and opened == ["/etc/nv_tegra_release"]


def test_l4t_release_is_read_from_nv_tegra_release(tmp_path):
    p = tmp_path / "nv_tegra_release"
    p.write_text("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64\n")
    assert device.l4t_release(str(p)) == "32.7.1"
    p.write_text("something else\n")
    assert device.l4t_release(str(p)) is None
    assert device.l4t_release(str(tmp_path / "absent")) is None


def test_fingerprint_combines_the_probes_and_is_cached(monkeypatch):
    calls = []
    monkeypatch.setattr(device, "_CACHE", {})
    monkeypatch.setattr(
        device,
        "probe_gpu",
        lambda: calls.append(1)
        or {"name": "GPU X", "compute_capability": "8.7", "cuda": "12.2", "memory_mb": 100},
    )
    monkeypatch.setattr(device, "probe_tensorrt", lambda: "10.3.0")
    monkeypatch.setattr(device, "l4t_release", lambda: None)
    fp = device.fingerprint()
    assert fp == {
        "gpu": "GPU X",
        "compute_capability": "8.7",
        "cuda": "12.2",
        "tensorrt": "10.3.0",
        "l4t": None,
        "memory_mb": 100,
    }
    assert device.fingerprint() is fp and calls == [1]
    assert device.identity() == device.identity(fp)
    monkeypatch.setattr(device, "_CACHE", {})
    monkeypatch.setattr(device, "probe_gpu", lambda: None)
    assert device.fingerprint()["gpu"] is None and device.slug().startswith(
        "nogpu_sm0_cudanone_trt10.3.0"
    )
