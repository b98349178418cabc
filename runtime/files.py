"""Atomic artifact writes and hashing: the one place that writes artifacts (the runtime owns it;
stages/ re-exports it). Every artifact is written to a temp file in its own directory and
renamed into place, so Ctrl-C or a crash leaves the previous artifact intact. Artifacts get the
mode a plain open() would give (0666 less the umask, 0644 usually), so other users on the device
can read them. Temp files a killed run left behind are removed by `remove_stale_temps`, which the
next run calls once it holds the artifacts folder's lock (stages/common/lock.py)."""
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile

from runtime.errors import ArtifactError

# Our temp names, and only ours: ".NAME.~doit-PID-TAG.tmp[.ext]", where PID is the process that
# made it and TAG is mkstemp's random part or a fixed word (scratch_path). The "~doit-PID-" marker
# makes them unambiguous: a user's notes.export or run.candidate never matches.
TEMP_MARK = "~doit-"
TEMP_NAME = re.compile(r"^\..+\.~doit-(?P<pid>[0-9]+)-[A-Za-z0-9_]+\.tmp(\.[A-Za-z0-9]+)*$")
# which link writes an artifact, by the artifacts sub-folder it lives in (for error messages)
WRITERS = {"checkout": "doit checkout", "golden": "doit golden", "onnx": "doit onnx",
           "engine": "doit build_engine", "kernels": "doit runtime_check", "verify": "doit verify",
           "bundle": "doit bundle"}


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()
FILE_MODE, EXEC_MODE = 0o666 & ~UMASK, 0o777 & ~UMASK  # what open() and mkdir() would give


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    check_owned(folder)  # before makedirs: nothing is created outside what is ours
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp" + suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        if os.path.exists(tmp):
            os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; an artifact is for every user
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def staged_dir(folder):
    """A new empty temp folder beside `folder` (same filesystem, so it can be renamed onto it)."""
    parent = os.path.dirname(os.path.abspath(folder))
    check_owned(parent)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=_temp_prefix(folder), suffix=".tmp", dir=parent)
    os.chmod(tmp, EXEC_MODE)
    return tmp


def replace_dir(staged, folder):
    """Put the staged folder in place of `folder`: the old one goes first, so a crash in between
    leaves the set absent (and its link reruns), never a mix of two runs."""
    if os.path.isdir(folder):
        old = staged_dir(folder)
        os.rmdir(old)
        os.rename(folder, old)
        os.rename(staged, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staged, folder)


def _temp_prefix(path):
    return "." + os.path.basename(path) + "." + TEMP_MARK + str(os.getpid()) + "-"


def scratch_path(path, tag, suffix=""):
    """A fixed temp name beside `path` for an intermediate a link renames or removes itself
    (the onnx link's exported and candidate graphs); the stale-temp cleanup knows it."""
    return os.path.join(os.path.dirname(path), "%s%s.tmp%s" % (_temp_prefix(path), tag, suffix))


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


def remove_stale_temps(folder, older_than, depth=None):
    """Remove our temp files and folders under `folder` (an artifacts folder, or infer's out=):
    names that match TEMP_NAME, made by a process that is gone, last modified before
    `older_than` (a time.time()). Symlinks are never followed (a link itself may go); `depth`
    limits how many folder levels are searched (None: all). Returns the paths removed."""
    gone = []
    top_depth = folder.rstrip(os.sep).count(os.sep)
    for top, dirs, names in os.walk(folder):
        for name in [d for d in dirs if TEMP_NAME.match(d)] + [n for n in names
                                                               if TEMP_NAME.match(n)]:
            path = os.path.join(top, name)
            try:
                if (os.lstat(path).st_mtime >= older_than
                        or _alive(int(TEMP_NAME.match(name).group("pid")))):
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
            except OSError:
                continue
            gone.append(path)
        dirs[:] = [d for d in dirs if not TEMP_NAME.match(d)]
        if depth is not None and top.rstrip(os.sep).count(os.sep) - top_depth >= depth:
            dirs[:] = []
    return gone


# The folders this run may write in (the project, infer's out=): an artifact whose folder
# resolves elsewhere (through a symlink) is refused. Empty: no limit (the runtime as a library).
_OWNED = []  # the folders this process may write in, once confine() switched the rule on
_CONFINED = []


def confine(root):
    """Switch the rule on (a doit run does, for its project root): from now on writes, locks and
    cleanup stay under `root` and the folders own() adds (out=, bench's scratch folder)."""
    own(root)
    _CONFINED[:] = [True]


def own(folder):
    """Let this process write under `folder` (its real path)."""
    real = os.path.realpath(folder)
    if real not in _OWNED:
        _OWNED.append(real)


def inside(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_owned(folder):
    """Refuse to write in `folder` when it resolves (through a symlink) outside every owned
    folder: the one rule for what is ours to create and delete."""
    if not _CONFINED:
        return
    real = os.path.realpath(folder)
    if not any(inside(real, root) for root in _OWNED):
        raise ArtifactError("%s resolves to %s, outside the project and out=: doit writes only "
                            "inside them; if a symlink leads there, remove the link." % (
                                folder, real))


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def rerun_hint(path):
    """The command that rewrites the artifact at `path` (`doit` when its link is not known)."""
    parts = os.path.normpath(path).split(os.sep)
    for part in reversed(parts[:-1]):
        if part in WRITERS:
            return WRITERS[part]
    return "doit"


def read_json(path):
    """A JSON artifact; a damaged one (truncated, not JSON, not UTF-8) is one sentence naming the
    file and the link that writes it (ArtifactError). A missing file stays an OSError."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        raise ArtifactError("%s is damaged (%s): rerun `%s` to write it again." % (
            path, "empty" if not data.strip() else "not valid JSON", rerun_hint(path)))


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()
