"""runtime/files.py's rules for what is ours (round 2, issue 25): the `~doit-PID` temp names a
killed run leaves and the next run's cleanup removes, the cleanup's depth (infer's out=), a temp
of a live process kept (and the process left alone), and confine()/own()/check_owned(): once a
doit run confines itself, a folder that resolves outside the project and out= is refused, before
anything is created there."""
import os
import subprocess
import time

import pytest

from runtime import files
from runtime.errors import ArtifactError


def in_a_child_that_dies(work):
    """Run work() in a forked process that is killed (os._exit) the moment work() returns."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
        finally:
            os._exit(9)
    os.waitpid(pid, 0)
    return pid


def listing(folder):
    return sorted(os.listdir(folder))


def test_the_temps_a_killed_run_left_are_removed_by_the_next_runs_cleanup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = str(tmp_path / "onnx")
    model = os.path.join(folder, "model.onnx")
    files.write_bytes(model, b"old model")
    with open(os.path.join(folder, "notes.export"), "w") as f:
        f.write("a user's file")

    def scratch_paths():
        return (files.scratch_path(model, "export", ".onnx"),
                files.scratch_path(model, "candidate"))
    for path in scratch_paths():  # this process's: beside the model, named with our pid
        assert os.path.dirname(path) == folder
        assert files.TEMP_NAME.match(os.path.basename(path)).group("pid") == str(os.getpid())

    def killed_mid_way():
        for path in scratch_paths():
            with open(path, "wb") as f:
                f.write(b"half")
        with files.atomic_path(model) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half a new model")
            os._exit(9)  # killed inside the write: no rename, no clean-up
    pid = in_a_child_that_dies(killed_mid_way)
    left = [n for n in listing(folder) if n not in ("model.onnx", "notes.export")]
    assert len(left) == 3 and all(files.TEMP_NAME.match(n) for n in left)
    assert all(files.TEMP_NAME.match(n).group("pid") == str(pid) for n in left)
    assert listing(str(tmp_path)) == ["onnx"]  # beside model.onnx, nowhere else
    gone = files.remove_stale_temps(folder, time.time() + 60)
    assert sorted(os.path.basename(p) for p in gone) == left
    assert listing(folder) == ["model.onnx", "notes.export"]
    with open(model, "rb") as f:
        assert f.read() == b"old model"


def test_a_temp_of_a_live_process_is_kept_and_the_process_left_alone(tmp_path):
    child = subprocess.Popen(["sleep", "30"])
    try:
        name = ".model.onnx.%s%d-abcd.tmp" % (files.TEMP_MARK, child.pid)
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(str(path), (1000000000.0, 1000000000.0))
        assert files.remove_stale_temps(str(tmp_path), time.time() + 60) == []
        assert path.exists()
        with pytest.raises(subprocess.TimeoutExpired):  # not signalled by the liveness check
            child.wait(timeout=0.3)
    finally:
        child.kill()
        child.wait()


LEVELS = ["", "a", "a/b", "a/b/c"]


def stale_temp_per_level(root):
    for rel in LEVELS:
        folder = os.path.join(root, rel)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, ".v.%s999999999-ab.tmp.mp4" % files.TEMP_MARK), "w") as f:
            f.write("x")


@pytest.mark.parametrize("slash", ["", "/"])
@pytest.mark.parametrize("depth,levels", [(0, 1), (1, 2), (2, 3), (None, 4)])
def test_the_cleanup_searches_depth_levels_below_its_folder(tmp_path, slash, depth, levels):
    root = str(tmp_path / "out")
    stale_temp_per_level(root)
    gone = files.remove_stale_temps(root + slash, time.time() + 60, depth=depth)
    found = sorted(os.path.relpath(os.path.dirname(p), root) for p in gone)
    assert found == sorted(os.path.normpath(os.path.join(".", rel)) for rel in LEVELS[:levels])


# --- confine(), own(), check_owned() ------------------------------------------------------------

@pytest.fixture
def project(tmp_path):
    """(project root, a folder outside it, a symlink in the project that leads outside)."""
    root, outside = tmp_path / "project", tmp_path / "elsewhere"
    (root / "artifacts").mkdir(parents=True)
    outside.mkdir()
    os.symlink(str(outside), str(root / "artifacts" / "link"))
    return str(root), str(outside), str(root / "artifacts" / "link")


def test_unconfined_the_runtime_writes_wherever_it_is_asked(project):
    root, outside, link = project
    files.write_bytes(os.path.join(link, "a.bin"), b"1")  # the runtime as a library: no rule
    assert listing(outside) == ["a.bin"]


def test_a_confined_run_writes_in_its_project_and_refuses_a_link_that_leads_out(project):
    root, outside, link = project
    files.confine(root)
    files.write_json(os.path.join(root, "artifacts", "engine", "model.json"), {"a": 1})
    files.write_bytes(os.path.join(root, "top.bin"), b"1")  # the root itself is inside
    staged = files.staged_dir(os.path.join(root, "artifacts", "golden"))
    assert os.path.dirname(staged) == os.path.join(root, "artifacts")
    for write in (lambda: files.write_bytes(os.path.join(link, "new", "a.bin"), b"1"),
                  lambda: files.staged_dir(os.path.join(link, "new", "golden"))):
        with pytest.raises(ArtifactError) as e:
            write()
        assert str(e.value).startswith("%s resolves to %s, outside the project and out=" % (
            os.path.join(link, "new"), os.path.join(outside, "new")))
    assert listing(outside) == []  # refused before anything was made there


def test_a_folder_beside_the_project_that_shares_its_name_prefix_is_outside(tmp_path):
    root, twin = tmp_path / "project", tmp_path / "project-old"
    root.mkdir()
    files.confine(str(root))
    with pytest.raises(ArtifactError):
        files.write_bytes(str(twin / "a.bin"), b"1")
    assert not twin.exists()


def test_a_folder_owned_later_is_writable_through_its_link_and_only_it(project):
    root, outside, link = project
    files.confine(root)
    files.own(link)  # infer's out= given as the link: its real folder is ours
    files.own(link)
    assert files._OWNED == [os.path.realpath(root), os.path.realpath(outside)]
    files.write_bytes(os.path.join(link, "frame.png"), b"1")
    assert listing(outside) == ["frame.png"]


@pytest.mark.parametrize("path,root,inside", [
    ("/srv/p", "/srv/p", True), ("/srv/p/a", "/srv/p", True), ("/srv/p/a", "/srv/p/", True),
    ("/srv/pa", "/srv/p", False), ("/srv", "/srv/p", False), ("/srv/p/a", "/", True)])
def test_inside_is_by_whole_path_components(path, root, inside):
    assert files.inside(path, root) is inside


def test_an_old_folder_that_cannot_be_removed_leaves_the_new_one_in_place(tmp_path, monkeypatch):
    """replace_dir: the swap stands when a file of the old folder cannot be deleted (held, or a
    permission): what is left is one of our temp folders, for the next run's cleanup."""
    folder = str(tmp_path / "golden")
    os.makedirs(folder)
    for name in ("old.npy", "held.npy"):
        with open(os.path.join(folder, name), "w") as f:
            f.write("old")
    staged = files.staged_dir(folder)
    with open(os.path.join(staged, "new.npy"), "w") as f:
        f.write("new")
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if os.path.basename(path) == "held.npy":
            raise PermissionError(13, "Permission denied", path)
        return real_unlink(path, *args, **kwargs)
    monkeypatch.setattr(os, "unlink", unlink)
    files.replace_dir(staged, folder)
    assert listing(folder) == ["new.npy"]
    left = [n for n in listing(str(tmp_path)) if n != "golden"]
    assert len(left) == 1 and files.TEMP_NAME.match(left[0])
    assert listing(str(tmp_path / left[0])) == ["held.npy"]
