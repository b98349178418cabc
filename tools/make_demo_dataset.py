"""Write the small labelled set that ships with the project (datasets/sidewalk-demo/): generated
street scenes from tools/scenes.py (the generator the embedded model was trained on), not photos.

Seeds 2,000,000 and up: disjoint from the training scenes (0..1499) and from the held-out scenes
of tools/train_default_model.py (1,000,000 and up). Images are JPEG, labels 8-bit PNGs of the
35 sidewalk class ids (mode L), both at the scene's size.

    python tools/make_demo_dataset.py datasets/sidewalk-demo [--count 6]"""
import argparse
import os
import sys

import cv2
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scenes import render_scene  # noqa: E402

SEED0 = 2000000
SIZES = ((320, 240), (240, 320), (400, 224), (288, 288), (352, 256), (256, 352))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest")
    ap.add_argument("--count", type=int, default=6)
    args = ap.parse_args()
    for sub in ("images", "labels"):
        os.makedirs(os.path.join(args.dest, sub), exist_ok=True)
    for k in range(args.count):
        w, h = SIZES[k % len(SIZES)]
        bgr, label = render_scene(SEED0 + k, w, h)
        stem = "scene_%02d" % k
        cv2.imwrite(os.path.join(args.dest, "images", stem + ".jpg"), bgr,
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        Image.fromarray(label, "L").save(os.path.join(args.dest, "labels", stem + ".png"),
                                         optimize=True)
    print("wrote %d generated scenes to %s" % (args.count, args.dest))


if __name__ == "__main__":
    main()
