"""pipeline.yaml and command-line values through the schema, at the edges: limits accepted at
the limit and refused past it, booleans and numbers parsed one way, paths stored relative to the
project root, every refusal one sentence naming the key and where it came from."""

import os

import pytest

from stages.common import config
from stages.common.errors import ConfigError
from stages.common.schema import SCHEMA, VARIABLES, key_spec


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A project root in tmp (the default images exist there)."""
    monkeypatch.setattr(config, "ROOT", str(tmp_path))
    (tmp_path / "examples").mkdir()
    for name in ("street_1920x1080.jpg", "a.jpg"):
        (tmp_path / "examples" / name).write_bytes(b"jpg")
    return tmp_path


def load(root, text="", variables=None, name="pipeline.yaml"):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return config.load(name, variables)


def refused(root, text="", variables=None, name="pipeline.yaml"):
    with pytest.raises(ConfigError) as e:
        load(root, text, variables, name)
    message = str(e.value)
    assert message.endswith(".") and "\n" not in message
    return message


def test_the_pipeline_file_is_found_relative_to_the_project_root_not_the_cwd(
    root, tmp_path, monkeypatch
):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(str(tmp_path / "elsewhere"))
    assert load(root, "onnx:\n  opset: 14\n")["onnx"]["opset"] == 14
    assert config.load(str(root / "pipeline.yaml"))["onnx"]["opset"] == 14  # absolute: as given


def test_a_file_yaml_cannot_even_read_is_one_sentence(root):
    (root / "pipeline.yaml").write_bytes(b"onnx:\n  opset: 13\x00\n")  # a NUL: no line mark
    with pytest.raises(ConfigError) as e:
        config.load("pipeline.yaml")
    assert str(e.value) == "pipeline.yaml is not valid YAML: fix the syntax."


def test_a_missing_pipeline_file_is_named(root):
    with pytest.raises(ConfigError) as e:
        config.load("other.yaml")
    assert (
        str(e.value)
        == "The pipeline file other.yaml does not exist: create it or pass config=PATH."
    )


@pytest.mark.parametrize(
    "text,needle",
    [
        ("- a\n- b\n", "pipeline.yaml must be a mapping of sections (model, golden, onnx, ...)."),
        ("a: 1\nb: [\n", "pipeline.yaml is not valid YAML at line 3: fix the syntax."),
        ("onnx: 3\n", "Key 'onnx' in pipeline.yaml must be a section (a mapping)."),
        ("onnx:\n  opset:\n", "Key 'onnx.opset' in pipeline.yaml must not be empty."),
        (
            "golden:\n  images: []\n",
            "Key 'golden.images' in pipeline.yaml must be a non-empty list of strings.",
        ),
        (
            "golden:\n  images: [1]\n",
            "Key 'golden.images' in pipeline.yaml must be a non-empty list of strings.",
        ),
        ("golden:\n  images: examples/a.jpg\n", "must be a non-empty list of strings."),
        (
            "engine:\n  keep_fp32: []\n",
            "Key 'engine.keep_fp32' in pipeline.yaml must be a non-empty list",
        ),
        (
            "golden:\n  images: [examples/nope.jpg]\n",
            "Key 'golden.images' in pipeline.yaml names examples/nope.jpg, which does not exist: "
            "fix the path.",
        ),
        (
            "bench:\n  image: examples/nope.jpg\n",
            "Key 'bench.image' in pipeline.yaml names examples/nope.jpg",
        ),
        (
            "onnx:\n  max_abs: fast\n",
            "Key 'onnx.max_abs' in pipeline.yaml must be a number, not 'fast'.",
        ),
        (
            "onnx:\n  opset: 13.0\n",
            "Key 'onnx.opset' in pipeline.yaml must be an integer, not 13.0.",
        ),
        (
            "onnx:\n  opset: true\n",
            "Key 'onnx.opset' in pipeline.yaml must be an integer, not True.",
        ),
        ("model:\n  path: 3\n", "Key 'model.path' in pipeline.yaml must be a string, not 3."),
        (
            "onnx:\n  simplify: 1\n",
            "Key 'onnx.simplify' in pipeline.yaml must be true or false, not 1.",
        ),
        ("onnx:\n  opset: 6\n", "Key 'onnx.opset' in pipeline.yaml must be at least 7."),
        (
            "golden:\n  overlay_alpha: 1.01\n",
            "Key 'golden.overlay_alpha' in pipeline.yaml must be at most 1.",
        ),
        ("golden:\n  overlay_alpha: -0.01\n", "must be at least 0."),
        (
            "infer:\n  out: '  '\n",
            "Key 'infer.out' in pipeline.yaml must name a folder, not an empty string.",
        ),
        (
            "infer:\n  out: examples/a.jpg\n",
            "names examples/a.jpg, which is a file: give a folder.",
        ),
        (
            "verify:\n  fp16:\n    miou: 1.5\n",
            "Key 'verify.fp16.miou' in pipeline.yaml must be at most 1.",
        ),
        ("verify:\n  fp32:\n    logits_max_abs: -1\n", "Key 'verify.fp32.logits_max_abs'"),
    ],
)
def test_each_bad_value_is_one_sentence_naming_the_key_and_file(root, text, needle):
    assert needle in refused(root, text)


@pytest.mark.parametrize(
    "text,key,value",
    [
        ("onnx:\n  opset: 7\n", ("onnx", "opset"), 7),
        ("golden:\n  overlay_alpha: 1\n", ("golden", "overlay_alpha"), 1.0),
        ("golden:\n  overlay_alpha: 0\n", ("golden", "overlay_alpha"), 0.0),
        ("precision:\n  margin: 1\n", ("precision", "margin"), 1.0),
        ("engine:\n  workspace_mb: 16\n", ("engine", "workspace_mb"), 16),
        ("onnx:\n  max_abs: 1\n", ("onnx", "max_abs"), 1.0),
        ("infer:\n  max_megapixels: 0.01\n", ("infer", "max_megapixels"), 0.01),
        ("model:\n  repo_id: org/name\n", ("model", "repo_id"), "org/name"),
        ("infer:\n  image: '0'\n", ("infer", "image"), "0"),
        ("infer:\n  image: 'v4l2src ! appsink'\n", ("infer", "image"), "v4l2src ! appsink"),
        (
            "infer:\n  image: examples/a.jpg\n",
            ("infer", "image"),
            os.path.join("examples", "a.jpg"),
        ),
        ("model:\n  path: ./models/../m\n", ("model", "path"), "m"),
    ],
)
def test_values_at_the_edges_are_accepted_as_their_type(root, text, key, value):
    got = load(root, text)[key[0]][key[1]]
    assert got == value and type(got) is type(value)


def test_paths_in_a_pipeline_file_in_a_subfolder_resolve_from_that_file(root):
    (root / "sub" / "examples").mkdir(parents=True)
    (root / "sub" / "examples" / "b.jpg").write_bytes(b"jpg")
    cfg = load(
        root,
        "model:\n  path: ../models/x\n  repo_id: org/name\ngolden:\n  images: [examples/b.jpg]\n"
        "artifacts: out\nbench:\n  image: ../examples/a.jpg\n",
        name="sub/p.yaml",
    )
    assert cfg["model"]["path"] == os.path.join("models", "x")
    assert cfg["model"]["repo_id"] == "org/name"  # not a path: left as written
    assert cfg["golden"]["images"] == [os.path.join("sub", "examples", "b.jpg")]
    assert (
        cfg["artifacts"] == os.path.join("sub", "out") and cfg["bench"]["image"] == "examples/a.jpg"
    )
    message = refused(root, "golden:\n  images: [examples/a.jpg]\n", name="sub/p.yaml")
    assert "Key 'golden.images' in sub/p.yaml names examples/a.jpg, which does not exist" in message


@pytest.mark.parametrize(
    "text,value",
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("Yes", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
    ],
)
def test_command_line_booleans(root, text, value):
    cfg = load(root, "", {"sequential": text, "cpu": text})
    assert cfg["infer"]["sequential"] is value and cfg["bench"]["cpu"] is value


@pytest.mark.parametrize(
    "variables,needle",
    [
        (
            {"sequential": "2"},
            "sequential=2 on the command line is not valid: sequential= takes 1 or 0 (or "
            "true/false, yes/no)",
        ),
        (
            {"alpha": "half"},
            "alpha=half on the command line is not valid: alpha= takes a number from 0 to 1",
        ),
        ({"n": "1.5"},
         "n=1.5 on the command line is not valid: n= takes an integer from 1 to 1000000000"),
        ({"n": "0"}, "it sets infer.n and bench.iterations)."),
        ({"alpha": "inf"}, "alpha=inf on the command line is not valid"),
        (
            {"image": "examples/none.jpg"},
            "image=examples/none.jpg on the command line names examples/none.jpg, which does not "
            "exist: paths on the command line are relative to the folder you run doit in",
        ),
    ],
)
def test_command_line_values_are_checked_by_the_keys_they_override(root, variables, needle):
    assert needle in refused(root, "", variables)


def test_command_line_numbers_are_stored_as_their_key_type(root):
    cfg = load(root, "", {"n": "1", "alpha": "1"})
    assert (
        cfg["infer"]["n"] == 1
        and cfg["bench"]["iterations"] == 1
        and type(cfg["infer"]["n"]) is int
    )
    assert cfg["infer"]["alpha"] == 1.0 and type(cfg["infer"]["alpha"]) is float
    assert load(root, "", {"image": "examples/a.jpg"})["infer"]["image"] == os.path.join(
        "examples", "a.jpg"
    )


def test_slice_of_takes_only_the_named_sections(root):
    cfg = load(root)
    assert config.slice_of(cfg, "onnx", "engine") == {"onnx": cfg["onnx"], "engine": cfg["engine"]}


def test_the_schema_limits_themselves():
    for precision in ("fp32", "fp16"):
        for key in ("input_max_abs", "logits_max_abs", "logits_mean_abs"):
            spec = key_spec("verify.%s.%s" % (precision, key))
            assert (spec.kind, spec.minimum, spec.maximum) == ("float", 0, 1e3)
        for key in ("mask_agreement", "miou"):
            spec = key_spec("verify.%s.%s" % (precision, key))
            assert (spec.kind, spec.minimum, spec.maximum) == ("float", 0, 1)
    assert (
        key_spec("verify.fp32.miou").default == 0.99
        and key_spec("verify.fp16.miou").default == 0.89
    )
    assert key_spec("verify.fp16.logits_max_abs").default == 0.05
    assert key_spec("model.repo_id").optional and not key_spec("model.path").optional
    assert (
        key_spec("artifacts").kind == "outpath"
        and "8.2" in SCHEMA["onnx"]["target_tensorrt"].choices
    )
    assert all(set(k.split(".")[0] for k in keys) <= set(SCHEMA) for _, keys in VARIABLES.values())
