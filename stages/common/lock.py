"""One doit run at a time per artifacts folder: `<artifacts>/.doit.json.lock`, an fcntl lock held
from
dodo.py's load (before doit reads its state file) until the process exits. A second run in the
same folder says so in one line and waits; it then reads the first run's final state, so the
links the first run made are up to date for it. Commands that only read (list, info, help,
dumpdb) take no lock. Once the lock is held, temp files a killed run left are removed."""
import fcntl
import os
import sys
import time

from runtime.files import remove_stale_temps

LOCK_NAME = ".doit.json.lock"  # beside doit's state file, which it guards (with the artifacts)
READ_ONLY_COMMANDS = ("list", "info", "help", "dumpdb", "tabcompletion")
_held = {}  # artifacts folder -> open file: the lock lives as long as the process


def doit_command(argv):
    """The doit sub-command in argv[1:] ('run' when none is named)."""
    for arg in argv[1:]:
        if arg.startswith("-") or "=" in arg:
            continue
        return arg
    return "run"


def needs_lock(argv):
    return doit_command(argv) not in READ_ONLY_COMMANDS


def acquire(artifacts, out=None):
    """Hold the lock of `artifacts` for this process (waiting for another run if needed), then
    remove stale temp files. Returns the paths removed. OSError (read-only folder) propagates."""
    if artifacts in _held:
        return []
    out = out or sys.stderr
    path = os.path.join(artifacts, LOCK_NAME)
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError):
        f.seek(0)
        holder = f.read().strip() or "another process"
        out.write("doit: another doit run (pid %s) is using %s; waiting for it to finish.\n" % (
            holder, artifacts))
        out.flush()
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    started = time.time()
    f.seek(0)
    f.truncate()
    f.write("%d\n" % os.getpid())
    f.flush()
    _held[artifacts] = f
    gone = remove_stale_temps(artifacts, started)
    if gone:
        out.write("doit: removed %d temp file(s) an interrupted run left in %s.\n" % (
            len(gone), artifacts))
    return gone
