"""Every number's range as README's key table documents it, through a pipeline file: each bound
is accepted as the key's type, and the nearest value past it is refused with the bound named (a
bound off by one, a limit dropped or a bad value accepted fails here)."""

import math
import re

import pytest
import yaml

from stages.common import config
from stages.common.errors import ConfigError
from stages.common.schema import SCHEMA

# README.md, "pipeline.yaml keys": key -> (kind, from, to)
DOCUMENTED = {
    "golden.overlay_alpha": (float, 0, 1),
    "onnx.opset": (int, 7, 23),
    "onnx.max_abs": (float, 0, 1000),
    "onnx.mask_agreement": (float, 0, 1),
    "precision.margin": (float, 1, 1000),
    "precision.budget_minutes": (float, 0.1, 1440),
    "precision.budget_mb": (int, 500, 1048576),
    "engine.workspace_mb": (int, 16, 262144),
    "infer.alpha": (float, 0, 1),
    "infer.n": (int, 1, 10 ** 9),
    "infer.max_megapixels": (float, 0.01, 1000),
    "bench.iterations": (int, 1, 10 ** 6),
    "bench.warmup": (int, 0, 10 ** 4),
    "evaluate.max_miou_drop": (float, 0, 1),
    "evaluate.max_class_iou_drop": (float, 0, 1),
    "evaluate.worst": (int, 0, 50),
}
for _precision in ("fp32", "fp16"):
    for _name in ("input_max_abs", "logits_max_abs", "logits_mean_abs"):
        DOCUMENTED["verify.%s.%s" % (_precision, _name)] = (float, 0, 1000)
    for _name in ("mask_agreement", "miou"):
        DOCUMENTED["verify.%s.%s" % (_precision, _name)] = (float, 0, 1)


def numeric_keys(node=SCHEMA, prefix=""):
    for name, spec in node.items():
        if isinstance(spec, dict):
            yield from numeric_keys(spec, prefix + name + ".")
        elif spec.kind in ("int", "float"):
            yield prefix + name


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "ROOT", str(tmp_path))
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "street_1920x1080.jpg").write_bytes(b"jpg")
    return tmp_path


def load_one(root, dotted, value):
    """cfg's value of `dotted` after a pipeline file sets it to `value` (written as YAML does)."""
    *sections, key = dotted.split(".")
    text = yaml.safe_dump(value).split("\n")[0]
    lines = ["  " * i + s + ":" for i, s in enumerate(sections)]
    lines.append("  " * len(sections) + key + ": " + text)
    (root / "pipeline.yaml").write_text("\n".join(lines))
    cfg = config.load("pipeline.yaml")
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def test_every_number_in_the_schema_has_its_range_documented():
    assert sorted(numeric_keys()) == sorted(DOCUMENTED)


def past(kind, bound, direction):
    return bound + direction if kind is int else math.nextafter(float(bound), direction * math.inf)


@pytest.mark.parametrize("dotted", sorted(DOCUMENTED))
def test_each_bound_is_accepted_and_the_next_value_past_it_refused(root, dotted):
    kind, low, high = DOCUMENTED[dotted]
    for bound in (low, high):
        got = load_one(root, dotted, kind(bound))
        assert got == bound and type(got) is kind
    for bound, direction, word in ((low, -1, "least"), (high, 1, "most")):
        with pytest.raises(ConfigError) as e:
            load_one(root, dotted, past(kind, bound, direction))
        said = re.match(r"Key '(.+)' in pipeline.yaml must be at (least|most) (\S+)\.$",
                        str(e.value))
        assert said.group(1, 2) == (dotted, word) and float(said.group(3)) == bound
