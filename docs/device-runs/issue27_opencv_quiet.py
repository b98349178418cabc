"""Issue 27: check on the device (JetPack's OpenCV, e.g. 4.1.1 on a Jetson Nano) that infer's
quiet_opencv() silences OpenCV's and FFmpeg's own log lines for a video that cannot be opened and
a camera index that does not exist. Run from the project root with the device's Python:

    python3 docs/device-runs/issue27_opencv_quiet.py

It prints the OpenCV version, the silencing call that this OpenCV has, and PASS or FAIL with the
log lines that got through (exit code 1 on FAIL)."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD = """
import sys
sys.path.insert(0, %r)
import cv2
from stages.device.report import quiet_opencv
quiet_opencv()
logging = getattr(getattr(cv2, "utils", None), "logging", None)
print("opencv", cv2.__version__, "utils.logging.setLogLevel" if logging is not None and
      hasattr(logging, "setLogLevel") else ("setLogLevel" if hasattr(cv2, "setLogLevel")
                                             else "environment only"))
assert not cv2.VideoCapture(%r).isOpened()
assert not cv2.VideoCapture(97).isOpened()
"""


def main():
    with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as f:
        f.write(b"not a video")
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD % (ROOT, f.name)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=120)
    finally:
        os.remove(f.name)
    print(proc.stdout.strip())
    leaked = [l for l in proc.stderr.splitlines() if l.strip()]
    if proc.returncode != 0 or leaked:
        print("FAIL: exit %d; log lines that got through:\n%s" % (proc.returncode,
                                                                  "\n".join(leaked)))
        return 1
    print("PASS: no OpenCV or FFmpeg log line on stderr")
    return 0


if __name__ == "__main__":
    sys.exit(main())
