"""Streams: the order of outputs when a frame's side work is slow (sequential=1 and pipelined), and
compare_modes never calling two empty streams identical. The lock: doit's read-only commands
never take it, every command that can write does."""
import fcntl
import os
import threading
import time

import pytest

from runtime.stream import compare_modes, run_stream
from stages.common import actions, lock


def logged_stream(pipelined, n=6, slow=(0, 3)):
    """run_stream over frames 0..n-1 whose side work is slow for `slow`; returns the event log."""
    log, guard = [], threading.Lock()

    def event(*e):
        with guard:
            log.append(e)

    def segment(i):
        event("segment", i)
        return i * 10

    def side(i, result):
        time.sleep(0.05 if i in slow else 0.0)
        event("side", i, result)

    def write(i, result):
        event("write", i, result)
    assert run_stream(iter(range(n)), segment, write, pipelined=pipelined, side=side,
                      workers=3) == n
    return log


def test_sequential_runs_segment_side_then_write_frame_by_frame():
    log = logged_stream(pipelined=False)
    want = []
    for i in range(6):
        want += [("segment", i), ("side", i, i * 10), ("write", i, i * 10)]
    assert log == want


def test_pipelined_writes_in_frame_order_each_after_its_own_side_work():
    log = logged_stream(pipelined=True)
    writes = [e[1] for e in log if e[0] == "write"]
    assert writes == list(range(6)) and all(e[2] == e[1] * 10 for e in log if e[0] != "segment")
    for i in range(6):
        assert log.index(("side", i, i * 10)) < log.index(("write", i, i * 10))
    sides = [e[1] for e in log if e[0] == "side"]
    assert sides != list(range(6))  # the slow side work really finished out of order


def test_without_side_work_sequential_writes_each_frame_after_segmenting_it():
    log = []
    run_stream(iter(range(3)), lambda i: log.append(("segment", i)) or i,
               lambda i, r: log.append(("write", i)), pipelined=False)
    assert log == [("segment", 0), ("write", 0), ("segment", 1), ("write", 1), ("segment", 2),
                   ("write", 2)]


def digest_of(outputs):
    def digest(result):
        return outputs[result]
    return digest


def test_two_empty_streams_are_not_identical():
    report = compare_modes(lambda: iter([]), lambda i: i, lambda i, r: None,
                           digest_of({}))
    assert report["sequential"]["frames"] == report["pipelined"]["frames"] == 0
    assert report["identical"] is False


def test_identical_only_when_every_frame_matches():
    outputs = {0: b"a", 1: b"b", 2: b"c"}
    same = compare_modes(lambda: iter(range(3)), lambda i: i, lambda i, r: None,
                         digest_of(outputs))
    assert same["identical"] is True and same["pipelined"]["digests"] == 3
    calls = []

    def drifting(i):  # the second pass (pipelined) gives another output for frame 2
        calls.append(i)
        return i if len(calls) <= 3 or i != 2 else 1
    other = compare_modes(lambda: iter(range(3)), drifting, lambda i, r: None,
                          digest_of(outputs))
    assert other["identical"] is False
    one = compare_modes(lambda: iter(range(1)), lambda i: i, lambda i, r: None,
                        digest_of(outputs))
    assert one["identical"] is True  # one frame is enough to compare


def test_n_frames_of_a_longer_stream_in_both_modes():
    report = compare_modes(lambda: iter(range(10)), lambda i: i, lambda i, r: None,
                           lambda r: b"%d" % r, n=4)
    assert report["sequential"]["frames"] == report["pipelined"]["frames"] == 4
    assert report["identical"] is True


# --- the lock ----------------------------------------------------------------------------

READ_ONLY = [["doit", "list"], ["doit", "info", "build_engine"], ["doit", "help"],
             ["doit", "dumpdb"], ["doit", "tabcompletion"], ["doit", "config=other.yaml", "info"],
             ["doit", "list", "--all"]]
WRITING = [["doit"], ["doit", "build_engine"], ["doit", "-s", "build_engine"],
           ["doit", "run", "onnx"], ["doit", "clean"], ["doit", "forget"], ["doit", "ignore", "x"],
           ["doit", "reset-dep"], ["doit", "strace", "onnx"], ["doit", "auto"],
           ["doit", "config=other.yaml"], ["doit", "verify", "backend=onnxruntime"],
           ["doit", "doctor"], ["doit", "infer", "info"], ["doit", "-n", "2", "bundle"]]


def held_elsewhere(path):
    """True when another open file description cannot take the lock at `path`."""
    if not os.path.exists(path):
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError):
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False


@pytest.fixture
def release_locks():
    yield
    for folder in list(lock._held):
        if "pytest" in folder or "tmp" in folder:
            lock._held.pop(folder).close()


@pytest.mark.parametrize("argv", READ_ONLY, ids=lambda a: " ".join(a[1:]))
def test_read_only_commands_never_take_the_lock(tmp_path, argv, release_locks):
    artifacts = str(tmp_path / "artifacts")
    actions.prepare_artifacts(artifacts, argv)
    assert not held_elsewhere(os.path.join(artifacts, lock.LOCK_NAME))
    assert not lock.needs_lock(argv)


@pytest.mark.parametrize("argv", WRITING, ids=lambda a: " ".join(a[1:]) or "(plain doit)")
def test_every_command_that_can_write_takes_the_lock(tmp_path, argv, release_locks):
    artifacts = str(tmp_path / "artifacts")
    actions.prepare_artifacts(artifacts, argv)
    path = os.path.join(artifacts, lock.LOCK_NAME)
    assert held_elsewhere(path)
    with open(path) as f:
        assert f.read().strip() == str(os.getpid())
    assert lock.needs_lock(argv)
