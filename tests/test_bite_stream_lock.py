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
def release_locks(tmp_path, monkeypatch):
    """tmp_path is the project (prepare_artifacts writes only inside it); the folders a test
    made this process own and the locks it took end with the test."""
    from runtime import files
    from stages.common import config
    monkeypatch.setattr(files, "_OWNED", [])
    monkeypatch.setattr(config, "ROOT", str(tmp_path))
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


# --- what the first mutation run of runtime/stream.py and lock.py let through -----------------

def finishes(target, seconds=20):
    """Run target() in a thread; True when it ended within `seconds` (False: it hangs)."""
    box = []
    t = threading.Thread(target=lambda: box.append(_outcome(target)))
    t.daemon = True
    t.start()
    t.join(seconds)
    return box[0] if box else "hangs"


def _outcome(target):
    try:
        return ("returned", target())
    except Exception as e:  # the stream's own error, handed back for the assertion
        return ("raised", e)


def test_a_slow_decoder_and_a_slow_writer_do_not_make_up_frames():
    """Queues empty (or full) for longer than the polling interval are waited on, not skipped."""
    def frames():
        for i in range(3):
            time.sleep(0.12)
            yield i
    written = []

    def write(i, r):
        time.sleep(0.12)
        written.append((i, r))
    assert finishes(lambda: run_stream(frames(), lambda i: i * 2, write)) == ("returned", 3)
    assert written == [(0, 0), (1, 2), (2, 4)]


def test_a_slow_segment_with_a_full_inbox_loses_no_frame():
    """The reader waits on a full inbox for longer than a poll (0.08 s > POLL_S) and goes on."""
    seen = []

    def segment(i):
        time.sleep(0.08)
        return i
    assert finishes(lambda: run_stream(iter(range(8)), segment, lambda i, r: seen.append(i),
                                       depth=2), seconds=10) == ("returned", 8)
    assert seen == list(range(8))


def test_a_slow_writer_with_a_full_outbox_loses_no_frame():
    written = []

    def write(i, r):
        time.sleep(0.08)
        written.append(r)
    assert finishes(lambda: run_stream(iter(range(8)), lambda i: i * 3, write, depth=2),
                    seconds=10) == ("returned", 8)
    assert written == [i * 3 for i in range(8)]


def test_an_error_in_segment_with_a_full_inbox_ends_the_stream():
    def segment(i):
        if i == 1:
            time.sleep(0.2)  # the reader fills the inbox and waits on it
            raise ValueError("bad frame")
        return i
    outcome = finishes(lambda: run_stream(iter(range(100)), segment, lambda i, r: None, depth=2))
    assert outcome[0] == "raised" and str(outcome[1]) == "bad frame"


def test_a_write_error_with_a_full_outbox_ends_the_stream():
    def write(i, r):
        time.sleep(0.1)
        raise IOError("disk full")
    outcome = finishes(lambda: run_stream(iter(range(100)), lambda i: i, write, depth=2))
    assert outcome[0] == "raised" and str(outcome[1]) == "disk full"


def test_side_work_already_started_completes_before_an_error_is_raised():
    started, finished = set(), set()

    def side(i, r):
        started.add(i)
        time.sleep(0.1 + 0.2 * i)  # frame 0's write fails while the others still run
        finished.add(i)

    def write(i, r):
        raise IOError("disk full")
    with pytest.raises(IOError):
        run_stream(iter(range(4)), lambda i: i, write, side=side, workers=4)
    assert started and finished == started


def test_at_most_workers_side_tasks_run_at_once():
    running, most, guard = [0], [0], threading.Lock()

    def side(i, r):
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.03)
        with guard:
            running[0] -= 1
    run_stream(iter(range(12)), lambda i: i, lambda i, r: None, side=side, workers=1)
    assert most[0] == 1
    run_stream(iter(range(12)), lambda i: i, lambda i, r: None, side=side, workers=3)
    assert most[0] > 1


def test_compare_modes_runs_the_side_work_and_passes_each_frame_and_result_on():
    sides, writes = [], []
    report = compare_modes(lambda: iter(range(3)), lambda i: i + 10,
                           lambda i, r: writes.append((i, r)), lambda r: b"%d" % r,
                           side=lambda i, r: sides.append((i, r)))
    assert sorted(sides) == sorted(writes) == sorted([(i, i + 10) for i in range(3)] * 2)
    for mode in ("sequential", "pipelined"):
        m = report[mode]
        assert set(m) == {"frames", "seconds", "fps", "digests"} and m["seconds"] > 0
        assert m["fps"] == pytest.approx(3 / m["seconds"])
    assert report["speedup"] == pytest.approx(report["pipelined"]["fps"]
                                              / report["sequential"]["fps"])


def test_compare_modes_on_an_empty_stream_reports_no_speedup():
    report = compare_modes(lambda: iter([]), lambda i: i, lambda i, r: None, lambda r: b"")
    assert report["speedup"] == 0.0 and report["sequential"]["fps"] == 0.0


def test_the_sub_command_skips_options_and_variables():
    assert lock.doit_command(["doit", "-s", "onnx"]) == "onnx"
    assert lock.doit_command(["doit", "alpha=2", "info"]) == "info"
    assert lock.doit_command(["doit"]) == lock.doit_command(["doit", "-v", "alpha=2"]) == "run"


def hold(path):
    f = open(path, "a+")
    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    f.seek(0)
    f.truncate()
    f.write("4242\n")
    f.flush()
    return f


def waiting_second_run(artifacts, out, box):
    """A second run asking for the lock in a thread (its result appended to `box`), returned
    once it says it is waiting (or after 20 s)."""
    t = threading.Thread(target=lambda: box.append(lock.acquire(artifacts, out)))
    t.daemon = True
    t.start()
    deadline = time.time() + 20
    while "waiting" not in out.getvalue() and time.time() < deadline:
        time.sleep(0.01)
    return t


def test_a_second_run_says_who_holds_the_lock_and_waits_for_it(tmp_path, release_locks):
    import io
    artifacts = str(tmp_path)
    holder = hold(os.path.join(artifacts, lock.LOCK_NAME))
    out, box = io.StringIO(), []
    t = waiting_second_run(artifacts, out, box)
    try:
        assert not box  # still waiting
        assert out.getvalue() == ("doit: another doit run (pid 4242) is using %s; waiting for it "
                                  "to finish.\n" % artifacts)
    finally:
        holder.close()  # the first run ends
    t.join(20)
    assert box == [[]] and held_elsewhere(os.path.join(artifacts, lock.LOCK_NAME))
    with open(os.path.join(artifacts, lock.LOCK_NAME)) as f:
        assert f.read() == "%d\n" % os.getpid()


def test_an_uncontended_lock_says_nothing_and_removes_stale_temps(tmp_path, release_locks):
    import io
    artifacts = str(tmp_path / "artifacts")
    os.makedirs(os.path.join(artifacts, "onnx"))
    from test_bite_integrity import temp
    stale = os.path.join(artifacts, "onnx", temp("model.onnx"))
    with open(stale, "w") as f:
        f.write("half")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    kept = os.path.join(artifacts, "onnx", "model.onnx")
    with open(kept, "w") as f:
        f.write("whole")
    out = io.StringIO()
    assert lock.acquire(artifacts, out) == [stale]
    assert out.getvalue() == "doit: removed 1 temp file(s) an interrupted run left in %s.\n" % (
        artifacts)
    assert not os.path.exists(stale) and os.path.exists(kept)
    assert lock.acquire(artifacts, out) == []  # held already: nothing again


def test_the_lock_message_goes_to_stderr_when_no_stream_is_given(tmp_path, capsys,
                                                                 release_locks):
    artifacts = str(tmp_path)
    from test_bite_integrity import temp
    stale = os.path.join(artifacts, temp("x"))
    open(stale, "w").close()
    os.utime(stale, (time.time() - 60, time.time() - 60))
    lock.acquire(artifacts)
    assert "removed 1 temp file(s)" in capsys.readouterr().err


def test_a_holder_that_wrote_no_pid_is_called_another_process(tmp_path, release_locks):
    import io
    artifacts = str(tmp_path)
    holder = open(os.path.join(artifacts, lock.LOCK_NAME), "a+")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    out = io.StringIO()
    t = waiting_second_run(artifacts, out, [])
    try:
        assert "another doit run (pid another process) is using" in out.getvalue()
    finally:
        holder.close()
    t.join(20)
