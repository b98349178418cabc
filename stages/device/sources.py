"""The one decision of what infer's image= is, by what exists on disk first: an existing path is a
folder or a file, and a file is an image if Pillow reads its header, a video if OpenCV opens it
as one with frames (so .ts, .m2ts and any container FFmpeg knows work, whatever the name). Only
what is not a path can be a camera index (digits) or a GStreamer pipeline (has a `!`). The
config check (classify) looks at the path alone; infer then opens the file (file_kind)."""
import math
import os
import stat

from runtime.errors import ConfigError, ImageError

WRITER_FPS = (1.0, 240.0)  # a frame rate outside this is replaced by 30 (the writer refuses it)


def classify(source, path=None):
    """'folder', 'file', 'camera', 'gstreamer' or 'missing', from the path alone (no decoding);
    `path` is where `source` is on disk when it is given relative to another folder. A path that
    exists but is neither a folder nor a regular file (a FIFO, a device) is refused: reading it
    would block."""
    path = source if path is None else path
    if os.path.exists(path):
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            return "folder"
        if not stat.S_ISREG(mode):
            raise ConfigError("image=%s is not a regular file, a folder, a camera index or a "
                              "pipeline (a FIFO or a device): give an image, a folder or a "
                              "video." % source)
        return "file"
    if source.isdigit():
        return "camera"
    if "!" in source:
        return "gstreamer"
    return "missing"


def file_kind(path):
    """'image' or 'video' for an existing regular file, by its content."""
    from PIL import Image
    try:
        with Image.open(path):
            return "image"
    except Exception:  # Pillow raises many types for a file that is not an image
        pass
    import cv2
    cap = cv2.VideoCapture(path)
    try:
        if cap.isOpened() and cap.read()[0]:
            return "video"
    finally:
        cap.release()
    return "image"  # read_image then says in one sentence why it is not a readable image


def kind_of(source):
    """The kind infer uses: folder, image, video, camera or gstreamer (ImageError if missing)."""
    kind = classify(source)
    if kind == "missing":
        raise ImageError("image=%s does not exist: give an image, a folder, a video, a camera "
                         "index or a GStreamer pipeline." % source)
    return file_kind(source) if kind == "file" else kind


def writer_fps(fps):
    """The capture's frame rate if the video writer can take it, else 30."""
    if fps is None or not math.isfinite(fps) or not WRITER_FPS[0] <= fps <= WRITER_FPS[1]:
        return 30.0
    return float(fps)


def check_frame_size(source, width, height, max_megapixels):
    """infer.max_megapixels applies to video frames as it does to images."""
    mp = width * height / 1e6
    if max_megapixels is not None and mp > max_megapixels:
        raise ImageError("Video %s has %dx%d frames (%.0f MP), over the %.0f MP limit "
                         "(infer.max_megapixels): downscale it first or raise the limit." % (
                             source, width, height, mp, max_megapixels))


def open_writer(path, fps, width, height):
    """cv2.VideoWriter for the annotated video, or one sentence when OpenCV cannot open one."""
    import cv2
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise ImageError("OpenCV cannot write a %dx%d mp4v video at %.3g fps (to %s): nothing was "
                         "written; downscale the video, or check OpenCV's FFmpeg support." % (
                             width, height, fps, os.path.dirname(path) or "."))
    return writer


def check_written(path, frames):
    """The annotated video must hold something before it is claimed written."""
    if frames and (not os.path.isfile(path) or os.path.getsize(path) == 0):
        raise ImageError("The video writer produced an empty file for %d frames (to %s): nothing "
                         "was written; check OpenCV's FFmpeg support (cv2.getBuildInformation())."
                         % (frames, os.path.dirname(path) or "."))
