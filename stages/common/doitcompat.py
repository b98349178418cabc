"""The doit internals this project touches, each behind one function with a fallback, so the
same code runs on doit 0.34.2 (the Jetson Nano's Python 3.6) and on the host's doit >= 0.36.

- cmdline_vars(): doit_cmd._CMDLINE_VARS (the NAME=VALUE pairs), else parsed from sys.argv;
- config_digest(cc): config_changed._calc_digest(), else the same md5 of the sorted JSON.
The reporter (stages.common.actions.Reporter) uses only doit's public reporter API."""
import hashlib
import json
import sys


def cmdline_vars(argv=None, doit_cmd=None):
    """The command line's NAME=VALUE variables as a dict."""
    if doit_cmd is None:
        from doit import doit_cmd
    found = getattr(doit_cmd, "_CMDLINE_VARS", None) if argv is None else None
    if found is not None:
        return dict(found)
    args = sys.argv[1:] if argv is None else argv
    pairs = [a.split("=", 1) for a in args if "=" in a and not a.startswith("-")]
    return dict((k, v) for k, v in pairs if k.isidentifier())


def config_digest(cc):
    """The digest doit's config_changed stores for cc.config (doit's own when it has one)."""
    calc = getattr(cc, "_calc_digest", None)
    if calc is not None:
        return calc()
    return fallback_digest(cc.config)


def fallback_digest(config):
    """doit's algorithm for dict configs: md5 of the JSON with sorted keys."""
    if isinstance(config, str):
        return config
    data = json.dumps(config, sort_keys=True, default=repr)
    return hashlib.md5(data.encode("utf-8")).hexdigest()
