"""Writes and integrity: every artifact write goes through a temp file and a rename (an
interrupted write leaves the old file, the final path never holds part of the new one); the
damaged-output check catches a large file of the same size; a task with no integrity record is not
trusted; the engine folder refuses a sidecar with an identity field missing; ONNX Runtime is judged
by the fp32 limits."""
import os
import pytest

from runtime import files
from runtime.engine_folder import IDENTITY_KEYS, EngineFolder
from runtime.errors import EngineError
from runtime.sidecar import FORMAT
from stages.common import intact

OLD = b"old artifact\n" * 100


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("writer,value", [
    (files.write_bytes, b"new" * 1000), (files.write_text, u"new \u00e9" * 1000),
    (files.write_json, {"new": list(range(1000))})])
def test_a_write_interrupted_mid_way_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch,
                                                                     writer, value):
    path = str(tmp_path / "artifact")
    with open(path, "wb") as f:
        f.write(OLD)
    real_fsync = os.fsync

    def fail_after_half(fd):  # the new bytes are in the temp file; the process dies here
        raise Interrupted
    monkeypatch.setattr(os, "fsync", fail_after_half)
    with pytest.raises(Interrupted):
        writer(path, value)
    monkeypatch.setattr(os, "fsync", real_fsync)
    with open(path, "rb") as f:
        assert f.read() == OLD
    assert os.listdir(str(tmp_path)) == ["artifact"]  # the temp file is gone too
    writer(path, value)
    with open(path, "rb") as f:
        assert f.read() != OLD


def test_the_final_path_never_holds_part_of_a_new_artifact(tmp_path, monkeypatch):
    """When the new bytes are all written (at their fsync), the final path still holds the old
    file: the data went to a temp file beside it (same filesystem), renamed onto it after."""
    path = str(tmp_path / "model.engine")
    new = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.write(OLD)
    seen, opened = [], []
    real_open, real_fsync = open, os.fsync

    def watching_open(name, mode="r", *args, **kwargs):
        if "w" in mode or "a" in mode or "+" in mode:
            opened.append(os.path.abspath(name))
        return real_open(name, mode, *args, **kwargs)

    def fsync(fd):
        with real_open(path, "rb") as g:
            seen.append(g.read())
        return real_fsync(fd)
    import builtins
    monkeypatch.setattr(builtins, "open", watching_open)
    monkeypatch.setattr(os, "fsync", fsync)
    files.write_bytes(path, new)
    monkeypatch.setattr(builtins, "open", real_open)
    assert opened and os.path.abspath(path) not in opened
    assert all(os.path.dirname(p) == str(tmp_path) for p in opened)  # beside it: one filesystem
    assert seen == [OLD]
    with open(path, "rb") as f:
        assert f.read() == new


def test_artifact_writes_rename_a_finished_temp_file_onto_the_path(tmp_path, monkeypatch):
    path = str(tmp_path / "golden.json")
    renames = []
    real_replace = os.replace

    def replace(src, dst):
        with open(src, "rb") as f:
            renames.append((src, dst, f.read()))
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    files.write_json(path, {"a": 1})
    assert len(renames) == 1
    src, dst, data = renames[0]
    assert dst == path and src != path and data == b'{\n  "a": 1\n}\n'


def test_the_engine_folder_writes_each_file_through_a_temp_file(tmp_path, monkeypatch):
    folder = EngineFolder(str(tmp_path / "engine"))
    renamed = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda s, d: (renamed.append(d), real_replace(s, d)))
    folder.write(b"plan", sidecar_meta(), {"precision": "fp16"}, dict(HERE), {}, 1.0, "8.2",
                 cache=b"cache")
    folder.write_log(["line"], seconds=1.0)
    assert sorted(renamed) == sorted([folder.engine, folder.sidecar, folder.timing_cache,
                                      folder.build_log])


# --- the damaged-output check (stages/common/intact.py) -------------------------------------

LARGE = intact.HASH_ALWAYS * 3 + 17


def dead_pid():
    import subprocess
    import sys
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


DEAD = dead_pid()


def temp(base, tag="abcd1234", ext="", pid=None):
    """A temp name as runtime.files makes them, left by the process `pid` (a gone one)."""
    return ".%s.%s%d-%s.tmp%s" % (base, files.TEMP_MARK, DEAD if pid is None else pid, tag, ext)


def write(path, data, mtime_ns=None):
    with open(path, "wb") as f:
        f.write(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def checker(tmp_path, *names):
    targets = [str(tmp_path / n) for n in names]
    check = intact.targets_intact(targets)

    class Task(object):
        value_savers = []
    check.configure_task(Task)
    return check, targets, lambda: Task.value_savers[0]()


@pytest.mark.parametrize("size", [LARGE, intact.HASH_ALWAYS + 1, 100])
def test_a_damaged_file_of_the_same_size_with_a_new_mtime_is_caught(tmp_path, size):
    check, (path,), save = checker(tmp_path, "model.onnx")
    data = bytearray(os.urandom(size))
    write(path, bytes(data), 10 ** 18)
    values = save()
    assert check(None, values)
    data[size // 2] ^= 0xFF  # one flipped byte in the middle: same size, another mtime
    write(path, bytes(data), 10 ** 18 + 10 ** 9)
    assert not check(None, values) and check.changed == [path]


def test_a_large_file_rewritten_with_its_bytes_and_a_new_mtime_is_still_trusted(tmp_path):
    check, (path,), save = checker(tmp_path, "model.onnx")
    data = os.urandom(LARGE)
    write(path, data, 10 ** 18)
    values = save()
    write(path, data, 10 ** 18 + 10 ** 9)  # touched: same bytes, so it is hashed and trusted
    assert check(None, values)


def test_a_small_damaged_file_with_its_mtime_restored_is_caught(tmp_path):
    """Files up to HASH_ALWAYS are hashed every time, whatever their mtime says."""
    check, (path,), save = checker(tmp_path, "golden.json")
    write(path, b"x" * 1000, 10 ** 18)
    values = save()
    write(path, b"y" + b"x" * 999, 10 ** 18)
    assert not check(None, values)


def test_size_change_missing_file_and_a_task_with_no_record_are_not_trusted(tmp_path):
    check, (a, b), save = checker(tmp_path, "a.bin", "b.bin")
    write(a, os.urandom(LARGE), 10 ** 18)
    write(b, b"small", 10 ** 18)
    values = save()
    assert check(None, values)
    assert not check(None, {})  # no integrity record: rerun once
    assert not check(None, {intact.SAVER_KEY: None})
    assert not check(None, {intact.SAVER_KEY: {}})  # a record without these targets
    write(a, os.urandom(LARGE + 1), 10 ** 18)  # another size, same mtime
    assert not check(None, values) and check.changed == [a]
    os.remove(a)
    assert not check(None, values)


def test_a_target_that_was_missing_and_still_is_counts_as_unchanged(tmp_path):
    check, (path,), save = checker(tmp_path, "not-written")
    values = save()
    assert values[intact.SAVER_KEY] == {path: None} and check(None, values)
    write(path, b"now it exists")
    assert not check(None, values)


# --- the engine folder's compatibility check -------------------------------------------------

HERE = {"gpu": "NVIDIA Tegra X1", "compute_capability": "5.3", "cuda": "10.2",
        "tensorrt": "8.2.1.8", "l4t": "32.7.1"}


def sidecar_meta():
    return {"format": FORMAT, "labels": ["a"], "palette": [[0, 0, 0]], "input": {}, "output": {},
            "preprocess": {}, "onnx_sha256": "x"}


@pytest.mark.parametrize("missing", IDENTITY_KEYS, ids=lambda k: "without-" + k)
def test_a_sidecar_with_an_identity_field_missing_is_refused(tmp_path, missing):
    folder = EngineFolder(str(tmp_path / "engine"))
    device = dict((k, v) for k, v in HERE.items() if k != missing)
    folder.write(b"plan", sidecar_meta(), {"precision": "fp16"}, device, {}, 1.0, "8.2")
    with pytest.raises(EngineError) as e:
        folder.check_compatible(dict(HERE))
    assert folder.engine in str(e.value)
    folder.write(b"plan", sidecar_meta(), {"precision": "fp16"}, dict(HERE), {}, 1.0, "8.2")
    folder.check_compatible(dict(HERE))


@pytest.mark.parametrize("missing", ["sha256", "device", "settings"])
def test_a_sidecar_without_its_engine_record_fields_is_refused(tmp_path, missing):
    folder = EngineFolder(str(tmp_path / "engine"))
    meta = folder.write(b"plan", sidecar_meta(), {"precision": "fp16"}, dict(HERE), {}, 1.0, "8")
    del meta["engine"][missing]
    files.write_json(folder.sidecar, meta)
    with pytest.raises(EngineError):
        folder.read()
    assert folder.recorded_sha256() is None


# --- the backend's default precision ---------------------------------------------------------

def test_onnx_runtime_is_judged_by_the_fp32_limits(tmp_path):
    """verify applies cfg["verify"][backend.precision]: ONNX Runtime runs model.onnx in fp32."""
    pytest.importorskip("onnxruntime")
    from test_bite_engine import tiny_onnx
    from runtime import sidecar
    from runtime.backends import open_backend
    onnx_dir = tmp_path / "onnx"
    data = tiny_onnx()
    files.write_bytes(str(onnx_dir / "model.onnx"), data)
    manifest = {"input": {"height": 1, "width": 4}, "labels": ["a", "b", "c", "d"],
                "mean": [0, 0, 0], "std": [1, 1, 1], "rescale_factor": 1.0}
    files.write_json(str(onnx_dir / "model.json"), sidecar.model_sidecar(
        manifest, "pillow13", [1, 4], files.sha256_bytes(data), []))
    backend = open_backend("onnxruntime", onnx_path=str(onnx_dir / "model.onnx"))
    assert backend.precision == "fp32" and backend.describe()["precision"] == "fp32"
    assert open_backend("auto", None, str(onnx_dir / "model.onnx")).precision == "fp32"


# --- what the first mutation run of files.py and intact.py let through ------------------------

def test_a_file_of_exactly_hash_always_bytes_is_hashed_every_time(tmp_path):
    check, (path,), save = checker(tmp_path, "golden.npy")
    data = bytearray(intact.HASH_ALWAYS)
    write(path, bytes(data), 10 ** 18)
    values = save()
    data[7] = 1
    write(path, bytes(data), 10 ** 18)  # same size, same mtime, other bytes
    assert not check(None, values)


def test_a_large_file_with_its_size_and_mtime_is_not_hashed_again(tmp_path, monkeypatch):
    check, (path,), save = checker(tmp_path, "model.onnx")
    write(path, os.urandom(LARGE), 10 ** 18)
    values = save()

    def no_hashing(path, *args):
        raise AssertionError("hashed %s" % path)
    monkeypatch.setattr(intact, "sha256_file", no_hashing)
    assert check(None, values)


def test_the_check_says_which_targets_changed(tmp_path):
    check, (a, b), save = checker(tmp_path, "a.json", "b.json")
    assert repr(check) == "targets changed since this link wrote them: none"
    write(a, b"a")
    write(b, b"b")
    assert not check(None, {}) and repr(check).endswith(": (no record yet)")
    values = save()
    assert check(None, values) and repr(check).endswith(": none")
    write(b, b"B")
    assert not check(None, values) and repr(check).endswith(": %s" % b)


def test_json_artifacts_are_written_with_sorted_keys(tmp_path):
    a, b = str(tmp_path / "a.json"), str(tmp_path / "b.json")
    files.write_json(a, {"z": 1, "a": {"y": 2, "b": 3}})
    files.write_json(b, {"a": {"b": 3, "y": 2}, "z": 1})
    with open(a, "rb") as f, open(b, "rb") as g:
        assert f.read() == g.read() == b'{\n  "a": {\n    "b": 3,\n    "y": 2\n  },\n  "z": 1\n}\n'


@pytest.mark.parametrize("rel,link", [
    ("artifacts/onnx/model.json", "doit onnx"), ("artifacts/golden/golden.json", "doit golden"),
    ("artifacts/engine/nano/model.json", "doit build_engine"),
    ("artifacts/verify/onnx/report.json", "doit onnx"),  # the nearest enclosing link folder
    ("artifacts/kernels/sm53/x.json", "doit runtime_check"), ("artifacts/other/onnx", "doit"),
    ("elsewhere.json", "doit")])
def test_a_damaged_json_artifact_names_its_file_and_the_link_that_writes_it(tmp_path, rel, link):
    from runtime.errors import ArtifactError
    path = str(tmp_path / rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for data, why in ((b"", "empty"), (b"  \n", "empty"), (b'{"a": ', "not valid JSON"),
                      (b"\xff\xfe{}", "not valid JSON")):
        with open(path, "wb") as f:
            f.write(data)
        with pytest.raises(ArtifactError) as e:
            files.read_json(path)
        assert str(e.value) == "%s is damaged (%s): rerun `%s` to write it again." % (
            path, why, link)
    with open(path, "wb") as f:
        f.write(u'{"caf\u00e9": 1}'.encode("utf-8"))
    assert files.read_json(path) == {u"caf\u00e9": 1}
    os.remove(path)
    with pytest.raises(OSError):
        files.read_json(path)


def test_a_staged_folder_replaces_the_old_one_whole(tmp_path):
    folder = str(tmp_path / "golden")
    staged = files.staged_dir(folder)
    assert os.path.dirname(staged) == str(tmp_path) and os.listdir(staged) == []
    assert os.path.basename(staged).startswith(".golden.") and staged.endswith(".tmp")
    assert os.stat(staged).st_mode & 0o777 == files.EXEC_MODE
    with open(os.path.join(staged, "new"), "w") as f:
        f.write("1")
    files.replace_dir(staged, folder)  # no folder yet: a rename
    assert os.listdir(folder) == ["new"] and os.listdir(str(tmp_path)) == ["golden"]
    second = files.staged_dir(folder)
    with open(os.path.join(second, "newer"), "w") as f:
        f.write("2")
    files.replace_dir(second, folder)
    assert os.listdir(folder) == ["newer"] and os.listdir(str(tmp_path)) == ["golden"]


def test_stale_temps_older_than_the_start_go_and_everything_else_stays(tmp_path, monkeypatch):
    root = str(tmp_path)
    start = 2000000000.0
    names = {"a/" + temp("model.onnx"): start - 1, "a/" + temp("x", ext=".png"): start - 5,
             "b/" + temp("model.onnx", "export"): start - 9, "b/" + temp("y"): start,  # not older
             "b/model.onnx": start - 9, "b/notes.export": start - 9,  # not ours
             "b/" + temp("z", pid=os.getpid()): start - 9,  # this process's own: alive
             "c/" + temp("golden") + "/inner.npy": start - 9}
    for rel, t in names.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("x")
        os.utime(path, (t, t))
    os.utime(os.path.join(root, "c/" + temp("golden")), (start - 9, start - 9))
    target = str(tmp_path / "outside")
    os.makedirs(target)
    os.symlink(target, os.path.join(root, "c/" + temp("link")))
    os.utime(os.path.join(root, "c/" + temp("link")), (start - 9, start - 9),
             follow_symlinks=False)
    gone = files.remove_stale_temps(root, start)
    assert sorted(os.path.relpath(p, root) for p in gone) == sorted([
        "a/" + temp("model.onnx"), "a/" + temp("x", ext=".png"),
        "b/" + temp("model.onnx", "export"), "c/" + temp("golden"), "c/" + temp("link")])
    mine = "b/" + temp("z", pid=os.getpid())
    for kept in ("b/" + temp("y"), "b/model.onnx", "b/notes.export", mine):
        assert os.path.isfile(os.path.join(root, kept))
    assert os.path.isdir(target)


def test_a_temp_that_cannot_be_removed_does_not_stop_the_others(tmp_path, monkeypatch):
    root = str(tmp_path)
    for name in (temp("a"), temp("b"), temp("c")):
        with open(os.path.join(root, name), "w") as f:
            f.write("x")
    real_remove = os.remove

    def remove(path):
        if os.path.basename(path) == temp("b"):
            raise OSError("busy")
        real_remove(path)
    monkeypatch.setattr(os, "remove", remove)
    gone = files.remove_stale_temps(root, 4000000000.0)
    assert sorted(os.path.basename(p) for p in gone) == sorted([temp("a"), temp("c")])


def test_one_young_or_busy_temp_does_not_stop_the_scan_of_its_folder(tmp_path, monkeypatch):
    """Ten folders, each with a temp too young to remove, one that cannot be removed and one
    stale one: whatever order a folder lists them in, every stale one goes."""
    root, start = str(tmp_path), 2000000000.0
    for d in range(10):
        for name, t in (("young%d" % d, start + 1), ("busy%d" % d, start - 9),
                        ("stale%d" % d, start - 9)):
            path = os.path.join(root, "d%d" % d, temp(name))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("x")
            os.utime(path, (t, t))
    real_remove = os.remove

    def remove(path):
        if os.path.basename(path).startswith(".busy"):
            raise OSError("busy")
        real_remove(path)
    monkeypatch.setattr(os, "remove", remove)
    gone = files.remove_stale_temps(root, start)
    assert sorted(os.path.basename(p) for p in gone) == sorted(
        temp("stale%d" % d) for d in range(10))


def test_the_check_lists_every_changed_target(tmp_path):
    check, (a, b), save = checker(tmp_path, "a.json", "b.json")
    write(a, b"a")
    write(b, b"b")
    values = save()
    write(a, b"A")
    write(b, b"B")
    assert not check(None, values)
    assert repr(check) == "targets changed since this link wrote them: %s, %s" % (a, b)
