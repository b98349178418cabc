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
KNOWN_VARS = {
    "config": "the pipeline file (default pipeline.yaml)",
    "image": "an image, folder, video, camera index or GStreamer pipeline (infer)",
    "out": "the output folder (infer)",
    "alpha": "the overlay blend 0..1 (infer)",
    "mode": "overlay, mask or both (infer)",
    "backend": "auto, tensorrt or onnxruntime (verify, infer, bench)",
    "n": "iterations (bench)",
    "cpu": "1 to add the ONNX Runtime vs PyTorch CPU comparison (bench)",
}


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
    """Raise ConfigError for a command-line variable no task reads."""
    for name in sorted(cmdline_vars or {}):
        if name not in KNOWN_VARS:
            raise ConfigError("Unknown variable '%s=' on the command line: known variables are %s." % (
                name, ", ".join(sorted(KNOWN_VARS))))


def fail_at_load(error):
    """Stop dodo.py loading with one sentence and exit code 2 (no traceback)."""
    sys.stderr.write("error: %s\n" % error)
    sys.exit(2)


class Reporter(ConsoleReporter):
    """doit's console reporter, printing our errors as one line instead of a framed block."""

    def _write_failure(self, result, write_exception=True):
        fail = result["exception"]
        message = getattr(fail, "message", "") or ""
        if message.startswith(MARK):
            self.write("error in %s: %s\n" % (result["task"].name, message[len(MARK):]))
            return
        ConsoleReporter._write_failure(self, result, write_exception)

    def complete_run(self):
        ours = [r for r in self.failures if (getattr(r["exception"], "message", "") or "").startswith(MARK)]
        self.failures = [r for r in self.failures if r not in ours]
        ConsoleReporter.complete_run(self)
