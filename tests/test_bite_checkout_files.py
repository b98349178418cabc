"""The checkout's files beyond safetensors headers (issue 25, round 2): pickled weights (NaN and
infinity, a checkpoint saved on a GPU, torch's unsafe-load switch in the environment), files
that are not regular (a FIFO would block the reader), the recheck of the weights before any load,
the family of a checkout, and the link's entry point. Small hand-made folders; each refusal is
checked word for word."""

import json
import os
import pickle
import shutil

import pytest

from conftest import ROOT
from stages.common.errors import CheckoutError
from stages.common.layout import Layout
from stages.host import checkout
from stages.host import checkout_weights as weights

MODEL = os.path.join(ROOT, "models", "segformer-tiny-sidewalk")


@pytest.fixture
def torch():
    """Only the pickle tests need torch."""
    return pytest.importorskip("torch")


def state(torch, **extra):
    s = {"segformer.x": torch.zeros(2), "decode_head.classifier.weight": torch.zeros(3, 2)}
    s.update(extra)
    return s


def pickled(torch, folder, s):
    path = os.path.join(str(folder), "pytorch_model.bin")
    torch.save(s, path)
    return path


def refusal(call, *args):
    with pytest.raises(CheckoutError) as e:
        call(*args)
    return str(e.value)


BAD = [
    ("float32", float("nan"), "NaN"),
    ("float32", float("-inf"), "infinite"),
    ("float16", float("inf"), "infinite"),
    ("bfloat16", float("nan"), "NaN"),
    ("float64", float("inf"), "infinite"),
]


@pytest.mark.parametrize("dtype,value,kind", BAD, ids=[b[0] + "-" + b[2] for b in BAD])
def test_a_pickle_with_a_value_that_is_not_finite_is_refused_naming_the_tensor(
        torch, tmp_path, dtype, value, kind):
    bad = torch.ones(5, dtype=getattr(torch, dtype))
    bad[-1] = value
    path = pickled(torch, tmp_path,
                   state(torch, **{"decode_head.z": bad, "segformer.y": bad.clone()}))
    assert refusal(weights.weight_files, str(tmp_path), True, 3) == (
        "The weights are damaged: tensor decode_head.z in %s holds %s values; re-download the "
        "file." % (path, kind))


def test_a_pickle_of_finite_floats_and_integers_passes(torch, tmp_path):
    big = torch.tensor([2 ** 63 - 1, -2 ** 63], dtype=torch.int64)
    pickled(torch, tmp_path, state(torch, **{
        "segformer.n": big, "segformer.h": torch.tensor([65504.0]).half(),
        "segformer.mask": torch.ones(2, dtype=torch.bool)}))
    assert weights.weight_files(str(tmp_path), True, 3) == ("pytorch_pickle",
                                                            ["pytorch_model.bin"])


def test_a_pickle_saved_on_a_gpu_is_read_on_a_host_without_one(torch, tmp_path, monkeypatch):
    """Checkpoints trained on a GPU record cuda:0 as their tensors' place: read them on CPU."""
    from torch import serialization

    monkeypatch.setattr(serialization, "location_tag", lambda storage: "cuda:0")
    pickled(torch, tmp_path, state(torch))
    monkeypatch.undo()
    assert weights.weight_files(str(tmp_path), True, 3) == ("pytorch_pickle",
                                                            ["pytorch_model.bin"])


class Mkdir(object):
    """A pickle that makes a folder when it is loaded: code that runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_torchs_unsafe_load_switch_in_the_environment_does_not_unpickle_code(
        torch, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = str(tmp_path / "pwned")
    path = os.path.join(str(tmp_path), "pytorch_model.bin")
    with open(path, "wb") as f:
        f.write(pickle.dumps(Mkdir(marker)))
    assert refusal(weights.weight_files, str(tmp_path), True, 3).startswith(
        "%s cannot be read as plain weights (UnpicklingError): " % path)
    assert not os.path.exists(marker)


# ---- files that are not regular -----------------------------------------------------------


@pytest.fixture
def model(tmp_path):
    dest = str(tmp_path / "model")
    shutil.copytree(MODEL, dest)
    return dest


def fifo_at(model, name):
    path = os.path.join(model, name)
    os.remove(path)
    os.mkfifo(path)
    return path


def not_regular(path, model):
    return ("%s is not a regular file (a FIFO, a device or a folder): put the real file in %s."
            % (path, model))


@pytest.mark.parametrize("name", ["config.json", "preprocessor_config.json", "model.safetensors"])
def test_a_checkout_file_that_is_a_fifo_is_refused_before_it_is_opened(model, name):
    path = fifo_at(model, name)
    assert refusal(checkout.validate, model, False) == not_regular(path, model)


def test_the_family_of_another_kind_of_model_names_its_folder(model):
    with open(os.path.join(model, "config.json"), "w") as f:
        json.dump({"model_type": "bert"}, f)
    assert refusal(checkout.family, model).startswith(
        "config.json in %s describes a 'bert' model, not a " % model)


# ---- the recheck before a load, and the link's entry point ---------------------------------


def manifest_of(model):
    return checkout.validate(model, False)


@pytest.mark.parametrize("recorded", ["absent", [], "other"])
def test_weights_without_a_matching_record_are_refused_before_any_load(model, recorded):
    manifest = manifest_of(model)
    if recorded == "absent":
        del manifest["sha256"]
    elif recorded == "other":
        manifest["sha256"]["model.safetensors"] = "0" * 64
    else:
        manifest["sha256"] = recorded
    path = os.path.join(model, "model.safetensors")
    assert refusal(checkout.load_model, model, manifest, False) == (
        "%s changed since `doit checkout` validated it (its sha256 differs from the one in the "
        "checkout manifest): run `doit checkout` to validate it again." % path)


def test_the_recheck_refuses_a_weights_file_that_is_no_longer_regular(model):
    manifest = manifest_of(model)
    path = fifo_at(model, "model.safetensors")
    assert refusal(checkout._recheck, model, manifest) == not_regular(path, model)


def test_run_checkout_writes_the_manifest_where_the_layout_says(model, tmp_path):
    cfg = {"model": {"path": model, "repo_id": None, "revision": "main", "allow_pickle": False},
           "artifacts": str(tmp_path / "art"), "golden": {"images": []}}
    layout = Layout(cfg)
    checkout.run_checkout(cfg, layout)
    with open(layout.manifest) as f:
        assert json.load(f) == manifest_of(model)
