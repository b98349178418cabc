"""Load and validate pipeline.yaml once, with the command-line variables applied as overrides of
its keys. The schema is data (stages/common/schema.py): section -> key -> Key(kind, default).
cfg["explicit"] maps each dotted key the pipeline file or the command line sets to where it was
set (the file's name, or "the command line"); verify reads it (stages/device/limits.py).

Paths in the pipeline file are resolved relative to that file; paths on the command line relative
to the folder doit was started in (stages.common.userpath). Both are stored relative to the
project root, so the slices given to `config_changed` do not change when the repo is moved."""
import math
import os

from stages.common import userpath
from stages.common.errors import ConfigError, PipelineError
from stages.common.settings_file import quote, read_settings
from stages.common.schema import SCHEMA, TRT_TARGETS, VARIABLES, key_spec  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path="pipeline.yaml", variables=None, cwd=None):
    """Return the validated config as nested plain dicts; raise ConfigError with one sentence.
    variables: the command line's name=value pairs (strings), applied through VARIABLES; their
    paths are relative to cwd (the folder doit started in; the project root when None)."""
    full = path if os.path.isabs(path) else os.path.join(ROOT, path)
    raw = read_settings(full, path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("%s must be a mapping of sections (model, golden, onnx, ...)." % path)
    given = []
    cfg = _section(raw, SCHEMA, "", path, os.path.dirname(full), given)
    explicit = dict((dotted, path) for dotted in given)
    for name, text in sorted((variables or {}).items()):
        for dotted in VARIABLES[name][1]:
            section, key = dotted.split(".")
            cfg[section][key] = _override(dotted, name, text, cwd or ROOT)
            explicit[dotted] = "the command line"
    cfg["explicit"] = explicit  # not a section: no task's slice holds it (issue 23: verify reads)
    return cfg


def _override(dotted, name, text, cwd):
    """One command-line value for one key: parsed from its string, then the key's own checks;
    paths are relative to the folder doit runs in. A refused value is named as the user typed it
    (n=0, not infer.n), with what the variable accepts (stages.common.userpath)."""
    spec = key_spec(dotted)
    value = text
    try:
        if spec.kind == "int":
            value = int(text)
        elif spec.kind == "float":
            value = float(text)
        if spec.kind == "bool":
            value = {"1": True, "true": True, "yes": True, "0": False, "false": False,
                     "no": False}.get(text.lower(), text)
        return _value(value, spec, dotted, "the command line", cwd)
    except (ValueError, ConfigError) as e:
        raise ConfigError(userpath.variable_error(name, text, spec, cwd, dotted, str(e)))


def _section(raw, schema, prefix, fname, base, given):
    """The schema's section with raw's values (checked) and defaults; `given` collects the dotted
    keys raw sets."""
    unknown = sorted(set(raw) - set(schema), key=str)
    if unknown:
        key = quote(prefix + str(unknown[0]), 60).strip("'\"")
        raise ConfigError("Unknown key '%s' in %s: valid keys here are %s." % (
            key, fname, ", ".join(sorted(schema))))
    out = {}
    for name, spec in schema.items():
        key = prefix + name
        if isinstance(spec, dict):
            sub = raw.get(name) or {}
            if not isinstance(sub, dict):
                raise ConfigError("Key '%s' in %s must be a section (a mapping)." % (key, fname))
            out[name] = _section(sub, spec, key + ".", fname, base, given)
        else:
            given += [key] if name in raw else []
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
        bad = [v for v in value if spec.choices and v not in spec.choices]
        if bad:
            raise ConfigError("Key '%s' in %s names %s, which is not one of %s: use only those." % (
                key, fname, quote(bad[0]), ", ".join(spec.choices)))
        if len(set(value)) != len(value):
            raise ConfigError("Key '%s' in %s names a value twice: list each once." % (key, fname))
        return list(value)
    expected = {"bool": bool, "int": int, "float": (int, float), "str": str, "choice": str,
                "path": str, "outpath": str, "outdir": str, "source": str}[kind]
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, expected):
        raise ConfigError("Key '%s' in %s must be %s, not %s." % (
            key, fname, _describe(kind), quote(value)))
    if spec.choices and value not in spec.choices:
        raise ConfigError("Key '%s' in %s must be one of %s, not %s." % (
            key, fname, ", ".join(spec.choices), quote(value)))
    if kind == "float" and not math.isfinite(value):
        raise ConfigError("Key '%s' in %s must be a finite number, not %s." % (
            key, fname, quote(value)))
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
    if kind == "str" and key == "model.path":  # folders checked by their link
        return _relative(value, base)
    if kind == "str" and key == "evaluate.data":  # like infer.out: absolute outside the project
        rel = _relative(value, base)
        return os.path.abspath(os.path.join(ROOT, rel)) if rel.startswith("..") else rel
    return float(value) if kind == "float" else value


def _describe(kind):
    return {"bool": "true or false", "int": "an integer", "float": "a number"}.get(kind, "a string")


def _relative(value, base):
    return os.path.relpath(os.path.normpath(os.path.join(base, os.path.expanduser(value))), ROOT)


def _path(value, key, fname, base, must_exist):
    rel = _relative(value, base)
    if must_exist and not os.path.exists(os.path.join(ROOT, rel)):
        raise ConfigError("Key '%s' in %s names %s, which does not exist: fix the path." % (
            key, fname, quote(value).strip("'\"")))
    return rel


def _outpath(value, key, fname, base):
    rel = _relative(value, base)
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel) or rel == ".":
        raise ConfigError("Key '%s' in %s must name a folder inside the project (%s), not %s." % (
            key, fname, ROOT, quote(value).strip("'\"")))
    real = os.path.realpath(os.path.join(ROOT, rel))
    root = os.path.realpath(ROOT)
    if not real.startswith(root + os.sep):
        raise ConfigError("Key '%s' in %s names %s, which resolves to %s outside the project (a "
                          "symlink): artifacts must stay inside %s; remove the link." % (
                              key, fname, quote(value).strip("'\""), quote(real, 60).strip("'"),
                              ROOT))
    return rel


def _source(value, key, fname, base):
    """infer's input, by what exists on disk first (stages/device/sources.py): an existing path
    (relative to `base`), else a camera index or a GStreamer pipeline as given."""
    from stages.device.sources import classify
    try:
        kind = classify(value, os.path.join(ROOT, _relative(value, base)))
    except PipelineError as e:
        raise ConfigError("Key '%s' in %s: %s" % (key, fname, e))
    if kind in ("camera", "gstreamer"):
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
            key, fname, quote(value).strip("'\"")))
    return os.path.abspath(full) if rel.startswith("..") else rel


def slice_of(cfg, *sections):
    """The settings a task depends on, as one dict for doit's config_changed."""
    return dict((s, cfg[s]) for s in sections)
