"""Load and validate pipeline.yaml once, with the command-line variables applied as overrides of
its keys. The schema is data (stages/common/schema.py): section -> key -> Key(kind, default).

Paths in the pipeline file are resolved relative to that file; paths on the command line relative
to the project root (where dodo.py is, and where doit runs). Both are stored relative to the
project root, so the slices given to `config_changed` do not change when the repo is moved."""
import math
import os

import yaml

from stages.common.errors import ConfigError
from stages.common.schema import SCHEMA, TRT_TARGETS, VARIABLES, key_spec  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path="pipeline.yaml", variables=None):
    """Return the validated config as nested plain dicts; raise ConfigError with one sentence.
    variables: the command line's name=value pairs (strings), applied through VARIABLES."""
    full = path if os.path.isabs(path) else os.path.join(ROOT, path)
    if not os.path.isfile(full):
        raise ConfigError("The pipeline file %s does not exist: create it or pass config=PATH."
                          % path)
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
    cfg = _section(raw, SCHEMA, "", path, os.path.dirname(full))
    for name, text in sorted((variables or {}).items()):
        for dotted in VARIABLES[name][1]:
            section, key = dotted.split(".")
            cfg[section][key] = _override(dotted, name, text)
    return cfg


def _override(dotted, name, text):
    """One command-line value for one key: parsed from its string, then the key's own checks."""
    spec = key_spec(dotted)
    where = "the command line (%s=%s)" % (name, text)
    value = text
    try:
        if spec.kind == "int":
            value = int(text)
        elif spec.kind == "float":
            value = float(text)
    except ValueError:
        raise ConfigError("Key '%s' in %s must be %s, not %r." % (
            dotted, where, _describe(spec.kind), text))
    if spec.kind == "bool":
        value = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(
            text.lower(), text)
    return _value(value, spec, dotted, where, ROOT)


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
                "path": str, "outpath": str, "outdir": str, "source": str}[kind]
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, expected):
        raise ConfigError("Key '%s' in %s must be %s, not %r." % (
            key, fname, _describe(kind), value))
    if spec.choices and value not in spec.choices:
        raise ConfigError("Key '%s' in %s must be one of %s, not %r." % (
            key, fname, ", ".join(spec.choices), value))
    if kind == "float" and not math.isfinite(value):
        raise ConfigError("Key '%s' in %s must be a finite number, not %r." % (key, fname, value))
    if spec.minimum is not None and value < spec.minimum:
        raise ConfigError("Key '%s' in %s must be at least %s." % (key, fname, spec.minimum))
    if spec.maximum is not None and value > spec.maximum:
        raise ConfigError("Key '%s' in %s must be at most %s." % (key, fname, spec.maximum))
    if kind == "path":
        return _path(value, key, fname, base, must_exist=True)
    if kind == "outpath":
        return _outpath(value, key, fname, base)
    if kind == "source":
        return _source(value, key, fname, base)
    if kind == "outdir":
        return _outdir(value, key, fname, base)
    if kind == "str" and key in ("model.path", "evaluate.data"):  # folders checked by their link
        return _relative(value, base)
    return float(value) if kind == "float" else value


def _describe(kind):
    return {"bool": "true or false", "int": "an integer", "float": "a number"}.get(kind, "a string")


def _relative(value, base):
    return os.path.relpath(os.path.normpath(os.path.join(base, os.path.expanduser(value))), ROOT)


def _path(value, key, fname, base, must_exist):
    rel = _relative(value, base)
    if must_exist and not os.path.exists(os.path.join(ROOT, rel)):
        raise ConfigError("Key '%s' in %s names %s, which does not exist: fix the path." % (
            key, fname, value))
    return rel


def _outpath(value, key, fname, base):
    rel = _relative(value, base)
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel) or rel == ".":
        raise ConfigError("Key '%s' in %s must name a folder inside the project (%s), not %s." % (
            key, fname, ROOT, value))
    return rel


def _source(value, key, fname, base):
    """infer's input: a camera index or a GStreamer pipeline as given, else a path that exists."""
    if value.isdigit() or "!" in value:
        return value
    return _path(value, key, fname, base, must_exist=True)


def _outdir(value, key, fname, base):
    """An output folder anywhere (infer's results): not empty, and not an existing file."""
    if not value.strip():
        raise ConfigError("Key '%s' in %s must name a folder, not an empty string." % (key, fname))
    rel = _relative(value, base)
    full = os.path.join(ROOT, rel)
    if os.path.exists(full) and not os.path.isdir(full):
        raise ConfigError("Key '%s' in %s names %s, which is a file: give a folder." % (
            key, fname, value))
    return os.path.abspath(full) if rel.startswith("..") else rel


def slice_of(cfg, *sections):
    """The settings a task depends on, as one dict for doit's config_changed."""
    return dict((s, cfg[s]) for s in sections)
