"""The one place that turns PipelineErrors into failed doit tasks and exit codes.

`run(fn, ...)` wraps a stage function as a doit python-action. `Reporter` prints a failed
task as one line, `error in TASK: sentence`, with no traceback. `check_vars` rejects
unknown command-line variables such as `imgae=x`. The machine's faults are handled here too:
an OSError (read-only folder, full disk) or Ctrl-C in a task is one line and a failed task;
anywhere else, `install_handlers` turns them (and a damaged doit state file) into one line."""
import errno
import importlib
import json
import os
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
        except OSError as e:
            return TaskFailed(MARK + os_error_sentence(e))
        except KeyboardInterrupt:
            return TaskFailed(MARK + INTERRUPTED)
        return result if isinstance(result, dict) else None
    action.__name__ = fn if isinstance(fn, str) else getattr(fn, "__name__", "action")
    return action


def check_vars(cmdline_vars):
    """Raise ConfigError for a command-line variable no task reads; return the others as the
    overrides stages.common.config.load applies (`config` is the pipeline file, not a key)."""
    from stages.common.schema import VARIABLES
    from stages.common.settings_file import quote
    for name in sorted(cmdline_vars or {}):
        if name not in VARIABLES:
            raise ConfigError("Unknown variable '%s=' on the command line: known variables are "
                              "%s." % (quote(name, 60).strip("'\""), ", ".join(sorted(VARIABLES))))
    return dict((k, v) for k, v in (cmdline_vars or {}).items() if k != "config")


INTERRUPTED = ("interrupted (Ctrl-C); every artifact is whole (written to a temp file, then "
               "renamed): run the same doit command again to finish.")


def os_error_sentence(e):
    """One sentence for an OSError of the machine (never 'try another opset')."""
    where = e.filename or "a file"
    if e.errno == errno.ENOSPC:
        return ("No space left on the device%s: free some space (df -h) and rerun; the previous "
                "artifacts are intact." % (" while writing %s" % e.filename if e.filename else ""))
    if e.errno == errno.EROFS:
        return ("%s is on a read-only file system: remount it read-write, or set `artifacts:` "
                "(or out=) to a writable folder." % where)
    if e.errno in (errno.EACCES, errno.EPERM):
        return ("Permission denied for %s: make it writable for this user, or set `artifacts:` "
                "(or out=) to a folder you own." % where)
    if e.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return ("%s: a file stands where a folder is expected, or a folder where a file is: "
                "move it away and rerun." % where)
    return "%s: %s: check the disk and its permissions, then rerun." % (where, e.strerror or e)


def check_dep_file(path):
    """Refuse a damaged doit state file (a run killed while doit saved it) with one sentence,
    before doit reads it (doit's own message is a traceback)."""
    if not os.path.isfile(path):
        return
    with open(path, "rb") as f:
        data = f.read()
    try:
        state = json.loads(data.decode("utf-8"))
        ok = isinstance(state, dict) and all(isinstance(v, dict) for v in state.values())
    except ValueError:
        ok = False
    if not ok:
        raise PipelineError("%s (doit's record of what ran) is damaged (%s): delete it; the next "
                            "doit reruns every link once." % (path, "empty" if not data.strip() else
                                                               "not a valid state file"))


def install_handlers():
    """Ctrl-C, an OSError or doit's database error outside a task: one line, no traceback."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            sys.stderr.write("error: " + INTERRUPTED + "\n")
        elif issubclass(kind, OSError):
            sys.stderr.write("error: " + os_error_sentence(value) + "\n")
        elif kind.__name__ == "DatabaseException":
            sys.stderr.write("error: doit's state file is damaged (%s): delete it and rerun.\n" %
                             str(value).splitlines()[0])
        else:
            previous(kind, value, tb)
    sys.excepthook = hook


DEP_FILE = ".doit.json"  # doit's state, one per artifacts folder (dodo.py's DOIT_CONFIG)


def prepare_artifacts(artifacts, argv=None):
    """Before doit reads its state: create the artifacts folder, hold its lock (a second run
    waits), remove temp files a killed run left, and refuse a damaged state file."""
    from stages.common import files, lock
    from stages.common.config import ROOT
    argv = sys.argv if argv is None else argv
    files.confine(ROOT)  # the one rule: writes, locks and cleanup stay in the project (and out=)
    created = not os.path.isdir(artifacts)
    os.makedirs(artifacts, exist_ok=True)
    files.check_owned(artifacts)
    if created:
        ignore_all(artifacts)
    if lock.needs_lock(argv):
        lock.acquire(artifacts)
    if lock.doit_command(argv) not in ("list", "help", "tabcompletion"):  # they never read it
        check_dep_file(os.path.join(artifacts, DEP_FILE))


def ignore_all(folder):
    """A `.gitignore` of `*` in an artifacts folder this run created, so an `artifacts:` other
    than the project's git-ignored `artifacts/` never shows up as untracked files."""
    from stages.common.files import write_bytes
    write_bytes(os.path.join(folder, ".gitignore"), b"# written by doit: outputs, not sources\n*\n")


def fail_at_load(error):
    """Stop dodo.py loading with one sentence and exit code 2 (no traceback)."""
    text = os_error_sentence(error) if isinstance(error, OSError) else str(error)
    sys.stderr.write("error: %s\n" % text)
    sys.exit(2)


class Reporter(ConsoleReporter):
    """doit's console reporter, printing our errors as one line instead of a framed block.
    Only the public reporter API (add_failure, skip_uptodate) is overridden: it is the same on
    doit 0.34 and 0.37."""

    def add_failure(self, task, fail):
        message = getattr(fail, "message", "") or ""
        if message.startswith(MARK):
            self.write("error in %s: %s\n" % (task.name, message[len(MARK):]))
            return
        ConsoleReporter.add_failure(self, task, fail)

    def skip_uptodate(self, task):
        """`-- TASK`, then what the task's meta "up_to_date" ("module:function", args...) returns:
        e.g. verify's last table, so an up-to-date run still shows its result."""
        ConsoleReporter.skip_uptodate(self, task)
        note = (getattr(task, "meta", None) or {}).get("up_to_date")
        if note:
            self.write(resolve(note[0])(*note[1:]))
