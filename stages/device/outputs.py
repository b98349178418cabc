"""infer's output folder, checked once before any inference: out= must be a folder this user can
write (not a file, not on a read-only filesystem), each input gets its own output names (photo.jpg
and photo.png in one folder do not overwrite each other), and the closing sentence says what was
written only when something was."""
import errno
import os
import tempfile
import time

from stages.common import files
from stages.common.errors import ArtifactError, ConfigError, ImageError
from stages.common.userpath import shown


def check_folder(out):
    """Create out= if needed and prove it writable with a probe file; one sentence otherwise."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError("out=%s is a file: give a folder for the results (it is created if "
                          "needed)." % shown(out))
    files.own(out)  # ours to write in (and to clean our own temps from), symlinked or not
    try:
        os.makedirs(out, exist_ok=True)
        files.remove_stale_temps(out, time.time(), depth=1)  # a killed infer's temp video
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=out)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise ArtifactError("out=%s cannot be written (%s): choose a writable folder with "
                            "out=DIR." % (shown(out), _reason(e)))


def _reason(e):
    if e.errno == errno.EROFS:
        return "read-only file system"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a file stands in its path"
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    return e.strerror or str(e)


def unique_stems(paths):
    """One output stem per input path: the file name without its extension, plus the extension
    where two inputs share a name (photo.jpg -> photo_jpg, photo.png -> photo_png)."""
    def plain(p):
        return os.path.splitext(os.path.basename(p))[0]

    counts = {}
    for p in paths:
        counts[plain(p).lower()] = counts.get(plain(p).lower(), 0) + 1
    stems, used = [], set()
    for p in paths:
        stem = plain(p)
        if counts[stem.lower()] > 1:
            stem = stem + "_" + os.path.splitext(p)[1].lstrip(".").lower()
        base, k = stem, 2
        while stem.lower() in used:
            stem, k = "%s_%d" % (base, k), k + 1
        used.add(stem.lower())
        stems.append(stem)
    return stems


def failure(failed, done, out):
    """The closing error when some inputs could not be read (ImageError); `failed` is the list of
    their paths (a single one is named)."""
    if len(failed) == 1 and not done:
        return ImageError("%s could not be read (see the skipped line above); nothing was "
                          "written: replace it." % failed[0])
    failed = len(failed)
    total = failed + done
    if done:
        return ImageError("%d of %d inputs could not be read (listed above as skipped); the other "
                          "%d were written to %s." % (failed, total, done, shown(out)))
    return ImageError("None of the %d inputs could be read (listed above as skipped); nothing was "
                      "written: replace or remove them." % total)
