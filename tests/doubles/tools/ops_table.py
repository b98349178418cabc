"""docs/operators.md of onnx-tensorrt at a ref -> the JSON layout of
stages/host/trt_ops/tensorrt-*.json."""
import json, os, re, subprocess, sys

O = os.environ.get("ONNX_TRT_MIRROR", "onnx-tensorrt.git")  # a git mirror of onnx/onnx-tensorrt

def table(ref, tensorrt):
    md = subprocess.check_output(["git", "-C", O, "show", "%s:docs/operators.md" % ref]).decode()
    commit = subprocess.check_output(
        ["git", "-C", O, "rev-parse", ref + "^{commit}"]).decode().strip()
    note = next(l.strip() for l in md.splitlines() if l.startswith("TensorRT ") and "pset" in l)
    m = re.search(r"range of opset (\d+) to opset (\d+)", note)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
    else:
        lo, hi = 7, int(re.search(r"up to Opset (\d+)", note).group(1))
    sup, uns, res = [], [], {}
    for l in md.splitlines():
        if not l.startswith("|"):
            continue
        cells = [c.strip() for c in l.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[1] not in ("Y", "N"):
            continue
        op = cells[0]
        (sup if cells[1] == "Y" else uns).append(op)
        if len(cells) >= 4 and cells[3]:
            res[op] = cells[3].replace("\\.", ".")
    branch = ref.replace("refs/heads/", "")
    return {"opset_max": hi, "opset_min": lo, "restrictions": dict(sorted(res.items())),
            "source": "https://github.com/onnx/onnx-tensorrt/blob/%s/docs/operators.md" % branch,
            "source_commit": commit, "source_note": note, "supported": sorted(sup),
            "tensorrt": tensorrt, "unsupported": sorted(uns)}

if __name__ == "__main__":
    ref, trt, out = sys.argv[1:4]
    s = json.dumps(table(ref, trt), indent=1, sort_keys=True, ensure_ascii=False)
    open(out, "w").write(s)
