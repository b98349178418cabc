"""doit does not look at a task's targets once they exist: a damaged golden file or model.onnx
would stay in place, and plain `doit` would call everything up to date. `targets_intact` is the
uptodate check that makes the link owning a damaged (or replaced) output run again.

After a successful run it records, per target, its size, mtime and sha256. A check hashes files
up to 1 MiB (manifests, sidecars, golden files) every time; a larger one (model.onnx, the bundle)
only when its size is the same and its mtime is not, as doit does for file_dep: so a no-op `doit`
hashes a few small files, and touching a file without changing it reruns nothing. Consumers
still check the real hashes (runtime.golden, runtime.backends, EngineFolder)."""
import os

from runtime.files import sha256_file

SAVER_KEY = "_targets_intact"
HASH_ALWAYS = 1 << 20


def record(path):
    """[size, mtime_ns, sha256] of a file, or None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, sha256_file(path)]


def unchanged(path, last):
    """True when `path` still holds what `last` (a record) describes."""
    try:
        st = os.stat(path)
    except OSError:
        return last is None
    if not isinstance(last, list) or len(last) != 3 or st.st_size != last[0]:
        return False
    if st.st_size > HASH_ALWAYS and st.st_mtime_ns == last[1]:
        return True
    return sha256_file(path) == last[2]


class targets_intact(object):
    """uptodate: False when a target differs from what this task wrote last time."""

    def __init__(self, targets):
        self.targets = list(targets)
        self.changed = []

    def configure_task(self, task):
        task.value_savers.append(lambda: {SAVER_KEY: dict((t, record(t)) for t in self.targets)})

    def __call__(self, task, values):
        last = values.get(SAVER_KEY)
        if not isinstance(last, dict):
            self.changed = ["(no record yet)"]
            return False  # never vouch for targets nobody fingerprinted: rerun once, then record
        self.changed = [t for t in self.targets if not unchanged(t, last.get(t))]
        return not self.changed

    def __repr__(self):
        return "targets changed since this link wrote them: %s" % (", ".join(self.changed)
                                                                   or "none")
