"""The schema's checks on each value, as a user meets them: the exact sentence of each refusal
(the key and the file as typed, the value quoted, clipped at 60 characters), where each kind of
path is resolved from (the pipeline file's folder, never the folder doit runs in), and which file
or the command line each explicit key is recorded as coming from."""

import os
import shutil
import tempfile

import pytest

from stages.common import config, schema
from stages.common.errors import ConfigError


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A project root in tmp with the default images, run from an unrelated empty folder (so a
    path resolved against the cwd instead of its pipeline file is not found)."""
    project = tmp_path / "project"
    (project / "examples").mkdir(parents=True)
    (project / "sub" / "examples").mkdir(parents=True)
    for folder in ("examples", "sub/examples"):  # the default images, for either pipeline file
        (project / folder / "street_1920x1080.jpg").write_bytes(b"jpg")
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)  # not the project's sibling
    monkeypatch.setattr(config, "ROOT", str(project))
    monkeypatch.chdir(str(tmp_path / "elsewhere" / "deeper"))
    return project


def load(root, text, variables=None, name="pipeline.yaml"):
    (root / name).write_text(text)
    return config.load(name, variables)


def refusal(root, text, name="pipeline.yaml"):
    with pytest.raises(ConfigError) as e:
        load(root, text, name=name)
    return str(e.value)


# --- which file or the command line set each key ---------------------------------------------


def test_explicit_records_each_key_the_file_sets_and_each_the_command_line_overrides(root):
    cfg = load(
        root,
        "onnx:\n  opset: 14\nverify:\n  fp16:\n    miou: 0.5\ninfer:\n  alpha: 0.2\n",
        {"alpha": "0.3", "n": "3"},
        name="sub/p.yaml",
    )
    assert cfg["explicit"] == {
        "onnx.opset": "sub/p.yaml",
        "verify.fp16.miou": "sub/p.yaml",
        "infer.alpha": "the command line",  # the file set it too: the command line wins
        "infer.n": "the command line",
        "bench.iterations": "the command line",
    }
    assert cfg["infer"]["alpha"] == 0.3 and cfg["bench"]["iterations"] == 3


def test_an_empty_file_and_no_variables_set_nothing_explicitly(root):
    assert load(root, "")["explicit"] == {}


# --- unknown keys, named as typed ------------------------------------------------------------


def test_an_unknown_key_that_yaml_reads_as_a_number_is_named_not_a_crash(root):
    message = refusal(root, "1: x\nzz: y\n")  # keys 1 and 'zz': sorted as text, 1 first
    assert message.startswith("Unknown key '1' in pipeline.yaml: valid keys here are artifacts, ")


@pytest.mark.parametrize("text,named", [("Xtra: 1\n", "Xtra"), ("onnx:\n  maX: 1\n", "onnx.maX")])
def test_an_unknown_key_is_named_exactly_as_typed(root, text, named):
    assert refusal(root, text).startswith("Unknown key '%s' in pipeline.yaml: " % named)


@pytest.mark.parametrize(
    "length,shown",
    [
        (58, "onnx." + "k" * 53),  # quoted, 60 characters: shown whole
        (59, "onnx." + "k" * 54 + "..."),  # 61: clipped to 60 (the closing quote goes)
        (70, "onnx." + "k" * 54 + "..."),
    ],
)
def test_a_long_unknown_key_is_clipped_at_60_characters(root, length, shown):
    message = refusal(root, "onnx:\n  %s: 1\n" % ("k" * (length - 5)))
    assert message.startswith("Unknown key '%s' in pipeline.yaml: valid keys here are " % shown)


# --- lists of choices, choices, numbers ------------------------------------------------------


@pytest.mark.parametrize(
    "groups,message",
    [
        (
            "[LayerNorm, Gelu]",
            "Key 'engine.keep_fp32' in pipeline.yaml names 'Gelu', which is not one of "
            "LayerNorm, Softmax: use only those.",
        ),
        (
            "[Gelu, Softmax, Erf]",  # the first bad one is named
            "Key 'engine.keep_fp32' in pipeline.yaml names 'Gelu', which is not one of "
            "LayerNorm, Softmax: use only those.",
        ),
        (
            "[Softmax, Softmax]",
            "Key 'engine.keep_fp32' in pipeline.yaml names a value twice: list each once.",
        ),
    ],
)
def test_keep_fp32_takes_only_known_groups_each_once(root, groups, message):
    assert refusal(root, "engine:\n  keep_fp32: %s\n" % groups) == message


def test_keep_fp32_keeps_the_order_given(root):
    cfg = load(root, "engine:\n  keep_fp32: [Softmax, LayerNorm]\n")
    assert cfg["engine"]["keep_fp32"] == ["Softmax", "LayerNorm"]


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "onnx:\n  layer_norm: fused\n",
            "Key 'onnx.layer_norm' in pipeline.yaml must be one of auto, decomposed, native, "
            "not 'fused'.",
        ),
        (
            "infer:\n  alpha: .nan\n",
            "Key 'infer.alpha' in pipeline.yaml must be a finite number, not nan.",
        ),
        (
            "precision:\n  margin: -.inf\n",
            "Key 'precision.margin' in pipeline.yaml must be a finite number, not -inf.",
        ),
    ],
)
def test_a_refused_value_is_quoted_in_its_sentence(root, text, message):
    assert refusal(root, text) == message


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_freshly_built_threshold_table_bounds_abs_limits_at_zero_and_abs_limit(precision):
    """schema's helpers, called now (SCHEMA itself was built at import): each abs-error key is a
    float from 0 to ABS_LIMIT with its default, each agreement a float from 0 to 1."""
    table = schema._thresholds(1e-3, 0.05, 0.006, 0.995, 0.89)
    spec = table["logits_max_abs"]
    assert spec.default == 0.05 and table["input_max_abs"].default == 1e-3
    key = "verify.%s.logits_max_abs" % precision
    for good in (0, 0.0, schema.ABS_LIMIT):
        got = config._value(good, spec, key, "p.yaml", "")
        assert got == good and type(got) is float
    for bad, word in ((-1e-9, "at least 0."), (schema.ABS_LIMIT + 1e-6, "at most 1000.")):
        with pytest.raises(ConfigError) as e:
            config._value(bad, spec, key, "p.yaml", "")
        assert str(e.value) == "Key '%s' in p.yaml must be %s" % (key, word)
    with pytest.raises(ConfigError, match="must be a number, not 'x'"):
        config._value("x", table["logits_mean_abs"], key, "p.yaml", "")


# --- paths: resolved from the pipeline file's folder -----------------------------------------


@pytest.mark.parametrize(
    "data,stored",
    [
        ("sets", os.path.join("sub", "sets")),  # inside: relative to the project root
        ("../inside", "inside"),
        ("../../outside", None),  # outside the project: absolute
    ],
)
def test_evaluate_data_resolves_from_the_pipeline_files_folder(root, data, stored):
    got = load(root, "evaluate:\n  data: %s\n" % data, name="sub/p.yaml")["evaluate"]["data"]
    assert got == (stored or str(root.parent / "outside"))


def test_an_infer_image_named_like_a_camera_is_the_file_beside_the_pipeline_file(root):
    (root / "sub" / "0").write_bytes(b"jpg")
    cfg = load(root, "infer:\n  image: '0'\n", name="sub/p.yaml")
    assert cfg["infer"]["image"] == os.path.join("sub", "0")
    assert load(root, "infer:\n  image: '0'\n")["infer"]["image"] == "0"  # none at the root: camera


def test_a_missing_infer_image_names_the_key_and_the_file(root):
    assert refusal(root, "infer:\n  image: nope.jpg\n", name="sub/p.yaml") == (
        "Key 'infer.image' in sub/p.yaml names nope.jpg, which does not exist: fix the path."
    )


def test_an_infer_image_that_is_a_fifo_is_refused_naming_the_key_and_the_file(root):
    os.mkfifo(str(root / "sub" / "pipe"))
    assert refusal(root, "infer:\n  image: pipe\n", name="sub/p.yaml") == (
        "Key 'infer.image' in sub/p.yaml: image=pipe is not a regular file, a folder, a camera "
        "index or a pipeline (a FIFO or a device): give an image, a folder or a video."
    )


def test_artifacts_outside_the_project_is_refused_with_the_value_as_typed(root):
    assert refusal(root, "artifacts: ../out\n") == (
        "Key 'artifacts' in pipeline.yaml must name a folder inside the project (%s), not ../out."
        % root
    )


@pytest.fixture
def outside():
    """A folder outside the project, removed afterwards."""
    folder = tempfile.mkdtemp()
    yield os.path.realpath(folder)
    shutil.rmtree(folder)


@pytest.mark.parametrize("quoted", [40, 60, 61, 90])
def test_artifacts_through_a_symlink_names_where_it_resolves_clipped_at_60(root, outside, quoted):
    """The resolved folder is quoted (`quoted`: its repr's length) and clipped at 60 characters."""
    assert len(outside) < 36  # room for a name of each length below
    real = os.path.join(outside, "d" * (quoted - 3 - len(outside)))
    assert len(repr(real)) == quoted
    os.mkdir(real)
    os.symlink(real, str(root / "link"))
    shown = real if quoted <= 60 else real[:59] + "..."
    assert refusal(root, "artifacts: link\n") == (
        "Key 'artifacts' in pipeline.yaml names link, which resolves to %s outside the project "
        "(a symlink): artifacts must stay inside %s; remove the link." % (shown, root)
    )
