"""The checkout's validation, table-driven on copies of the embedded model: each row changes one
field of config.json or preprocessor_config.json, or writes one crafted weights file, and the
checkout must refuse it naming the problem (or accept it, at the edges of what is allowed)."""

import json
import os
import shutil
import struct
import sys
import types

import pytest

from conftest import ROOT
from stages.common.errors import CheckoutError
from stages.host import checkout

MODEL = os.path.join(ROOT, "models", "segformer-tiny-sidewalk")
N = len(json.load(open(os.path.join(MODEL, "config.json")))["id2label"])


@pytest.fixture
def model(tmp_path):
    dest = str(tmp_path / "model")
    shutil.copytree(MODEL, dest)
    return dest


def edit(name, **changes):
    def change(model):
        path = os.path.join(model, name)
        data = json.load(open(path))
        for k, v in changes.items():
            if v is DELETE:
                data.pop(k, None)
            else:
                data[k] = v
        open(path, "w").write(json.dumps(data))

    return change


DELETE = object()


def labels(ids, names=None):
    return dict(
        (str(i) if not isinstance(i, str) else i, (names or {}).get(i, "c%s" % i)) for i in ids
    )


def config(**c):
    return edit("config.json", **c)


def pre(**c):
    return edit("preprocessor_config.json", **c)


REFUSED = [
    ("model type", config(model_type="bert"), "describes a 'bert' model, not a SegFormer"),
    ("no model type", config(model_type=DELETE), "describes a None model"),
    (
        "classification head",
        config(architectures=["SegformerForImageClassification"]),
        "not for semantic segmentation",
    ),
    (
        "architectures as a string",
        config(architectures="SegformerForSemanticSegmentation"),
        "not for semantic segmentation",
    ),
    ("no id2label", config(id2label=DELETE), "has no id2label"),
    ("empty id2label", config(id2label={}), "has no id2label"),
    ("id2label as a list", config(id2label=["a", "b"]), "has no id2label"),
    (
        "label key with a zero",
        config(id2label=dict(labels(range(N)), **{"01": "x"})),
        "key '01', not a class",
    ),
    (
        "label key a word",
        config(id2label=dict(labels(range(N)), road="x")),
        "key 'road', not a class",
    ),
    (
        "label gap",
        config(id2label=labels([i for i in range(N + 1) if i != 3])),
        "has id2label keys 0..%d with gaps: every class index from 0 to %d needs a name." % (N, N),
    ),
    (
        "labels from 1",
        config(id2label=labels(range(1, N + 1))),
        "has id2label keys 1..%d with gaps: every class index from 0 to %d needs a name." % (N, N),
    ),
    ("empty label name", config(id2label=labels(range(N), {2: ""})), "name that is not a string"),
    ("numeric label name", config(id2label=labels(range(N), {2: 5})), "name that is not a string"),
    (
        "num_labels disagrees",
        config(num_labels=N + 1),
        "says num_labels %d but id2label names %d" % (N + 1, N),
    ),
    ("257 labels", config(id2label=labels(range(257)), num_labels=257), "at most 256"),
    (
        "config is a list",
        lambda m: open(os.path.join(m, "config.json"), "w").write("[1]"),
        "a JSON list",
    ),
    (
        "config is not JSON",
        lambda m: open(os.path.join(m, "config.json"), "w").write("{"),
        "is not valid JSON",
    ),
    (
        "config is an LFS pointer",
        lambda m: open(os.path.join(m, "config.json"), "w").write(
            "version https://git-lfs.github.com/spec/v1\noid x\n"
        ),
        "config.json is a Git LFS pointer",
    ),
    ("no config", lambda m: os.remove(os.path.join(m, "config.json")), "config.json is missing"),
    ("size as a bool", pre(size=True), "must give size as height and width"),
    (
        "size by shortest edge",
        pre(size={"shortest_edge": 512}),
        "must give size as height and width",
    ),
    ("size without width", pre(size={"height": 512}), "must give size as height and width"),
    ("height 31", pre(size={"height": 31, "width": 512}), "gives size height 31"),
    ("width 4097", pre(size={"height": 512, "width": 4097}), "gives size width 4097"),
    ("height as a float", pre(size={"height": 512.0, "width": 512}), "gives size height 512.0"),
    ("width as a bool", pre(size={"height": 512, "width": True}), "gives size width True"),
    ("two means", pre(image_mean=[0.5, 0.5]), "image_mean as 3 numbers"),
    ("a word in std", pre(image_std=[0.2, "x", 0.2]), "image_std as 3 numbers"),
    ("a bool in mean", pre(image_mean=[0.5, True, 0.5]), "image_mean as 3 numbers"),
    ("NaN in std", pre(image_std=[0.2, float("nan"), 0.2]), "image_std as 3 numbers"),
    ("no mean", pre(image_mean=DELETE), "image_mean as 3 numbers"),
    ("zero std", pre(image_std=[0.2, 0.0, 0.2]), "image_std of 0 or less"),
    ("negative std", pre(image_std=[0.2, 0.2, -0.1]), "image_std of 0 or less"),
    ("bicubic", pre(resample=3), "resample=3"),
    ("resample as a bool", pre(resample=True), "resample=True"),
    ("no resize", pre(do_resize=False), "turns off resize or normalize"),
    ("no normalize", pre(do_normalize=False), "turns off resize or normalize"),
    ("zero rescale", pre(rescale_factor=0), "rescale_factor 0"),
    ("rescale as a word", pre(rescale_factor="1/255"), "rescale_factor '1/255'"),
    (
        "no preprocessor",
        lambda m: os.remove(os.path.join(m, "preprocessor_config.json")),
        "preprocessor_config.json is missing",
    ),
]


@pytest.mark.parametrize("what,change,needle", REFUSED, ids=[r[0] for r in REFUSED])
def test_one_bad_field_is_refused_with_a_sentence_naming_it(model, what, change, needle):
    change(model)
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, False)
    message = str(e.value)
    assert needle in message and model in message and message.endswith("."), message


ACCEPTED = [
    ("as cloned", lambda m: None, {}),
    ("no architectures", config(architectures=DELETE), {}),
    ("empty architectures", config(architectures=[]), {}),
    ("no num_labels", config(num_labels=DELETE), {}),
    ("size as one number", pre(size=64), {"input": {"height": 64, "width": 64}}),
    (
        "smallest size",
        pre(size={"height": 32, "width": 4096}),
        {"input": {"height": 32, "width": 4096}},
    ),
    ("no rescale", pre(do_rescale=False, rescale_factor=0), {"rescale_factor": 1.0}),
    ("default rescale", pre(rescale_factor=DELETE), {"rescale_factor": 1.0 / 255}),
    (
        "integer mean",
        pre(image_mean=[1, 0, 0], image_std=[1, 1, 2]),
        {"mean": [1.0, 0.0, 0.0], "std": [1.0, 1.0, 2.0]},
    ),
    ("default resample", pre(resample=DELETE), {"resample": "bilinear"}),
    (
        "default switches",
        pre(do_resize=DELETE, do_normalize=DELETE, do_rescale=DELETE, rescale_factor=0.5),
        {"rescale_factor": 0.5},
    ),
]


@pytest.mark.parametrize("what,change,expected", ACCEPTED, ids=[r[0] for r in ACCEPTED])
def test_allowed_variations_are_accepted_as_they_are(model, what, change, expected):
    change(model)
    manifest = checkout.validate(model, False)
    for key, value in expected.items():
        assert manifest[key] == value, key
        assert type(manifest[key]) is type(value)
    assert manifest["num_labels"] == N == len(manifest["labels"])
    assert manifest["weights"] == {"format": "safetensors", "files": ["model.safetensors"]}
    assert sorted(manifest["sha256"]) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]


def test_labels_come_in_class_order_and_256_are_allowed(model):
    names = dict((i, "n%03d" % (255 - i)) for i in range(256))
    config(id2label=labels(reversed(range(256)), names), num_labels=256)(model)
    assert checkout.validate_config(model) == ["n%03d" % (255 - i) for i in range(256)]


def test_the_manifest_hashes_the_files_it_names(model):
    from stages.common import files

    manifest = checkout.validate(model, False)
    for name, sha in manifest["sha256"].items():
        assert sha == files.sha256_file(os.path.join(model, name))
    assert manifest["labels"][:2] == [
        json.load(open(os.path.join(model, "config.json")))["id2label"][k] for k in ("0", "1")
    ]


# ---- crafted weights files ----------------------------------------------------------------


def safetensors(model, tensors, tail=b"", name="model.safetensors", header_len=None):
    """tensors: (name, dtype, shape, begin, end); data bytes = the largest end, plus tail."""
    header = json.dumps(
        dict((n, {"dtype": d, "shape": s, "data_offsets": [b, e]}) for n, d, s, b, e in tensors)
    )
    data = b"\0" * max([e for _, _, _, _, e in tensors] or [0])
    raw = (
        struct.pack("<Q", len(header) if header_len is None else header_len)
        + header.encode()
        + data
        + tail
    )
    for old in os.listdir(model):
        if old.endswith(".safetensors"):
            os.remove(os.path.join(model, old))
    open(os.path.join(model, name), "wb").write(raw)


ENC = ("segformer.x", "F32", [2], 0, 8)
HEAD = ("decode_head.classifier.weight", "F16", [N, 2], 8, 8 + 4 * N)

WEIGHTS = [
    (
        "a gap between tensors",
        [ENC, ("decode_head.classifier.weight", "F16", [N, 2], 12, 12 + 4 * N)],
        b"",
        "overlap or leave gaps",
    ),
    (
        "overlapping tensors",
        [ENC, ("decode_head.classifier.weight", "F16", [N, 2], 4, 4 + 4 * N)],
        b"",
        "overlap or leave gaps",
    ),
    (
        "data not at offset 0",
        [("segformer.x", "F32", [2], 4, 12), ("decode_head.b", "U8", [4], 12, 16)],
        b"",
        "overlap or leave gaps",
    ),
    (
        "a span that is not its shape",
        [("segformer.x", "F32", [3], 0, 8), HEAD],
        b"",
        "not a valid safetensors",
    ),
    ("a negative begin", [("segformer.x", "U8", [2], -2, 0), HEAD], b"", "not a valid safetensors"),
    ("an unknown dtype", [("segformer.x", "F24", [2], 0, 6), HEAD], b"", "not a valid safetensors"),
    ("no shape", [("segformer.x", "F32", None, 0, 8), HEAD], b"", "not a valid safetensors"),
    ("one byte of trailing garbage", [ENC, HEAD], b"x", "1 bytes of trailing garbage"),
    ("no segmentation head", [ENC], b"", "no decode_head.* tensors"),
    (
        "no encoder",
        [("decode_head.classifier.weight", "F16", [N, 2], 0, 4 * N)],
        b"",
        "no segformer.* tensors",
    ),
    (
        "a head for one class less",
        [ENC, ("decode_head.classifier.weight", "F16", [N - 1, 2], 8, 8 + 4 * (N - 1))],
        b"",
        "head for %d classes but config.json's id2label names %d" % (N - 1, N),
    ),
]


@pytest.mark.parametrize("what,tensors,tail,needle", WEIGHTS, ids=[w[0] for w in WEIGHTS])
def test_crafted_safetensors_are_refused(model, what, tensors, tail, needle):
    safetensors(model, tensors, tail)
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, False)
    assert needle in str(e.value) and model in str(e.value), str(e.value)


def test_a_header_longer_than_the_file_is_not_read_as_one(model):
    safetensors(model, [])
    path = os.path.join(model, "model.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(struct.pack("<Q", len(data) - 8 + 1) + data[8:])   # one byte too long
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, False)
    assert str(e.value) == (
        "%s is not a valid safetensors file: re-download it (git lfs pull in %s)." % (path, model)
    )


def test_a_header_that_fills_the_file_is_a_file_without_tensors(model):
    safetensors(model, [])
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, False)
    assert "no decode_head.* tensors" in str(e.value)


def test_a_truncated_safetensors_names_both_sizes(model):
    safetensors(model, [ENC, HEAD])
    path = os.path.join(model, "model.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-3])
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, False)
    assert "expected %d bytes, found %d" % (len(data), len(data) - 3) in str(e.value)


@pytest.mark.parametrize("header_len", [0, 10**9, 7])
def test_a_header_length_past_the_file_or_inside_the_json_is_refused(model, header_len):
    safetensors(model, [ENC, HEAD], header_len=header_len)
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, False)
    assert "not a valid safetensors" in str(e.value)


def test_crafted_weights_that_are_whole_pass_with_their_index(model):
    safetensors(
        model,
        [ENC, HEAD, ("decode_head.other", "BF16", [1], 8 + 4 * N, 10 + 4 * N)],
        name="model-00001.safetensors",
    )
    open(os.path.join(model, "model.safetensors.index.json"), "w").write("{}")
    fmt, names = checkout.weights_check.weight_files(model, False, N)
    assert (fmt, names) == (
        "safetensors",
        ["model-00001.safetensors", "model.safetensors.index.json"],
    )
    safetensors(
        model, [ENC, ("decode_head.weight", "F32", [1], 8, 12)]
    )  # no classifier: nothing to size
    assert checkout.weights_check.weight_files(model, False, N)[0] == "safetensors"


def pickle_model(model, state=None, payload=None):
    os.remove(os.path.join(model, "model.safetensors"))
    path = os.path.join(model, "pytorch_model.bin")
    if payload is not None:
        open(path, "wb").write(payload)
        return
    import torch

    torch.save(state, path)


def test_pickles_need_the_opt_in_and_pass_with_it(model):
    pytest.importorskip("torch")
    import torch

    pickle_model(
        model, {"segformer.x": torch.zeros(2), "decode_head.classifier.weight": torch.zeros(N, 2)}
    )
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, False)
    assert "has only pytorch_model.bin, a pickle" in str(
        e.value
    ) and "model.allow_pickle: true" in str(e.value)
    assert checkout.validate(model, True)["weights"] == {
        "format": "pytorch_pickle",
        "files": ["pytorch_model.bin"],
    }


def test_a_pickle_with_the_wrong_head_is_refused_even_with_the_opt_in(model):
    pytest.importorskip("torch")
    import torch

    pickle_model(
        model,
        {"segformer.x": torch.zeros(2), "decode_head.classifier.weight": torch.zeros(N + 1, 2)},
    )
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, True)
    assert "The weights in %s have a head for %d classes" % (model, N + 1) in str(e.value)


def test_a_lfs_pointer_pickle_is_named_before_the_pickle_policy(model):
    pickle_model(model, payload=b"version https://git-lfs.github.com/spec/v1\noid sha256:1\n")
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, False)
    assert str(e.value) == "weights are a Git LFS pointer: run `git lfs pull` in %s." % model


def test_a_pickle_that_runs_code_names_the_loader_error(model):
    pytest.importorskip("torch")
    import pickle

    class Evil(object):
        def __reduce__(self):
            return (os.getcwd, ())

    pickle_model(model, payload=pickle.dumps(Evil()))
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, True)
    assert "pytorch_model.bin cannot be read as plain weights (UnpicklingError)" in str(e.value)


def test_no_weights_at_all(model):
    os.remove(os.path.join(model, "model.safetensors"))
    open(os.path.join(model, "weights.bin"), "wb").write(b"x")  # not pytorch_model*.bin
    with pytest.raises(CheckoutError) as e:
        checkout.validate(model, True)
    assert "has no model.safetensors" in str(e.value)


# ---- model.path and the download ----------------------------------------------------------


def cfg(path, repo_id=None, allow_pickle=False):
    return {"path": path, "repo_id": repo_id, "revision": "main", "allow_pickle": allow_pickle}


def test_run_checkout_writes_the_manifest_and_says_what_it_found(model, tmp_path, capsys):
    out = str(tmp_path / "a" / "manifest.json")
    checkout.write_manifest(cfg(model), out)
    assert json.load(open(out)) == checkout.validate(model, False)
    size = json.load(open(os.path.join(model, "preprocessor_config.json")))["size"]
    assert (
        capsys.readouterr().out
        == "checkout: %s, %d labels, input %dx%d, weights safetensors\n"
        % (model, N, size["height"], size["width"])
    )


def test_run_checkout_passes_the_pickle_opt_in_on(model, tmp_path):
    pytest.importorskip("torch")
    import torch

    pickle_model(
        model, {"segformer.x": torch.zeros(2), "decode_head.classifier.weight": torch.zeros(N, 2)}
    )
    out = str(tmp_path / "manifest.json")
    checkout.write_manifest(cfg(model, allow_pickle=True), out)
    assert json.load(open(out))["weights"]["format"] == "pytorch_pickle"


@pytest.mark.parametrize(
    "kind,needle",
    [
        ("missing", "does not exist: clone the model there"),
        ("file", "is a file, not a folder"),
        ("dangling", "which does not exist: fix the link"),
        ("loop", "is a symlink loop"),
    ],
)
def test_a_model_path_that_is_no_folder_is_named(tmp_path, kind, needle):
    path = str(tmp_path / "m")
    if kind == "file":
        open(path, "w").write("x")
    elif kind == "dangling":
        os.symlink(str(tmp_path / "gone"), path)
    elif kind == "loop":
        os.symlink(path, path)
    with pytest.raises(CheckoutError) as e:
        checkout.write_manifest(cfg(path), str(tmp_path / "manifest.json"))
    assert needle in str(e.value) and not os.path.exists(str(tmp_path / "manifest.json"))


@pytest.mark.parametrize("allow_pickle", [False, True])
def test_a_missing_folder_with_a_repo_id_is_downloaded_with_the_right_patterns(
    tmp_path, monkeypatch, allow_pickle
):
    calls = []

    def snapshot_download(**kw):
        calls.append(kw)
        shutil.copytree(MODEL, kw["local_dir"])

    monkeypatch.setitem(
        sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download)
    )
    path, out = str(tmp_path / "m"), str(tmp_path / "manifest.json")
    checkout.write_manifest(cfg(path, "org/model", allow_pickle), out)
    assert calls == [
        {
            "repo_id": "org/model",
            "revision": "main",
            "local_dir": path,
            "allow_patterns": [
                "config.json",
                "preprocessor_config.json",
                "*.safetensors",
                "*.safetensors.index.json",
            ]
            + (["pytorch_model*.bin"] if allow_pickle else []),
        }
    ]
    assert os.path.isfile(out)


def test_a_failed_download_is_one_sentence(tmp_path, monkeypatch):
    def snapshot_download(**kw):
        raise ConnectionError("offline")

    monkeypatch.setitem(
        sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download)
    )
    with pytest.raises(CheckoutError) as e:
        checkout.write_manifest(
            cfg(str(tmp_path / "m"), "org/model"), str(tmp_path / "manifest.json")
        )
    assert "Could not download org/model" in str(e.value) and "(ConnectionError)" in str(e.value)


def test_model_files_are_the_ones_the_checkout_reads(model):
    for name in ("README.md", "model.safetensors.index.json", "pytorch_model.bin", "x.bin.txt"):
        open(os.path.join(model, name), "w").write("x")
    names = [
        "config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "preprocessor_config.json",
        "pytorch_model.bin",
    ]
    assert checkout.model_files(model) == [os.path.join(model, n) for n in names]
    assert checkout.model_files(model + "-absent") == []
