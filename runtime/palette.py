"""Class colours, the legend of the classes present, and palette PNG masks."""
import io

import cv2
import numpy as np
from PIL import Image

# RGB palette of the segments/sidewalk-semantic labels (35 classes), as used with the seed's model.
SIDEWALK_PALETTE = [
    (0, 0, 0), (216, 82, 24), (255, 255, 0), (125, 46, 141), (118, 171, 47), (161, 19, 46),
    (255, 0, 0), (0, 128, 128), (190, 190, 0), (0, 255, 0), (0, 0, 255), (170, 0, 255),
    (84, 84, 0), (84, 170, 0), (84, 255, 0), (170, 84, 0), (170, 170, 0), (170, 255, 0),
    (255, 84, 0), (255, 170, 0), (255, 255, 127), (33, 138, 200), (0, 170, 127), (0, 255, 127),
    (84, 0, 127), (84, 84, 127), (84, 170, 127), (84, 255, 127), (170, 0, 127), (170, 84, 127),
    (170, 170, 127), (170, 255, 127), (255, 0, 127), (255, 84, 127), (255, 170, 127),
]


def palette_rgb(num_labels):
    """An RGB colour per class: the sidewalk palette, extended deterministically past 35."""
    colors = list(SIDEWALK_PALETTE[:num_labels])
    rng = np.random.RandomState(1234)
    while len(colors) < num_labels:
        colors.append(tuple(int(c) for c in rng.randint(0, 256, 3)))
    return [list(c) for c in colors]


def bgr_table(palette):
    """The palette as a (N, 3) uint8 BGR lookup table."""
    return np.ascontiguousarray(np.asarray(palette, np.uint8)[:, ::-1])


def classes_by_area(mask):
    """Class ids present in `mask`, largest first, with their pixel counts."""
    counts = np.bincount(mask.ravel(), minlength=1)
    ids = np.nonzero(counts)[0]
    order = ids[np.argsort(-counts[ids], kind="stable")]
    return [(int(i), int(counts[i])) for i in order]


def legend_scale(width):
    """The legend's size for an image `width` px wide: 1 at 1600 px, never below 0.75 (text about
    10 px high, the smallest that reads at the picture's own size) nor above 1.25."""
    return max(0.75, min(1.25, width / 1600.0))


def draw_legend(image_bgr, mask, labels, palette, max_rows=12):
    """Draw a legend of the classes present (largest first) in the top-left corner, in place."""
    present = classes_by_area(mask)[:max_rows]
    h, w = image_bgr.shape[:2]
    scale = legend_scale(w)
    row = int(26 * scale) + 4
    box_w = int(260 * scale)
    if h < row * (len(present) + 1) or w < box_w + 8:
        return image_bgr
    cv2.rectangle(image_bgr, (4, 4), (4 + box_w, 8 + row * len(present)), (0, 0, 0), -1)
    for k, (cls, count) in enumerate(present):
        y = 8 + row * k
        color = tuple(int(c) for c in palette[cls][::-1])
        cv2.rectangle(image_bgr, (8, y + 2), (8 + row - 6, y + row - 4), color, -1)
        share = 100.0 * count / mask.size
        text = "%s %s" % (labels[cls] if cls < len(labels) else cls,
                          "%.0f%%" % share if share >= 1 else "<1%")
        cv2.putText(image_bgr, text, (8 + row, y + row - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return image_bgr


def encode_mask_png(mask, palette):
    """PNG bytes of `mask` as a palette image: class ids stay exact, viewers show colours."""
    img = Image.fromarray(np.ascontiguousarray(mask, np.uint8))
    flat = [v for c in palette for v in c]
    img.putpalette(flat + [0] * (768 - len(flat)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def decode_mask_png(path):
    """The class ids stored in a palette PNG written by encode_mask_png."""
    with Image.open(path) as img:
        return np.asarray(img).astype(np.uint8)
