"""doit bundle: one tarball with exactly what the device needs (code, pipeline file, device
requirements, example images, the manifest, golden files and model.onnx), plus a manifest of
sha256s. On the device the host-only links are not defined, so nothing upstream reruns."""
import io
import json
import os
import tarfile
import time

from stages.common import files, precisions
from stages.common.errors import ArtifactError

# The device wing only: stages/host/ (torch, transformers) never travels to the device.
CODE_DIRS = ("stages/common", "stages/device", "runtime")
TOP_FILES = ("dodo.py", "pipeline.yaml", "requirements-device.txt", "README.md",
             "stages/__init__.py")
MANIFEST_NAME = "BUNDLE_MANIFEST.json"


def _code_files():
    out = []
    for top in CODE_DIRS:
        for folder, dirs, names in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            out += [os.path.join(folder, n) for n in sorted(names) if not n.endswith(".pyc")]
    return out


def bundle_inputs(cfg, layout):
    """Every file that goes into the bundle, relative to the project root."""
    images = sorted(set(layout.images + [cfg["bench"]["image"]]))
    artifacts = [layout.manifest] + layout.golden_targets() + [
        layout.onnx_model, layout.onnx_sidecar, layout.onnx_report] + precisions.get(
        cfg["engine"]["precision"]).link_outputs(layout)  # fp16: the islands' mixed model
    return ([f for f in TOP_FILES if os.path.exists(f)] + _code_files() + images + artifacts
            + _evaluate_files(cfg, layout))


def fold_pair_files(cfg, layout):
    """bench.compare_fold (issue 22): the other graph, its record and (fp16) its mixed version,
    made by the host's ship_pair when the bundle is packed."""
    if not cfg["bench"]["compare_fold"]:
        return []
    from stages.device.fold_engines import pair_paths
    paths = pair_paths(layout, cfg["onnx"]["fold"])
    return [paths["onnx"], paths["record"]] + (
        [paths["mixed"]] if precisions.get(cfg["engine"]["precision"]).host_artifact else [])


def _evaluate_files(cfg, layout):
    """doit evaluate's labelled set when it is inside the project, and the host's evaluate
    report (not its pictures, whose names change from run to run), so the device reports its
    engine next to the host's numbers."""
    out = []
    top = cfg["evaluate"]["data"]
    if not (top.startswith("..") or os.path.isabs(top)) and os.path.isdir(top):
        for folder, dirs, names in os.walk(top):
            dirs.sort()
            out += [os.path.join(folder, n) for n in sorted(names) if not n.startswith(".")]
    report = os.path.join(layout.artifacts, "evaluate", "report.json")
    return out + ([report] if os.path.isfile(report) else [])


def _readable(info):
    """Members readable by every user on the device (0644 with the usual umask; 0755 for
    executables), whatever mode the file had here."""
    if info.isfile():
        info.mode = files.EXEC_MODE if info.mode & 0o100 else files.FILE_MODE
    return info


def run_bundle(cfg, layout):
    names = bundle_inputs(cfg, layout) + fold_pair_files(cfg, layout)
    odd = [n for n in names if not os.path.isfile(n)]  # a FIFO or a dangling link
    if odd:
        raise ArtifactError("%s is not a regular file: the bundle takes files (a symlink is "
                            "followed and its target packed); replace it with the real file."
                            % odd[0])
    manifest = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": dict((n, files.sha256_file(n)) for n in names),
                "device_steps": ["pip3 install -r requirements-device.txt", "doit build_engine",
                                 "doit runtime_check", "doit verify", "doit infer image=examples/",
                                 "doit evaluate"]}
    with files.atomic_path(layout.bundle, suffix=".tar.gz") as tmp:
        # dereference: a symlinked example image travels as the file it points at
        with tarfile.open(tmp, "w:gz", dereference=True) as tar:
            for n in names:
                tar.add(n, arcname=os.path.join("segformer-trt", n), recursive=False,
                        filter=_readable)
            blob = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
            info = tarfile.TarInfo(os.path.join("segformer-trt", MANIFEST_NAME))
            info.size, info.mtime, info.mode = len(blob), int(time.time()), files.FILE_MODE
            tar.addfile(info, io.BytesIO(blob))
    size = os.path.getsize(layout.bundle) / 1e6
    print("bundle: %d files, %.1f MB -> %s" % (len(names), size, layout.bundle))
    print("bundle: on the device: tar xzf %s && cd segformer-trt && doit build_engine" %
          os.path.basename(layout.bundle))
