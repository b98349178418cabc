"""One doit run at a time per artifacts folder: `<artifacts>/.doit.json.lock`, an fcntl lock held
from
dodo.py's load (before doit reads its state file) until the process exits. A second run in the
same folder says so in one line and waits; it then reads the first run's final state, so the
links the first run made are up to date for it. Commands that only read (list, info, help,
dumpdb) take no lock. Once the lock is held, temp files a killed run left are removed."""
import errno
import fcntl
import os
import stat
import sys
import time

from runtime.errors import PipelineError
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


def _open_lock(path):
    """The lock file, opened without following a symlink (a link would make doit write its pid
    into the file it points at) and only if it is a regular file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):
            raise PipelineError("%s is a symlink: doit makes its own lock file there; delete the "
                                "link." % path)
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PipelineError("%s is not a regular file: doit makes its own lock file there; "
                            "delete it." % path)
    return os.fdopen(fd, "a+")


def acquire(artifacts, out=None):
    """Hold the lock of `artifacts` for this process (waiting for another run if needed), then
    remove stale temp files. Returns the paths removed. OSError (read-only folder) propagates."""
    if artifacts in _held:
        return []
    out = out or sys.stderr
    f = _open_lock(os.path.join(artifacts, LOCK_NAME))
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
