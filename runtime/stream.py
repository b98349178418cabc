"""Pipelined streams: decode the next frame on a reader thread and write finished outputs on a
writer thread while the calling thread segments, so reading, inference and writing overlap.

- `frames` is any iterable; the reader thread pulls from it (that is where decoding happens).
- `segment(item)` runs in the calling thread only: with pycuda the CUDA context is current in the
  thread that made it, so every kernel, copy and engine call stays in that thread.
- `side(item, result)`, when given, runs in a pool of `workers` threads as soon as a frame is
  segmented, in any order: per-frame work such as encoding and writing that frame's own files.
- `write(item, result)` runs in the writer thread, in frame order, once that frame's side work
  is done (e.g. appending the frame to a video).
- Queues are bounded (`depth` items each), so memory stays flat however long the stream.
- Ctrl-C (KeyboardInterrupt in the calling thread) stops the reader, lets the writer finish the
  frames already segmented, then re-raises; files are written by temp file + rename, so no
  output is ever half written. An error in the reader or the writer stops the stream and is
  raised in the calling thread.
"""
import hashlib
import itertools
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

_END = object()
_NEVER = threading.Event()  # a stop flag that is never set: the calling thread's puts wait
POLL_S = 0.05  # how often blocked threads look at the stop flag


class _Failed(object):
    def __init__(self, error):
        self.error = error


def _put(q, item, stop):
    """Put into a bounded queue unless the stream is stopping; False when it is."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _get(q):
    while True:
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            continue


def _reader(frames, inbox, stop):
    try:
        for item in frames:
            if not _put(inbox, item, stop):
                return
        _put(inbox, _END, stop)
    except BaseException as e:  # handed to the calling thread
        _put(inbox, _Failed(e), stop)


def _writer(outbox, write, errors):
    while True:
        got = _get(outbox)
        if got is _END:
            return
        if errors:
            continue  # drain without writing after a failure
        item, result, side = got
        try:
            if side is not None:
                side.result()
            write(item, result)
        except BaseException as e:
            errors.append(e)


def _sequential(frames, segment, write, side):
    done = 0
    for item in frames:
        result = segment(item)
        if side is not None:
            side(item, result)
        write(item, result)
        done += 1
    return done


def run_stream(frames, segment, write, pipelined=True, n=None, depth=4, side=None, workers=2):
    """Segment and write every item of `frames` (the first `n` when n): returns the count."""
    frames = itertools.islice(frames, n) if n else frames
    if not pipelined:
        return _sequential(frames, segment, write, side)
    inbox, outbox = queue.Queue(depth), queue.Queue(depth)
    stop, errors = threading.Event(), []
    pool = ThreadPoolExecutor(max_workers=workers) if side is not None else None
    reader = threading.Thread(target=_reader, args=(frames, inbox, stop), name="stream-reader")
    writer = threading.Thread(target=_writer, args=(outbox, write, errors), name="stream-writer")
    for t in (reader, writer):
        t.daemon = True  # a second Ctrl-C may still end the process
        t.start()
    done = 0
    try:
        while not errors:
            item = _get(inbox)
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.error
            result = segment(item)
            job = pool.submit(side, item, result) if pool is not None else None
            _put(outbox, (item, result, job), _NEVER)  # the writer always drains
            done += 1
    finally:
        stop.set()
        outbox.put(_END)  # the writer finishes what it was given, then stops
        writer.join()
        reader.join()
        if pool is not None:
            pool.shutdown(wait=True)  # side work already started completes
    if errors:
        raise errors[0]
    return done


def compare_modes(make_frames, segment, write, digest, n=None, side=None):
    """The same stream sequential, then pipelined: FPS of each, the ratio, and whether every
    frame's output is identical (digest(result) -> bytes, compared frame by frame)."""
    report = {}
    for mode in ("sequential", "pipelined"):
        digests = []

        def record(item, result):
            write(item, result)
            digests.append(hashlib.sha256(digest(result)).hexdigest())

        t0 = time.perf_counter()
        count = run_stream(make_frames(), segment, record, pipelined=mode == "pipelined", n=n,
                           side=side)
        seconds = time.perf_counter() - t0
        report[mode] = {"frames": count, "seconds": seconds,
                        "fps": count / seconds if seconds else 0.0, "digests": digests}
    seq, pipe = report["sequential"], report["pipelined"]
    report["speedup"] = pipe["fps"] / seq["fps"] if seq["fps"] else 0.0
    report["identical"] = seq["digests"] == pipe["digests"] and seq["frames"] > 0
    for mode in ("sequential", "pipelined"):
        report[mode]["digests"] = len(report[mode].pop("digests"))
    return report
