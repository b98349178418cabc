"""pipeline.yaml validation: one sentence naming the key and the file."""
import os

import pytest

from conftest import ROOT
from stages.common import config
from stages.common.errors import ConfigError


def load_text(tmp_path, text):
    path = os.path.join(ROOT, ".test-pipeline-%s.yaml" % os.getpid())
    with open(path, "w") as f:
        f.write(text)
    try:
        return config.load(path)
    finally:
        os.remove(path)


def base():
    with open(os.path.join(ROOT, "pipeline.yaml")) as f:
        return f.read()


def test_default_pipeline_loads():
    cfg = config.load()
    assert cfg["onnx"]["opset"] == 13 and cfg["engine"]["precision"] == "fp16"
    assert cfg["golden"]["images"][0] == "examples/street_1920x1080.jpg"


@pytest.mark.parametrize("old,new,needle", [
    ("  opset: 13", "  opsett: 13", "Unknown key 'onnx.opsett'"),
    ("  opset: 13", "  opset: thirteen", "Key 'onnx.opset'"),
    ("  precision: fp16", "  precision: int8", "must be one of fp32, fp16"),
    ("    - examples/odd_641x479.jpg", "    - examples/nope.jpg", "Key 'golden.images'"),
    ("artifacts: artifacts ", "artifacts: ../outside ", "must name a folder inside the project"),
    ("  simplify: true", "  simplify: 3", "must be true or false"),
])
def test_bad_values_name_the_key_and_file(tmp_path, old, new, needle):
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, base().replace(old, new))
    assert needle in str(e.value) and ".test-pipeline-" in str(e.value)


def test_broken_yaml(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, "model: [\n")
    assert "is not valid YAML" in str(e.value)
