"""The labelled set of `doit evaluate data=DIR`: DIR/images/ and DIR/labels/, one label per image
with the same stem, read as class ids of the model (255 = ignore).

Label layouts (`evaluate.labels`, or labels= on the command line):
  indices     an 8-bit PNG of class ids, mode L, or a palette PNG (mode P) whose *indices* are the
              class ids (its colours are not looked at); 255 = ignore.
  sidewalk    the segments/sidewalk-semantic export: per-image PNG label maps with ids 0..34 in the
              35-label order of its id2label (0 unlabeled, 1 flat-road, ... 34 void-unclear), which
              is the order of nickmuchi/segformer-b4-finetuned-segments-sidewalk and of the
              embedded model. Id k is class k, except 0 ("unlabeled"), which is ignored, as the
              Hugging Face SegFormer fine-tuning post evaluates this set (huggingface/blog
              fine-tune-segformer.md: `metric.compute(..., ignore_index=0)`). The model must have
              those 35 labels.
  cityscapes  Cityscapes `*_gtFine_labelIds.png` (ids 0..33, -1 stored as 255) mapped to the 19
              train ids by the standard table of cityscapesScripts' helpers/labels.py (every id
              whose trainId is 255 or -1 becomes 255, ignored); images `*_leftImg8bit.png` pair by
              the part before those suffixes. The model must have 19 labels.
  auto        cityscapes when every label file ends in _labelIds.png, else indices.
Everything is checked before any model runs: missing or extra files, a label whose size differs
from its image, a class id the model does not have, a label that is not an 8-bit class map."""
import hashlib
import os

import numpy as np

from runtime.errors import PipelineError
from runtime.images import IMAGE_EXTENSIONS
from runtime.metrics import IGNORE
from stages.common.userpath import shown

LAYOUTS = ("auto", "indices", "sidewalk", "cityscapes")
SIDEWALK_LABELS = (
    "unlabeled", "flat-road", "flat-sidewalk", "flat-crosswalk", "flat-cyclinglane",
    "flat-parkingdriveway", "flat-railtrack", "flat-curb", "human-person", "human-rider",
    "vehicle-car", "vehicle-truck", "vehicle-bus", "vehicle-tramtrain", "vehicle-motorcycle",
    "vehicle-bicycle", "vehicle-caravan", "vehicle-cartrailer", "construction-building",
    "construction-door", "construction-wall", "construction-fenceguardrail", "construction-bridge",
    "construction-tunnel", "construction-stairs", "object-pole", "object-trafficsign",
    "object-trafficlight", "nature-vegetation", "nature-terrain", "sky", "void-ground",
    "void-dynamic", "void-static", "void-unclear")
# Cityscapes labelId -> trainId (cityscapesScripts/cityscapesscripts/helpers/labels.py)
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
                        23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_IMAGE, CITYSCAPES_LABEL = "_leftImg8bit", "_gtFine_labelIds"


class DatasetError(PipelineError):
    """A labelled set that cannot be evaluated: one sentence naming the file."""


def _lookup(layout):
    """A 256-entry uint8 table: stored value -> class id (255 ignore); None for indices."""
    if layout == "indices":
        return None
    table = np.full(256, IGNORE, np.uint8)
    if layout == "sidewalk":
        table[1:len(SIDEWALK_LABELS)] = np.arange(1, len(SIDEWALK_LABELS))
    else:
        for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
            table[label_id] = train_id
    return table


def _valid_stored(layout, num_labels):
    """The stored values a label may hold in this layout (others are an error)."""
    if layout == "sidewalk":
        return set(range(len(SIDEWALK_LABELS))) | {IGNORE}
    if layout == "cityscapes":
        return set(range(34)) | {IGNORE}
    return set(range(num_labels)) | {IGNORE}


def _stem(name, layout, suffix_kind):
    stem = os.path.splitext(name)[0]
    if layout == "cityscapes":
        suffix = CITYSCAPES_IMAGE if suffix_kind == "image" else CITYSCAPES_LABEL
        if stem.endswith(suffix):
            return stem[:-len(suffix)]
    return stem


def _listing(folder, data, what):
    if not os.path.isdir(folder):
        raise DatasetError("%s has no %s/ folder: a labelled set is DIR/images/ (the images) "
                           "and DIR/labels/ (one PNG of class ids per image, same stem)." % (
                               shown(data), what))
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def _by_stem(folder, names, layout, kind):
    out = {}
    for name in names:
        if kind == "image" and not name.lower().endswith(IMAGE_EXTENSIONS):
            raise DatasetError("%s is not an image (%s): %s/ may hold only images." % (
                shown(os.path.join(folder, name)), ", ".join(IMAGE_EXTENSIONS), shown(folder)))
        stem = _stem(name, layout, kind)
        if stem in out:
            raise DatasetError("%s and %s have the same stem '%s': keep one, each image needs "
                               "exactly one label." % (shown(os.path.join(folder, out[stem])),
                                                       shown(os.path.join(folder, name)), stem))
        out[stem] = name
    return out


def choose_layout(labels_dir, names, layout):
    if layout != "auto":
        return layout
    if names and all(os.path.splitext(n)[0].endswith("_labelIds") for n in names):
        return "cityscapes"
    return "indices"


def find_pairs(data, layout="auto"):
    """(the layout used, [(stem, image path, label path)]) sorted by stem; one sentence for a
    missing folder, an empty set, an image without a label or a label without an image."""
    if not os.path.isdir(data):
        raise DatasetError("The labelled set %s (evaluate.data, or data= on the command line) is "
                           "not a folder: give a folder holding images/ and labels/ (data= is "
                           "relative to the folder you run doit in)." % shown(data))
    images_dir, labels_dir = os.path.join(data, "images"), os.path.join(data, "labels")
    image_names = _listing(images_dir, data, "images")
    label_names = _listing(labels_dir, data, "labels")
    layout = choose_layout(labels_dir, label_names, layout)
    images = _by_stem(images_dir, image_names, layout, "image")
    labels = _by_stem(labels_dir, label_names, layout, "label")
    if not images:
        raise DatasetError("%s is empty: put the images to evaluate there." % shown(images_dir))
    for stem in sorted(images):
        if stem not in labels:
            raise DatasetError("Image %s has no label in %s (expected %s.png): add it, or remove "
                               "the image." % (shown(os.path.join(images_dir, images[stem])),
                                               shown(labels_dir),
                                               stem + (CITYSCAPES_LABEL if layout == "cityscapes"
                                                       else "")))
    for stem in sorted(labels):
        if stem not in images:
            raise DatasetError("Label %s has no image with the stem '%s' in %s: remove it, or add "
                               "the image." % (shown(os.path.join(labels_dir, labels[stem])), stem,
                                               shown(images_dir)))
    return layout, [(s, os.path.join(images_dir, images[s]), os.path.join(labels_dir, labels[s]))
                    for s in sorted(images)]


def _first_difference(labels, expected):
    if len(labels) != len(expected):
        return "it has %d labels, not %d" % (len(labels), len(expected))
    i = next(i for i, (a, b) in enumerate(zip(labels, expected)) if a != b)
    return "its class %d is %s, not %s" % (i, labels[i], expected[i])


def check_model(layout, labels):
    """The model must have the classes the layout maps to."""
    if layout == "sidewalk" and tuple(labels) != SIDEWALK_LABELS:
        raise DatasetError("labels=sidewalk maps to the 35 segments/sidewalk-semantic classes, but "
                           "the model's labels differ (%s): use labels=indices with ids of this "
                           "model." % _first_difference(labels, SIDEWALK_LABELS))
    if layout == "cityscapes" and len(labels) != len(CITYSCAPES_TRAIN_IDS):
        raise DatasetError("Cityscapes labels map to the 19 train ids, but the model has %d "
                           "labels: use a Cityscapes model, or labels=indices with ids of this "
                           "model." % len(labels))


def _image_size(path):
    """The image's width x height as read_image returns it (EXIF rotation applied)."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
    except (OSError, SyntaxError, ValueError):
        raise DatasetError("Image %s cannot be decoded: replace it or remove it and its label."
                           % shown(path))
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def read_label(path, layout, num_labels, image_path=None):
    """The label as HxW uint8 class ids of the model (255 ignore), checked."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            mode = img.mode
            stored = np.array(img) if mode in ("L", "P") else None
    except (OSError, SyntaxError, ValueError):
        raise DatasetError("Label %s cannot be decoded: replace it with an 8-bit PNG of class "
                           "ids." % shown(path))
    if stored is None:
        raise DatasetError("Label %s is a %s image, not an 8-bit class map: save the class ids "
                           "as a mode L (grey) or palette PNG, one id per pixel." % (
                               shown(path), mode))
    if image_path is not None:
        w, h = _image_size(image_path)
        if (stored.shape[1], stored.shape[0]) != (w, h):
            raise DatasetError("Label %s is %dx%d but its image %s is %dx%d: a label must have "
                               "its image's size." % (shown(path), stored.shape[1],
                                                      stored.shape[0], shown(image_path), w, h))
    _check_ids(path, stored, layout, num_labels)
    table = _lookup(layout)
    return stored if table is None else table[stored]


def _check_ids(path, stored, layout, num_labels):
    counts = np.bincount(stored.ravel(), minlength=256)
    bad = [v for v in np.nonzero(counts)[0] if int(v) not in _valid_stored(layout, num_labels)]
    if bad:
        v = int(bad[0])
        if layout == "indices":
            allowed = "the model has %d labels (ids 0-%d; 255 = ignore)" % (num_labels,
                                                                         num_labels - 1)
        else:
            allowed = "labels=%s allows %s and 255 (ignore)" % (
                layout, "0-34" if layout == "sidewalk" else "the Cityscapes ids 0-33")
        raise DatasetError("Label %s has class id %d at %d pixels, but %s: fix the label, or "
                           "choose its layout with labels=." % (shown(path), v, int(counts[v]),
                                                                allowed))


def check_all(pairs, layout, num_labels):
    """Every label read and checked against its image before any model runs; returns the set's
    fingerprint (sha256 over the names and bytes of every file)."""
    digest = hashlib.sha256()
    labelled = 0
    for stem, image_path, label_path in pairs:
        labelled += int(np.count_nonzero(read_label(label_path, layout, num_labels, image_path)
                                          != IGNORE))
        for path in (image_path, label_path):
            digest.update(os.path.basename(path).encode("utf-8"))
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
    if not labelled:
        raise DatasetError("Every label pixel in %s is ignored (255%s): there is nothing to "
                           "evaluate; check the labels or their layout (labels=)." % (
                               shown(os.path.dirname(pairs[0][2])),
                               ", or unlabeled 0 with labels=sidewalk" if layout == "sidewalk"
                               else ""))
    return digest.hexdigest()
