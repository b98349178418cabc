"""Every checkout validation error, on copies of the embedded default model."""
import json
import os
import shutil

import pytest

from conftest import ROOT
from stages.host import checkout
from stages.common.errors import CheckoutError

MODEL = os.path.join(ROOT, "models", "segformer-tiny-sidewalk")


@pytest.fixture
def model(tmp_path):
    dest = str(tmp_path / "model")
    shutil.copytree(MODEL, dest)
    return dest


def rewrite_json(path, **changes):
    with open(path) as f:
        data = json.load(f)
    data.update(changes)
    with open(path, "w") as f:
        json.dump(data, f)


def expect(model, needle, allow_pickle=False):
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, allow_pickle)
    msg = str(e.value)
    assert needle in msg, msg
    assert msg.endswith(".") and "\n" not in msg
    return msg


def test_default_model_validates_with_the_sidewalk_labels(model):
    m = checkout.validate(model, False)
    assert (m["num_labels"] == 35 and m["labels"][1] == "flat-road"
            and m["labels"][34] == "void-unclear")
    assert m["input"] == {"height": 256, "width": 256} and m["resample"] == "bilinear"
    assert m["mean"] == [0.485, 0.456, 0.406] and m["weights"]["format"] == "safetensors"


def test_lfs_pointer_weights(model):
    with open(os.path.join(model, "model.safetensors"), "w") as f:
        f.write("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 256000000\n")
    msg = expect(model, "weights are a Git LFS pointer")
    assert "run `git lfs pull` in %s" % model in msg


def test_truncated_safetensors(model):
    path = os.path.join(model, "model.safetensors")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    expect(model, "is truncated or corrupt")


def test_not_a_segformer(model):
    rewrite_json(os.path.join(model, "config.json"), model_type="bert", architectures=["BertModel"])
    expect(model, "describes a 'bert' model, not a SegFormer")


def test_segformer_but_not_semantic_segmentation(model):
    rewrite_json(os.path.join(model, "config.json"),
                 architectures=["SegformerForImageClassification"])
    expect(model, "not for semantic segmentation")


def test_missing_preprocessor_config(model):
    os.remove(os.path.join(model, "preprocessor_config.json"))
    expect(model, "preprocessor_config.json is missing")


def test_preprocessor_resample_other_than_bilinear(model):
    rewrite_json(os.path.join(model, "preprocessor_config.json"), resample=3)
    expect(model, "resample=3")


def test_invalid_config_json(model):
    with open(os.path.join(model, "config.json"), "w") as f:
        f.write("{not json")
    expect(model, "is not valid JSON")


def as_pickle(model):
    """Replace model.safetensors by the same weights as pytorch_model.bin (a plain state dict)."""
    import torch
    from safetensors.torch import load_file
    path = os.path.join(model, "model.safetensors")
    torch.save(load_file(path), os.path.join(model, "pytorch_model.bin"))
    os.remove(path)


def test_pickle_weights_need_the_opt_in(model):
    as_pickle(model)
    expect(model, "set model.allow_pickle: true")
    assert checkout.validate(model, True)["weights"]["format"] == "pytorch_pickle"


def test_a_pickle_that_runs_code_is_refused_even_with_the_opt_in(model, tmp_path):
    import pickle
    marker = str(tmp_path / "ran")

    class Evil(object):
        def __reduce__(self):
            return (open, (marker, "w"))
    os.remove(os.path.join(model, "model.safetensors"))
    with open(os.path.join(model, "pytorch_model.bin"), "wb") as f:
        pickle.dump({"decode_head.x": Evil()}, f)
    expect(model, "torch's safe loader refused it", allow_pickle=True)
    assert not os.path.exists(marker)


def test_every_load_of_the_checkout_enforces_allow_pickle(model):
    """The manifest says pickle, the setting says no: the one loader refuses (bench's side door)."""
    as_pickle(model)
    manifest = checkout.validate(model, True)
    with pytest.raises(CheckoutError) as e:
        checkout.load_model(model, manifest, False)
    assert "model.allow_pickle is false" in str(e.value)
    assert checkout.load_model(model, manifest, True).config.num_labels == 35


def _files_with(text):
    hits = []
    for top in ("stages", "runtime", "tools"):
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            for n in names:
                if n.endswith(".py"):
                    with open(os.path.join(folder, n)) as f:
                        if text in f.read():
                            hits.append(os.path.relpath(os.path.join(folder, n), ROOT))
    return sorted(h for h in hits if not h.startswith("tools"))


def test_from_pretrained_is_called_only_by_the_checkout_loader():
    # the family modules call from_pretrained, and only the checkout gate calls their loader
    hits = _files_with("from_pretrained(")
    assert hits and all(h.startswith("stages/host/families/") for h in hits), hits
    assert _files_with(".load(model_dir") == ["stages/host/checkout.py"]


def test_missing_weights(model):
    os.remove(os.path.join(model, "model.safetensors"))
    expect(model, "has no model.safetensors")


def test_missing_dir_without_repo_id(tmp_path):
    cfg = {"path": str(tmp_path / "absent"), "repo_id": None, "revision": None,
           "allow_pickle": False}
    with pytest.raises(CheckoutError) as e:
        checkout.write_manifest(cfg, str(tmp_path / "manifest.json"))
    assert "does not exist" in str(e.value) and "model.repo_id" in str(e.value)


def test_missing_dir_with_repo_id_fails_offline_with_a_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = {"path": str(tmp_path / "absent"),
           "repo_id": "nickmuchi/segformer-b4-finetuned-segments-sidewalk",
           "revision": None, "allow_pickle": False}
    with pytest.raises(CheckoutError) as e:
        checkout.write_manifest(cfg, str(tmp_path / "manifest.json"))
    assert "Could not download nickmuchi/segformer-b4-finetuned-segments-sidewalk" in str(e.value)


def test_manifest_has_no_absolute_paths_so_reclones_compare_equal(model, tmp_path):
    other = str(tmp_path / "other")
    shutil.copytree(model, other)
    assert checkout.validate(model, False) == checkout.validate(other, False)
