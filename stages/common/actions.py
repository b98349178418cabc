"""The one place that turns PipelineErrors into failed doit tasks and exit codes.

`run(fn, ...)` wraps a stage function as a doit python-action. `Reporter` prints a failed
task as one line, `error in TASK: sentence`, with no traceback. `check_vars` rejects
unknown command-line variables such as `imgae=x`."""
import importlib
import sys

from doit.exceptions import TaskFailed
from doit.reporter import ConsoleReporter

from stages.common.errors import ConfigError, PipelineError

MARK = "PIPELINE-ERROR: "
def resolve(fn):
    """A callable, or "package.module:function" imported only when the task runs (keeps
    `doit list` free of numpy, cv2, torch...)."""
    if callable(fn):
        return fn
    module, name = fn.split(":")
    return getattr(importlib.import_module(module), name)


def run(fn, *args, **kwargs):
    """A doit python-action calling fn(*args, **kwargs); PipelineError -> TaskFailed(sentence)."""
    def action():
        try:
            result = resolve(fn)(*args, **kwargs)
        except PipelineError as e:
            return TaskFailed(MARK + str(e))
        return result if isinstance(result, dict) else None
    action.__name__ = fn if isinstance(fn, str) else getattr(fn, "__name__", "action")
    return action


def check_vars(cmdline_vars):
    """Raise ConfigError for a command-line variable no task reads; return the others as the
    overrides stages.common.config.load applies (`config` is the pipeline file, not a key)."""
    from stages.common.schema import VARIABLES
    for name in sorted(cmdline_vars or {}):
        if name not in VARIABLES:
            raise ConfigError("Unknown variable '%s=' on the command line: known variables are %s." % (
                name, ", ".join(sorted(VARIABLES))))
    return dict((k, v) for k, v in (cmdline_vars or {}).items() if k != "config")


def fail_at_load(error):
    """Stop dodo.py loading with one sentence and exit code 2 (no traceback)."""
    sys.stderr.write("error: %s\n" % error)
    sys.exit(2)


class Reporter(ConsoleReporter):
    """doit's console reporter, printing our errors as one line instead of a framed block.
    Only the public reporter API (add_failure) is overridden: it is the same on doit 0.34 and 0.37."""

    def add_failure(self, task, fail):
        message = getattr(fail, "message", "") or ""
        if message.startswith(MARK):
            self.write("error in %s: %s\n" % (task.name, message[len(MARK):]))
            return
        ConsoleReporter.add_failure(self, task, fail)
