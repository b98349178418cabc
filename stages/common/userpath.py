"""Paths as the user sees them. doit runs tasks in the project root (where dodo.py is), but the
user typed image=, out= and config= in the folder they ran doit in (`doit -k` finds dodo.py from
a subfolder): command-line paths are resolved there, and paths are shown relative to it when they
lie under it, else in full, never as ../../x."""
import os

from stages.common.schema import VARIABLES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def user_dir(default=None):
    """The folder doit was started in (doit.loader.initial_workdir, on doit 0.34 and 0.37), or
    outside a doit run `default` (the project root when None)."""
    try:
        from doit import loader
        found = getattr(loader, "initial_workdir", None)
    except ImportError:
        found = None
    return found or default or ROOT


def shown(path):
    """`path` (absolute, or relative to the project root) as the user would type it."""
    if not isinstance(path, str) or path.isdigit() or "!" in path:
        return path  # a camera index or a GStreamer pipeline
    full = os.path.normpath(os.path.join(ROOT, path))
    rel = os.path.relpath(full, user_dir())
    return full if rel == ".." or rel.startswith(".." + os.sep) else rel


def clipped(text, limit=60):
    return text if len(text) <= limit else text[:limit - 3] + "..."


def variable_error(name, text, spec, cwd, dotted="", reason=""):
    """The sentence for a command-line value that its key refuses (reason: the key's own
    message): named as typed (n=0), with what the variable takes and the keys it sets; for a
    path, the rule it follows, or the key's reason with the variable named as typed."""
    from stages.common.keydoc import accepted
    typed = "%s=%s" % (name, clipped(text))
    if spec.kind in ("path", "source", "paths", "outdir"):
        if spec.kind != "outdir" and not os.path.exists(
                os.path.join(cwd, os.path.expanduser(text))):
            return ("%s on the command line names %s, which does not exist: paths on the command "
                    "line are relative to the folder you run doit in (%s)." % (
                        typed, clipped(text), cwd))
        if reason.startswith("Key '%s' in the command line " % dotted):
            return typed + " on the command line " + reason.split(" in the command line ", 1)[1]
        own = reason.split("Key '%s' in the command line: " % dotted, 1)[-1]
        if own.startswith(name + "="):  # already about what the user typed (a FIFO, say)
            return own
    help_text, keys = VARIABLES[name]
    takes = ("1 or 0 (or true/false, yes/no)" if spec.kind == "bool"
             else accepted(spec, code="", optional=False))
    about = "" if takes in help_text else help_text + "; "
    return "%s on the command line is not valid: %s= takes %s (%sit sets %s)." % (
        typed, name, takes, about, _and(keys))


def _and(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def config_file(value):
    """config=PATH, typed relative to the user's folder, as load() takes it: relative to the
    project root when inside it, else absolute. None: the project's pipeline.yaml."""
    if value is None:
        return "pipeline.yaml"
    full = os.path.normpath(os.path.join(user_dir(), os.path.expanduser(value)))
    rel = os.path.relpath(full, ROOT)
    return full if rel.startswith("..") else rel
