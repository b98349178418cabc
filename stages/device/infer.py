"""doit infer image=PATH: an image, a folder of images, a video file, a camera index, or a
GStreamer pipeline (Jetson CSI cameras). Writes palette mask PNGs and overlay JPEGs (or an
annotated video), prints per-stage timings and FPS, skips unreadable inputs and says so."""
import os
import time

import numpy as np

from stages.common import files
from stages.common.errors import ConfigError, ImageError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def options(cfg):
    """infer's settings (pipeline.yaml's infer section, command-line variables applied and
    checked by the schema) in the shape this module uses."""
    c = cfg["infer"]
    if not c["image"]:
        raise ConfigError("doit infer needs image=PATH: an image, a folder, a video, a camera index or a "
                          "GStreamer pipeline.")
    return {"image": c["image"], "out": c["out"], "alpha": c["alpha"], "mode": c["mode"],
            "backend": c["backend"], "max_mp": c["max_megapixels"], "limit": c["n"] or 0,
            "sequential": c["sequential"]}


def source_kind(source):
    if source.isdigit():
        return "camera"
    if "!" in source:
        return "gstreamer"
    if os.path.isdir(source):
        return "folder"
    if source.lower().endswith(VIDEO_EXTENSIONS):
        return "video"
    return "image"


class Stats(object):
    def __init__(self):
        self.times, self.failed, self.done, self.t0 = {}, [], 0, time.perf_counter()

    def add(self, timings):
        self.done += 1
        for k, v in timings.items():
            self.times.setdefault(k, []).append(v)

    def summary(self):
        wall = time.perf_counter() - self.t0
        stages = ", ".join("%s %.1f ms" % (k, np.mean(v)) for k, v in sorted(self.times.items()))
        return "infer: %d done, %d failed; mean %s; %.1f FPS overall" % (
            self.done, len(self.failed), stages or "-", self.done / wall if wall > 0 else 0.0)


def write_outputs(seg, result, out_dir, stem, opts):
    import cv2
    from runtime.palette import encode_mask_png
    if opts["mode"] in ("mask", "both"):
        files.write_bytes(os.path.join(out_dir, stem + "_mask.png"), encode_mask_png(result.mask, seg.palette))
    if opts["mode"] in ("overlay", "both"):
        jpg = cv2.imencode(".jpg", result.overlay, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        files.write_bytes(os.path.join(out_dir, stem + "_overlay.jpg"), jpg)


def infer_images(seg, paths, opts, stats):
    from runtime.images import read_image
    for i, path in enumerate(paths):
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            image = read_image(path, opts["max_mp"])
        except ImageError as e:
            stats.failed.append(path)
            print("infer: [%d/%d] skipped: %s" % (i + 1, len(paths), e))
            continue
        result = seg.segment(image, overlay_alpha=opts["alpha"])
        write_outputs(seg, result, opts["out"], stem, opts)
        stats.add(result.timings)
        print("infer: [%d/%d] %s %dx%d: %s" % (i + 1, len(paths), path, image.shape[1], image.shape[0], ", ".join(
            "%s %.1f ms" % kv for kv in sorted(result.timings.items()))))


def infer_stream(seg, source, kind, opts, stats):
    """Video file, camera or GStreamer pipeline -> annotated video (+ mask PNGs in mask/both mode)."""
    import cv2
    cap = cv2.VideoCapture(int(source)) if kind == "camera" else (
        cv2.VideoCapture(source, cv2.CAP_GSTREAMER) if kind == "gstreamer" else cv2.VideoCapture(source))
    if not cap.isOpened():
        raise ImageError("%s cannot be opened as a %s: check the path or device (OpenCV needs FFmpeg for files "
                         "and GStreamer for pipelines)." % (source, kind))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "video" else 0
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    stem = os.path.splitext(os.path.basename(source))[0] if kind == "video" else kind
    video_path = os.path.join(opts["out"], stem + "_overlay.mp4")
    writer = None
    try:
        with files.atomic_path(video_path, suffix=".mp4") as tmp:
            while not opts["limit"] or stats.done < opts["limit"]:
                ok, frame = cap.read()
                if not ok:
                    break
                result = seg.segment(frame, overlay_alpha=opts["alpha"])
                if writer is None:
                    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
                writer.write(result.overlay)
                if opts["mode"] in ("mask", "both"):
                    write_outputs(seg, result, os.path.join(opts["out"], stem + "_masks"),
                                  "%06d" % stats.done, {"mode": "mask"})
                stats.add(result.timings)
                print("\rinfer: frame %d%s  %.1f ms" % (stats.done, "/%d" % total if total else "",
                                                         sum(result.timings.values())), end="", flush=True)
            if writer is not None:
                writer.release()
    finally:
        cap.release()
    print("\ninfer: wrote %s (%d frames)" % (video_path, stats.done))


def run_infer(cfg, layout):
    from runtime.images import list_images
    from stages.device.select import describe, open_runtime
    opts = options(cfg)
    kind = source_kind(opts["image"])
    if kind in ("folder", "image", "video") and not os.path.exists(opts["image"]):
        raise ImageError("image=%s does not exist: give an image, a folder, a video, a camera index or a "
                         "GStreamer pipeline." % opts["image"])
    seg = open_runtime(layout, opts["backend"])
    info = describe(seg)
    print("infer: %s -> %s (backend %s, pre/post on the %s)" % (opts["image"], opts["out"], info["backend"],
                                                                  info["pre_post"].upper()))
    stats = Stats()
    if kind in ("folder", "image"):
        paths = list_images(opts["image"]) if kind == "folder" else [opts["image"]]
        if not paths:
            raise ImageError("The folder %s has no images (.jpg, .png, ...)." % opts["image"])
        infer_images(seg, paths[:opts["limit"] or None], opts, stats)
    else:
        infer_stream(seg, opts["image"], kind, opts, stats)
    print(stats.summary())
    if stats.failed:
        raise ImageError("%d of %d inputs could not be read (listed above as skipped); the others were written "
                         "to %s." % (len(stats.failed), len(stats.failed) + stats.done, opts["out"]))
