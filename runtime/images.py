"""Read images robustly: any depth, grey, alpha, palette, EXIF rotation -> BGR uint8.

Pillow opens and checks every file (it refuses truncated files instead of returning grey rows).
JPEG pixels are decoded by OpenCV: the golden files and every device must see the same pixels, and
decoders differ. OpenCV's wheels and JetPack's OpenCV decode with libjpeg-turbo, as does the host's
Pillow, but the Python 3.6 Pillow 8.4.0 wheels (the Jetson Nano's) use IJG libjpeg 9, whose pixels
differ by up to 50 levels, which is 0.07 to 0.26 after pre-processing against a 0.001 limit.
Pillow names a JPEG that carries a second picture (a phone's depth or HDR gain map) "MPO": its
first picture, the one read, is a plain JPEG and is decoded the same way."""
import os

import numpy as np
from PIL import Image, ImageOps

from runtime.errors import ImageError

Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit, with a clearer message
DEFAULT_MAX_MEGAPIXELS = 80.0
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path, max_megapixels=DEFAULT_MAX_MEGAPIXELS):
    """Return the image at `path` as BGR uint8 HxWx3, or raise ImageError with one sentence."""
    if not os.path.isfile(path):
        raise ImageError("Image %s does not exist: check the path." % path)
    if os.path.getsize(path) == 0:
        raise ImageError("Image %s is empty (0 bytes): replace it with a real image." % path)
    try:
        with Image.open(path) as img:
            _check_size(path, img.size, max_megapixels)
            img.load()
            if img.format in ("JPEG", "MPO") and img.mode in ("RGB", "L"):
                return _oriented(_decode_jpeg(path), img)
            img = ImageOps.exif_transpose(img)
            return to_bgr8(img)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        reason = "it is truncated" if "truncated" in str(e) else "it is not a readable image"
        raise ImageError("Image %s cannot be decoded (%s): replace it or remove it from the input."
                         % (path, reason))


# EXIF orientation -> the numpy steps of Pillow's ImageOps.exif_transpose for that value
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _decode_jpeg(path):
    """BGR uint8 pixels of a JPEG that Pillow already decoded without error, via libjpeg-turbo."""
    import cv2
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), flags)
    if bgr is None:
        raise ValueError("not a readable image")
    return bgr


def _oriented(bgr, img):
    """`bgr` turned as the EXIF orientation of `img` says (as ImageOps.exif_transpose does)."""
    turn = _ORIENT.get(img.getexif().get(0x0112))
    return np.ascontiguousarray(turn(bgr) if turn else bgr)


def _check_size(path, size, max_megapixels):
    w, h = size
    mp = w * h / 1e6
    if max_megapixels is not None and mp > max_megapixels:
        raise ImageError("Image %s is %dx%d (%.0f MP), over the %.0f MP limit "
                         "(infer.max_megapixels): downscale it first or raise the limit." % (
                             path, w, h, mp, max_megapixels))


def to_bgr8(img):
    """Convert any Pillow image to BGR uint8; 16-bit data is scaled, alpha is dropped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if img.mode == "F":
        grey = np.clip(np.round(np.asarray(img)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    import cv2
    rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # one pass, contiguous output


def list_images(folder):
    """The image files in `folder`, sorted by name."""
    names = sorted(os.listdir(folder))
    return [os.path.join(folder, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
