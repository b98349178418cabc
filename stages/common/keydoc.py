"""Each setting's accepted values in words, from its schema Key: one text for the README's keys
table (tools/readme_keys.py writes it) and for the messages about command-line variables, so the
two never disagree. ASCII only: the device's Python 3.6 may print under a C locale."""
from stages.common.schema import SCHEMA

KINDS = {
    "bool": "`true` or `false`",
    "str": "text",
    "path": "a path to an existing file",
    "paths": "a list of paths to existing files",
    "strs": "a list of names",
    "outpath": "a folder inside the project",
    "outdir": "a folder, created if needed (may be outside the project)",
    "source": "an image, folder or video path, a camera index or a GStreamer pipeline",
}


def accepted(spec, code="`", optional=True):
    """The values `spec` accepts, e.g. "an integer, at least 1" or "`fp32` or `fp16`";
    optional=False leaves out null (which the command line cannot give)."""
    if spec.kind == "choice":
        text = _either(spec.choices, code)
    elif spec.kind == "strs" and getattr(spec, "choices", None):
        text = "a list of %s, each once" % _either(spec.choices, code).replace(" or ", " and/or ")
    elif spec.kind in ("int", "float"):
        text = ("an integer" if spec.kind == "int" else "a number") + _range(spec)
    else:
        text = KINDS.get(spec.kind, spec.kind)
        if not code:
            text = text.replace("`", "")
    return text + (" (or %snull%s)" % (code, code) if spec.optional and optional else "")


def _either(choices, code):
    names = ["%s%s%s" % (code, c, code) for c in choices]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def _range(spec):
    low, high = getattr(spec, "minimum", None), getattr(spec, "maximum", None)
    if low is not None and high is not None:
        return " from %s to %s" % (_num(low), _num(high))
    if low is not None:
        return ", at least %s" % _num(low)
    if high is not None:
        return ", at most %s" % _num(high)
    return ""


def _num(value):
    return "%d" % value if float(value).is_integer() else "%g" % value


def keys(schema=None, prefix=""):
    """Every setting as (dotted name, Key), in the schema's order."""
    out = []
    for name, spec in (SCHEMA if schema is None else schema).items():
        if isinstance(spec, dict):
            out.extend(keys(spec, prefix + name + "."))
        else:
            out.append((prefix + name, spec))
    return out
