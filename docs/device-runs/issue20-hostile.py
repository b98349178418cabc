"""Issue 20 on a machine with a GPU and TensorRT (run from the project root, after the host chain
and `doit build_engine`): the round-2 refusals through the real TensorRT backend and the device's
OpenCV. Prints one line per case and exits non-zero if any case misbehaves. Needs nothing carried
beyond the project with its artifacts (golden, onnx, precision) built.

    python docs/device-runs/issue20-hostile.py
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def doit(cwd, *args):
    p = subprocess.run([sys.executable, "-m", "doit"] + list(args), cwd=cwd, timeout=600,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return p.returncode, p.stdout


def check(name, ok, out):
    print("%-60s %s" % (name, "ok" if ok else "FAILED\n" + out[-2000:]))
    return ok


def main():
    work = tempfile.mkdtemp(prefix="issue20-")
    proj = os.path.join(work, "p")
    shutil.copytree(ROOT, proj, ignore=shutil.ignore_patterns(".git", ".venv*", "__pycache__"))
    results = []
    # golden NaN logits with a matching hash: the TensorRT verify refuses, never "nan ... ok"
    index_path = os.path.join(proj, "artifacts", "golden", "golden.json")
    with open(index_path) as f:
        index = json.load(f)
    rec = index["images"][0]
    path = os.path.join(proj, rec["dir"], "logits.npy")
    logits = np.load(path)
    logits.reshape(-1)[3] = np.nan
    np.save(path, logits)
    with open(path, "rb") as f:
        rec["sha256"]["logits.npy"] = hashlib.sha256(f.read()).hexdigest()
    with open(index_path, "w") as f:
        json.dump(index, f)
    code, out = doit(proj, "-s", "verify", "backend=tensorrt")
    refused = code != 0 and "produces NaN logits" in out and "Traceback" not in out
    results.append(check("verify (tensorrt) refuses NaN golden logits", refused, out))
    # a real MPEG-TS video through the device's OpenCV and the TensorRT backend
    import cv2
    video = os.path.join(work, "clip.ts")
    w = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for i in range(5):
        w.write(np.full((240, 320, 3), 40 * i, np.uint8))
    w.release()
    out_dir = os.path.join(work, "out")
    code, out = doit(ROOT, "infer", "image=" + video, "out=" + out_dir, "mode=overlay")
    mp4 = os.path.join(out_dir, "clip_overlay.mp4")
    results.append(check("infer reads a .ts video and writes a non-empty mp4",
                         code == 0 and os.path.isfile(mp4) and os.path.getsize(mp4) > 0, out))
    shutil.rmtree(work)
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
