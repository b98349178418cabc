"""doit infer image=PATH: an image, a folder of images, a video file, a camera index, or a
GStreamer pipeline (Jetson CSI cameras). Writes palette mask PNGs and overlay JPEGs (or an
annotated video), prints per-stage timings and FPS, skips unreadable inputs and says so."""
import os
import time

import numpy as np

from stages.common import files
from stages.common.errors import ConfigError, ImageError
from stages.common.userpath import shown
from stages.device.report import Progress, quiet_opencv, stage_times

def options(cfg):
    """infer's settings (pipeline.yaml's infer section, command-line variables applied and
    checked by the schema) in the shape this module uses."""
    c = cfg["infer"]
    if not c["image"]:
        raise ConfigError("doit infer needs image=PATH: an image, a folder, a video, a camera "
                          "index or a GStreamer pipeline.")
    return {"image": c["image"], "out": c["out"], "alpha": c["alpha"], "mode": c["mode"],
            "backend": c["backend"], "max_mp": c["max_megapixels"], "limit": c["n"] or 0,
            "sequential": c["sequential"]}


class Stats(object):
    def __init__(self):
        self.times, self.failed, self.done, self.t0 = {}, [], 0, time.perf_counter()

    def add(self, timings):
        self.done += 1
        for k, v in timings.items():
            self.times.setdefault(k, []).append(v)

    def summary(self):
        """The closing line: counts, then (when anything was done) mean stage times in data-path
        order and the overall rate."""
        head = "infer: %d done, %d failed" % (self.done, len(self.failed))
        if not self.done:
            return head
        wall = time.perf_counter() - self.t0
        means = dict((k, float(np.mean(v))) for k, v in self.times.items())
        return "%s; mean %s; %.1f FPS overall" % (head, stage_times(means),
                                                   self.done / wall if wall > 0 else 0.0)


def write_outputs(seg, result, out_dir, stem, opts):
    import cv2
    from runtime.palette import encode_mask_png
    if opts["mode"] in ("mask", "both"):
        files.write_bytes(os.path.join(out_dir, stem + "_mask.png"),
                          encode_mask_png(result.mask, seg.palette))
    if opts["mode"] in ("overlay", "both"):
        jpg = cv2.imencode(".jpg", result.overlay, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        files.write_bytes(os.path.join(out_dir, stem + "_overlay.jpg"), jpg)


def infer_images(seg, paths, opts, stats):
    """Images -> mask PNGs / overlay JPEGs: decoded on a reader thread, written by worker threads
    (runtime.stream; sequential=1 runs them one after another)."""
    from runtime.images import read_image
    from runtime.stream import run_stream
    from stages.device.outputs import unique_stems
    stems = unique_stems(paths)  # photo.jpg and photo.png get distinct outputs

    def frames():
        for i, path in enumerate(paths):
            try:
                yield i, path, read_image(path, opts["max_mp"])
            except ImageError as e:  # named as the user would type the path
                yield i, path, ImageError(str(e).replace(path, shown(path), 1))

    def segment(frame):
        if isinstance(frame[2], ImageError):
            stats.failed.append(frame[1])
            return None
        result = seg.segment(frame[2], overlay_alpha=opts["alpha"])
        stats.add(result.timings)
        return result

    def side(frame, result):
        if result is not None:
            write_outputs(seg, result, opts["out"], stems[frame[0]], opts)

    def report(frame, result):
        i, path, image = frame
        if result is None:
            print("infer: [%d/%d] skipped: %s" % (i + 1, len(paths), image))
            return
        print("infer: [%d/%d] %s %dx%d: %s" % (
            i + 1, len(paths), shown(path), image.shape[1], image.shape[0],
            stage_times(result.timings)))
    run_stream(frames(), segment, report, pipelined=not opts.get("sequential"), side=side)


def open_capture(source, kind):
    """An opened cv2.VideoCapture, OpenCV's own log lines silenced: we say what failed."""
    import cv2
    quiet_opencv()
    cap = cv2.VideoCapture(int(source)) if kind == "camera" else (
        cv2.VideoCapture(source, cv2.CAP_GSTREAMER) if kind == "gstreamer"
        else cv2.VideoCapture(source))
    if not cap.isOpened():
        raise ImageError("image=%s cannot be opened as a %s: check the path or device (OpenCV "
                         "needs FFmpeg for files and GStreamer for pipelines)." % (
                             shown(source), kind))
    return cap


def captured(cap):
    """The capture's frames until it ends."""
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        yield frame


def stream_outputs(source, kind, out):
    """The annotated video and the folder of per-frame mask PNGs a stream writes."""
    stem = os.path.splitext(os.path.basename(source))[0] if kind == "video" else kind
    return os.path.join(out, stem + "_overlay.mp4"), os.path.join(out, stem + "_masks")


def infer_stream(seg, source, kind, opts, stats):
    """Video file, camera or GStreamer pipeline -> annotated video (+ mask PNGs in mask/both mode):
    decode on a reader thread, segment here, write on writer threads (runtime.stream). The
    frame counter is shown on a terminal only (report.Progress)."""
    import cv2
    from runtime.stream import run_stream
    from stages.device import sources
    cap = open_capture(source, kind)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "video" else 0
    fps = sources.writer_fps(cap.get(cv2.CAP_PROP_FPS))
    sources.check_frame_size(source, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                             int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), opts["max_mp"])
    video_path, masks = stream_outputs(source, kind, opts["out"])
    state, progress = {"writer": None}, Progress()

    def segment(frame):
        result = seg.segment(frame, overlay_alpha=opts["alpha"])
        stats.add(result.timings)
        return stats.done - 1, result

    def side(frame, out):
        if opts["mode"] in ("mask", "both"):
            write_outputs(seg, out[1], masks, "%06d" % out[0], {"mode": "mask"})

    def write(frame, out):
        if state["writer"] is None:
            sources.check_frame_size(source, frame.shape[1], frame.shape[0], opts["max_mp"])
            state["writer"] = sources.open_writer(state["tmp"], fps, frame.shape[1],
                                                  frame.shape[0])
        state["writer"].write(out[1].overlay)
        progress.update("infer: frame %d%s  %.1f ms" % (
            out[0] + 1, "/%d" % total if total else "", sum(out[1].timings.values())))
    try:
        with files.atomic_path(video_path, suffix=".mp4") as tmp:
            state["tmp"] = tmp
            run_stream(captured(cap), segment, write, pipelined=not opts.get("sequential"),
                       n=opts["limit"] or None, side=side)
            if state["writer"] is not None:
                state["writer"].release()
            sources.check_written(tmp, stats.done)
    finally:
        progress.end()
        cap.release()
    print("infer: wrote %s (%d frames)%s" % (shown(video_path), stats.done, (
        " and a mask PNG per frame in %s" % shown(masks)) if opts["mode"] != "overlay" else ""))


def run_infer(cfg, layout):
    from runtime.images import list_images
    from stages.device.select import describe, open_runtime
    opts = options(cfg)
    from stages.device.sources import kind_of
    kind = kind_of(opts["image"])  # by what exists on disk first (stages/device/sources.py)
    from stages.device.outputs import check_folder, failure
    check_folder(opts["out"])  # out= a file, unwritable or read-only: one sentence, before any work
    seg = open_runtime(layout, opts["backend"])
    info = describe(seg)
    print("infer: %s -> %s (backend %s, pre/post on the %s)" % (
        shown(opts["image"]), shown(opts["out"]), info["backend"], info["pre_post"].upper()))
    stats = Stats()
    if kind in ("folder", "image"):
        paths = list_images(opts["image"]) if kind == "folder" else [opts["image"]]
        if not paths:
            raise ImageError("The folder %s has no images (.jpg, .png, ...)." % shown(
                opts["image"]))
        infer_images(seg, paths[:opts["limit"] or None], opts, stats)
    else:
        infer_stream(seg, opts["image"], kind, opts, stats)
    print(stats.summary())
    if stats.failed:
        raise failure(stats.failed, stats.done, opts["out"])
