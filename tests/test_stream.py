"""runtime.stream: order, bounded queues, the thread each stage runs in, errors, Ctrl-C."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from runtime.stream import compare_modes, run_stream

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Recorder(object):
    """Frames that note the thread they were decoded in, and how far ahead of the writer."""

    def __init__(self, count, decode_s=0.0, segment_s=0.0, write_s=0.0):
        self.count, self.delays = count, (decode_s, segment_s, write_s)
        self.threads = {"decode": set(), "segment": set(), "write": set()}
        self.written, self.ahead = [], 0
        self.decoded = 0

    def frames(self):
        for i in range(self.count):
            time.sleep(self.delays[0] * (1 + (i % 3)) / 2)  # uneven, to shuffle timings
            self.threads["decode"].add(threading.get_ident())
            self.decoded += 1
            self.ahead = max(self.ahead, self.decoded - len(self.written))
            yield i

    def segment(self, i):
        time.sleep(self.delays[1] * (1 + (i % 2)) / 2)
        self.threads["segment"].add(threading.get_ident())
        return i * i

    def write(self, i, result):
        time.sleep(self.delays[2] * (1 + (i % 4)) / 2)
        self.threads["write"].add(threading.get_ident())
        self.written.append((i, result))


def test_order_and_results_match_the_sequential_loop():
    seq, pipe = Recorder(40, 0.002, 0.001, 0.003), Recorder(40, 0.002, 0.001, 0.003)
    assert run_stream(seq.frames(), seq.segment, seq.write, pipelined=False) == 40
    assert run_stream(pipe.frames(), pipe.segment, pipe.write, pipelined=True) == 40
    assert pipe.written == seq.written == [(i, i * i) for i in range(40)]


def test_segment_stays_in_the_calling_thread_and_decode_and_write_do_not():
    rec = Recorder(12, 0.001, 0.001, 0.001)
    run_stream(rec.frames(), rec.segment, rec.write)
    me = threading.get_ident()
    assert rec.threads["segment"] == {me}
    assert len(rec.threads["decode"]) == 1 and me not in rec.threads["decode"]
    assert len(rec.threads["write"]) == 1 and me not in rec.threads["write"]


def test_queues_are_bounded():
    rec = Recorder(60, 0.0, 0.0, 0.01)  # a slow writer: the reader must wait for it
    run_stream(rec.frames(), rec.segment, rec.write, depth=3)
    assert len(rec.written) == 60
    assert rec.ahead <= 3 + 3 + 3  # inbox + outbox + one in each stage


def test_n_limits_the_frames():
    rec = Recorder(50)
    assert run_stream(rec.frames(), rec.segment, rec.write, n=7) == 7
    assert [i for i, _ in rec.written] == list(range(7))
    assert rec.decoded <= 7


def test_pipelining_overlaps_the_stages():
    report = compare_modes(lambda: Recorder(12, 0.02, 0.02, 0.02).frames(),
                           lambda i: (time.sleep(0.02), i)[1],
                           lambda i, r: time.sleep(0.02), digest=lambda r: str(r).encode())
    assert (report["identical"]
            and report["sequential"]["frames"] == report["pipelined"]["frames"] == 12)
    assert report["speedup"] > 1.8, report


def test_a_decode_error_reaches_the_caller():
    def frames():
        yield 0
        raise ValueError("bad frame")
    written = []
    with pytest.raises(ValueError, match="bad frame"):
        run_stream(frames(), lambda i: i, lambda i, r: written.append(i))
    assert written == [0]


def test_a_write_error_stops_the_stream():
    rec = Recorder(1000)

    def write(i, result):
        if i == 3:
            raise OSError("disk full")
        rec.written.append(i)
    with pytest.raises(OSError, match="disk full"):
        run_stream(rec.frames(), rec.segment, write)
    assert rec.written == [0, 1, 2]
    assert rec.decoded < 1000


def test_keyboard_interrupt_writes_what_was_segmented_then_stops():
    rec = Recorder(1000, write_s=0.005)

    def segment(i):
        if i == 6:
            raise KeyboardInterrupt
        return rec.segment(i)
    with pytest.raises(KeyboardInterrupt):
        run_stream(rec.frames(), segment, rec.write)
    assert rec.written == [(i, i * i) for i in range(6)]
    assert rec.decoded < 20
    assert not [t for t in threading.enumerate() if t.name.startswith("stream-")]


SCRIPT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, %r)
    from runtime.files import write_bytes
    from runtime.stream import run_stream
    out = sys.argv[1]
    def frames():
        for i in range(100000):
            time.sleep(0.005)
            yield i
    def write(i, data):
        write_bytes(os.path.join(out, "%%06d.bin" %% i), data)
    def segment(i):
        if i == 5:
            print("RUNNING", flush=True)
        return bytes(bytearray([i %% 256])) * 200000
    try:
        run_stream(frames(), segment, write)
    except KeyboardInterrupt:
        print("STOPPED", flush=True)
        sys.exit(130)
""")


def test_ctrl_c_leaves_only_complete_files(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT % ROOT, str(tmp_path)],
                            stdout=subprocess.PIPE, universal_newlines=True)
    assert proc.stdout.readline().strip() == "RUNNING"
    # signal once 5 frames are on disk (an observed event, no fixed sleep)
    deadline = time.time() + 300
    while (len([n for n in os.listdir(str(tmp_path)) if n.endswith(".bin")]) < 5
           and time.time() < deadline):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "STOPPED" in out
    names = sorted(os.listdir(str(tmp_path)))
    assert len(names) >= 5
    assert names == ["%06d.bin" % i for i in range(len(names))]  # in order, no temp files left
    for i, name in enumerate(names):
        with open(os.path.join(str(tmp_path), name), "rb") as f:
            assert f.read() == bytes(bytearray([i % 256])) * 200000


def test_side_work_runs_in_parallel_and_write_waits_for_it():
    done, order = set(), []

    def side(i, result):
        time.sleep(0.03 * (1 + (i % 3)))  # finishes out of order
        done.add(i)

    def write(i, result):
        assert i in done  # this frame's side work is complete before its ordered write
        order.append(i)
    t0 = time.perf_counter()
    assert run_stream(iter(range(20)), lambda i: i, write, side=side, workers=4) == 20
    assert order == list(range(20))
    assert time.perf_counter() - t0 < 0.06 * 20 * 0.6  # parallel, not one after another
    order[:] = []
    assert run_stream(iter(range(5)), lambda i: i, write, pipelined=False, side=side) == 5
    assert order == list(range(5))
