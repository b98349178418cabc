"""stages/common/lock.py's lock file itself (round 2, issue 25, after the `hostile` merge): doit
makes its own plain file, with the mode any artifact gets, and refuses a symlink (it would write
its pid into, or create, the file the link points at) or anything else that is not a regular
file standing at that path."""
import os
import stat

import pytest

from runtime import files
from stages.common import lock
from stages.common.errors import PipelineError


@pytest.fixture
def artifacts(tmp_path):
    """An artifacts folder whose lock, if this test takes it, is let go at the end."""
    folder = str(tmp_path / "artifacts")
    os.makedirs(folder)
    yield folder
    held = lock._held.pop(folder, None)
    if held is not None:
        held.close()


def test_the_lock_file_is_a_plain_file_with_the_mode_an_artifact_gets(artifacts):
    assert lock.acquire(artifacts) == []
    info = os.lstat(os.path.join(artifacts, lock.LOCK_NAME))
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == files.FILE_MODE


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_symlink_at_the_lock_path_is_refused_and_what_it_points_at_left_alone(
        tmp_path, artifacts, target_exists):
    target = str(tmp_path / "victim.txt")
    if target_exists:
        with open(target, "w") as f:
            f.write("someone's notes\n")
    path = os.path.join(artifacts, lock.LOCK_NAME)
    os.symlink(target, path)
    with pytest.raises(PipelineError) as e:
        lock.acquire(artifacts)
    assert str(e.value) == ("%s is a symlink: doit makes its own lock file there; delete the "
                            "link." % path)
    if target_exists:
        with open(target) as f:
            assert f.read() == "someone's notes\n"
    else:
        assert not os.path.lexists(target)
    assert artifacts not in lock._held


def test_a_fifo_at_the_lock_path_is_refused(artifacts):
    path = os.path.join(artifacts, lock.LOCK_NAME)
    os.mkfifo(path)
    with pytest.raises(PipelineError) as e:
        lock.acquire(artifacts)
    assert str(e.value) == ("%s is not a regular file: doit makes its own lock file there; "
                            "delete it." % path)
    assert artifacts not in lock._held
