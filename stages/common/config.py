"""Load and validate pipeline.yaml once. The schema is data: section -> key -> Key(kind, default).

Paths are resolved relative to the pipeline file and stored relative to the project root,
so the slices given to `config_changed` do not change when the repo is moved."""
import os

import yaml

from stages.common.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRT_TARGETS = ("8.2", "8.4", "8.5", "8.6", "10")


class Key(object):
    """One setting: kind is bool|int|float|str|path|outpath|paths|strs|choice, plus its default."""

    def __init__(self, kind, default, choices=None, optional=False, minimum=None):
        self.kind, self.default, self.choices = kind, default, choices
        self.optional, self.minimum = optional, minimum


def _thresholds(input_max_abs, logits_max_abs, logits_mean_abs, mask_agreement, miou):
    return {"input_max_abs": Key("float", input_max_abs, minimum=0),
            "logits_max_abs": Key("float", logits_max_abs, minimum=0),
            "logits_mean_abs": Key("float", logits_mean_abs, minimum=0),
            "mask_agreement": Key("float", mask_agreement, minimum=0),
            "miou": Key("float", miou, minimum=0)}


SCHEMA = {
    "artifacts": Key("outpath", "artifacts"),
    "model": {
        "path": Key("str", "models/segformer-tiny-sidewalk"),
        "repo_id": Key("str", None, optional=True),
        "revision": Key("str", None, optional=True),
        "allow_pickle": Key("bool", False),
    },
    "golden": {
        "images": Key("paths", ["examples/street_1920x1080.jpg"]),
        "overlay_alpha": Key("float", 0.5, minimum=0),
    },
    "onnx": {
        "opset": Key("int", 13, minimum=7),
        "simplify": Key("bool", True),
        "target_tensorrt": Key("choice", "8.2", choices=TRT_TARGETS),
        "max_abs": Key("float", 1e-3, minimum=0),
        "mask_agreement": Key("float", 0.999, minimum=0),
    },
    "engine": {
        "precision": Key("choice", "fp16", choices=("fp32", "fp16")),
        "workspace_mb": Key("int", 1024, minimum=16),
        "keep_fp32": Key("strs", ["LayerNorm", "Softmax"]),
        "timing_cache": Key("bool", True),
    },
    "verify": {
        "backend": Key("choice", "auto", choices=("auto", "tensorrt", "onnxruntime")),
        "fp32": _thresholds(1e-3, 1e-3, 1e-4, 0.999, 0.99),
        "fp16": _thresholds(1e-3, 0.25, 0.02, 0.99, 0.95),
    },
    "infer": {
        "out": Key("outpath", "artifacts/infer"),
        "alpha": Key("float", 0.5, minimum=0),
        "mode": Key("choice", "both", choices=("overlay", "mask", "both")),
        "max_megapixels": Key("float", 80.0, minimum=0.01),
    },
    "bench": {
        "image": Key("path", "examples/street_1920x1080.jpg"),
        "iterations": Key("int", 50, minimum=1),
        "warmup": Key("int", 5, minimum=0),
    },
}


def load(path="pipeline.yaml"):
    """Return the validated config as nested plain dicts; raise ConfigError with one sentence."""
    full = path if os.path.isabs(path) else os.path.join(ROOT, path)
    if not os.path.isfile(full):
        raise ConfigError("The pipeline file %s does not exist: create it or pass config=PATH." % path)
    try:
        with open(full, "r") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = " at line %d" % (mark.line + 1) if mark else ""
        raise ConfigError("%s is not valid YAML%s: fix the syntax." % (path, where))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("%s must be a mapping of sections (model, golden, onnx, ...)." % path)
    return _section(raw, SCHEMA, "", path, os.path.dirname(full))


def _section(raw, schema, prefix, fname, base):
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        key = prefix + str(unknown[0])
        raise ConfigError("Unknown key '%s' in %s: valid keys here are %s." % (
            key, fname, ", ".join(sorted(schema))))
    out = {}
    for name, spec in schema.items():
        key = prefix + name
        if isinstance(spec, dict):
            sub = raw.get(name) or {}
            if not isinstance(sub, dict):
                raise ConfigError("Key '%s' in %s must be a section (a mapping)." % (key, fname))
            out[name] = _section(sub, spec, key + ".", fname, base)
        else:
            out[name] = _value(raw.get(name, spec.default), spec, key, fname, base)
    return out


def _value(value, spec, key, fname, base):
    if value is None:
        if spec.optional:
            return None
        raise ConfigError("Key '%s' in %s must not be empty." % (key, fname))
    kind = spec.kind
    if kind in ("paths", "strs"):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError("Key '%s' in %s must be a non-empty list of strings." % (key, fname))
        if kind == "paths":
            return [_path(v, key, fname, base, must_exist=True) for v in value]
        return list(value)
    expected = {"bool": bool, "int": int, "float": (int, float), "str": str, "choice": str,
                "path": str, "outpath": str}[kind]
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, expected):
        raise ConfigError("Key '%s' in %s must be %s, not %r." % (key, fname, _describe(kind), value))
    if spec.choices and value not in spec.choices:
        raise ConfigError("Key '%s' in %s must be one of %s, not %r." % (
            key, fname, ", ".join(spec.choices), value))
    if spec.minimum is not None and value < spec.minimum:
        raise ConfigError("Key '%s' in %s must be at least %s." % (key, fname, spec.minimum))
    if kind == "path":
        return _path(value, key, fname, base, must_exist=True)
    if kind == "outpath":
        return _outpath(value, key, fname, base)
    if kind == "str" and key == "model.path":
        return _relative(value, base)
    return float(value) if kind == "float" else value


def _describe(kind):
    return {"bool": "true or false", "int": "an integer", "float": "a number"}.get(kind, "a string")


def _relative(value, base):
    return os.path.relpath(os.path.normpath(os.path.join(base, os.path.expanduser(value))), ROOT)


def _path(value, key, fname, base, must_exist):
    rel = _relative(value, base)
    if must_exist and not os.path.exists(os.path.join(ROOT, rel)):
        raise ConfigError("Key '%s' in %s names %s, which does not exist: fix the path." % (key, fname, value))
    return rel


def _outpath(value, key, fname, base):
    rel = _relative(value, base)
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel) or rel == ".":
        raise ConfigError("Key '%s' in %s must name a folder inside the project (%s), not %s." % (
            key, fname, ROOT, value))
    return rel


def slice_of(cfg, *sections):
    """The settings a task depends on, as one dict for doit's config_changed."""
    return dict((s, cfg[s]) for s in sections)
