"""Write the shipped example images (generated scenes never used in training).

    python tools/make_examples.py examples/
"""
import os
import sys

import cv2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scenes import render_scene  # noqa: E402

EXAMPLES = [("street_1920x1080.jpg", 5000001, 1920, 1080), ("odd_641x479.jpg", 5000002, 641, 479),
            ("portrait_720x1280.jpg", 5000003, 720, 1280)]

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "examples"
    os.makedirs(out, exist_ok=True)
    for name, seed, w, h in EXAMPLES:
        img, _ = render_scene(seed, w, h)
        cv2.imwrite(os.path.join(out, name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        print(name, img.shape)
