"""Command-line variables are overrides of pipeline.yaml keys, checked by the same schema with
the same messages; doit's state lives with each artifacts folder; the doit-compat shim."""
import os
import shutil

import pytest

from conftest import ROOT, assert_one_sentence_error, doit, edit_yaml, executed
from stages.common import config, doitcompat
from stages.common.errors import ConfigError


@pytest.mark.parametrize("variables,needles", [
    ({"backend": "trt"}, ["backend=trt on the command line", "auto, tensorrt or onnxruntime",
                          "verify.backend, infer.backend and bench.backend"]),
    ({"alpha": "2"}, ["alpha=2 on the command line", "a number from 0 to 1"]),
    ({"alpha": "nan"}, ["alpha=nan on the command line", "a number from 0 to 1"]),
    ({"mode": "bogus"}, ["mode=bogus", "overlay, mask or both", "infer.mode"]),
    ({"n": "abc"}, ["n=abc on the command line", "an integer", "infer.n and bench.iterations"]),
    ({"n": "0"}, ["n=0 on the command line", "an integer from 1 to 1000000000"]),
    ({"n": "-1"}, ["from 1 to 1000000000"]),
    ({"sequential": "maybe"}, ["sequential=maybe", "1 or 0"]),
    ({"cpu": "2"}, ["cpu=2", "bench.cpu", "1 or 0"]),
    ({"image": "examples/nope.jpg"}, ["image=examples/nope.jpg", "does not exist",
                                      "relative to the folder you run doit in"]),
    ({"out": ""}, ["out= on the command line", "a folder"]),
    ({"out": "README.md"}, ["out=README.md", "is a file", "give a folder"]),
])
def test_bad_command_line_values_are_refused_by_the_schema(variables, needles):
    with pytest.raises(ConfigError) as e:
        config.load("pipeline.yaml", variables)
    for n in needles:
        assert n in str(e.value), str(e.value)


def test_command_line_values_override_their_keys():
    cfg = config.load("pipeline.yaml", {"backend": "onnxruntime", "n": "7", "alpha": "0.25",
                                        "sequential": "1", "image": "examples", "cpu": "0"})
    assert (cfg["verify"]["backend"] == cfg["infer"]["backend"] == cfg["bench"]["backend"]
            == "onnxruntime")
    assert cfg["infer"]["n"] == 7 and cfg["bench"]["iterations"] == 7
    assert cfg["infer"]["alpha"] == 0.25 and cfg["infer"]["sequential"] is True
    assert cfg["bench"]["cpu"] is False and cfg["infer"]["image"] == "examples"
    plain = config.load("pipeline.yaml")
    assert plain["infer"]["n"] is None and plain["bench"]["iterations"] == 50


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("key", ["  max_abs: 1.0e-3", "  mask_agreement: 0.999"])
def test_non_finite_limits_are_refused_in_the_pipeline_file(text, key):
    path = os.path.join(ROOT, ".test-nan-%d.yaml" % os.getpid())
    with open(os.path.join(ROOT, "pipeline.yaml")) as f:
        body = f.read()
    assert key in body
    with open(path, "w") as f:
        f.write(body.replace(key, key.split(":")[0] + ": " + text))
    try:
        with pytest.raises(ConfigError) as e:
            config.load(path)
    finally:
        os.remove(path)
    assert "onnx." in str(e.value) and ("finite" in str(e.value) or "at least" in str(e.value))


def test_relative_command_line_paths_resolve_against_the_project_root(tmp_path):
    cfg = config.load("pipeline.yaml", {"image": "examples/odd_641x479.jpg", "out": "artifacts/x"})
    assert (cfg["infer"]["image"] == "examples/odd_641x479.jpg"
            and cfg["infer"]["out"] == "artifacts/x")
    outside = str(tmp_path / "results")
    assert config.load("pipeline.yaml", {"out": outside})["infer"]["out"] == outside


@pytest.mark.parametrize("args", [["backend=trt"], ["alpha=2"], ["mode=bogus"], ["n=abc"]])
def test_bad_variables_through_the_real_cli(args):
    code, out = doit(ROOT, "list", *args)
    assert_one_sentence_error(code, out, args[0].split("=")[0] + "=")


def test_doitcompat_reads_variables_and_digests_like_doit():
    from doit.tools import config_changed
    assert doitcompat.cmdline_vars(["infer", "image=a.jpg", "-v", "n=3"]) == {
        "image": "a.jpg", "n": "3"}
    settings = {"b": [1, 2], "a": {"x": 0.5}}
    assert (doitcompat.config_digest(config_changed(settings))
            == doitcompat.fallback_digest(settings))
    assert doitcompat.fallback_digest(settings) != doitcompat.fallback_digest(
        {"b": [2, 1], "a": {"x": 0.5}})


def test_two_pipeline_files_keep_their_own_doit_state(project):
    other = os.path.join(project, "other.yaml")
    shutil.copy(os.path.join(project, "pipeline.yaml"), other)
    edit_yaml(other, "artifacts: artifacts ", "artifacts: artifacts/other ")
    code, out = doit(project, "config=other.yaml")
    assert code == 0, out
    assert "checkout" in executed(out)
    for _ in range(2):  # switching back and forth reruns nothing
        code, out = doit(project)
        assert code == 0 and executed(out) == [], out
        code, out = doit(project, "config=other.yaml")
        assert code == 0 and executed(out) == [], out
    assert os.path.isfile(os.path.join(project, "artifacts", ".doit.json"))
    assert os.path.isfile(os.path.join(project, "artifacts", "other", ".doit.json"))
