"""SegFormer (Hugging Face) -> ONNX -> TensorRT engine on an NVIDIA edge device.

The chain: checkout -> golden -> onnx -> build_engine -> runtime_check, plus verify, infer,
bench and bundle. Task creators only return dicts; the work lives in stages/ and runtime/.
Nothing heavy is imported here, so `doit list` is instant. See README.md."""
import os
from importlib.util import find_spec

from doit import get_var

from stages.common import actions, precisions
from stages.common.actions import run
from stages.common.config import load, slice_of
from stages.common.doitcompat import cmdline_vars
from stages.common.errors import PipelineError
from stages.common.intact import targets_intact
from stages.common.layout import Layout, kernel_sources
from stages.common.userpath import config_file, user_dir
from stages.common.uptodate import Check, config_changed, settings_changed
from stages.device import settings as device

actions.install_handlers()  # Ctrl-C, OSError, a damaged state file: one line, never a traceback
try:
    OVERRIDES = actions.check_vars(cmdline_vars())
    CFG = load(config_file(get_var("config", None)), OVERRIDES, user_dir())
    actions.prepare_artifacts(CFG["artifacts"])  # folder, lock per folder, stale temps, state file
except (PipelineError, OSError) as error:
    actions.fail_at_load(error)

L = Layout(CFG)
HOST = bool(find_spec("torch") and find_spec("transformers"))
DEVICE = bool(find_spec("tensorrt") and find_spec("pycuda"))
CUDA = bool(find_spec("pycuda"))

DOIT_CONFIG = {
    # doit's state lives with its artifacts: two pipeline files never rerun each other's links
    "backend": "json", "dep_file": os.path.join(CFG["artifacts"], actions.DEP_FILE),
    "verbosity": 2, "reporter": actions.Reporter,
    "default_tasks": (["checkout", "golden", "onnx", "precision"] if HOST else [])
    + (["build_engine", "runtime_check"] if DEVICE else []) + ["verify"],
}


ALWAYS = Check("it runs every time it is asked for (it keeps no result to be up to date with)")


def _host_only(name):
    msg = ("'doit %s' runs on the host: it needs torch and transformers (pip install -r "
           "requirements.txt); on the device, copy the host's artifacts with 'doit bundle' "
           "instead." % name)
    return {"actions": [run("stages.device.settings:refuse", msg)],
            "uptodate": [Check("it runs on the host only, and this machine has no torch and "
                               "transformers")]}


def task_checkout():
    ("""Resolve model.path (download only if model.repo_id is set), validate it, write the """
     """manifest.""")
    if not HOST:
        return _host_only("checkout")
    from stages.host.checkout import model_files
    return {"actions": [run("stages.host.checkout:run_checkout", CFG, L)],
            "file_dep": model_files(CFG["model"]["path"]), "targets": [L.manifest],
            "uptodate": [config_changed(slice_of(CFG, "model")), targets_intact([L.manifest])],
            "clean": True}


def task_golden():
    """Run transformers on the CPU: golden input tensors, logits, masks and overlays."""
    if not HOST:
        return _host_only("golden")
    return {"actions": [run("stages.host.golden:run_golden", CFG, L)],
            "file_dep": [L.manifest] + L.images, "targets": L.golden_targets(),
            "uptodate": [config_changed(slice_of(CFG, "golden")),
                         targets_intact(L.golden_targets())],
            "clean": True}


def task_onnx():
    """Export model.onnx, check, simplify, gate it for the target TensorRT, prove parity."""
    if not HOST:
        return _host_only("onnx")
    return {"actions": [run("stages.host.onnx_export:run_onnx", CFG, L)],
            "file_dep": [L.manifest, L.golden_json],
            "targets": [L.onnx_model, L.onnx_sidecar, L.onnx_report],
            "uptodate": [config_changed(slice_of(CFG, "onnx")),
                         targets_intact([L.onnx_model, L.onnx_sidecar, L.onnx_report])],
            "clean": True}


def task_precision():
    """Choose fp32 islands from the golden data, write model.mixed.onnx, preview fp16 (host)."""
    if not HOST:
        return _host_only("precision")
    settings = {"precision": CFG["precision"], "verify.fp16": CFG["verify"]["fp16"],
                "engine.precision": CFG["engine"]["precision"],
                "engine.keep_fp32": CFG["engine"]["keep_fp32"]}
    # fp32: the search is skipped, no mixed model (the precision table says which)
    made = precisions.get(CFG["engine"]["precision"]).link_outputs(L)
    return {"actions": [run("stages.host.precision_link:run_precision", CFG, L)],
            "file_dep": [L.onnx_model, L.manifest]
            + [t for t in L.golden_targets() if not t.endswith(".jpg")],
            "targets": made,
            "uptodate": [config_changed(settings), targets_intact(made)],
            "clean": True}


def _precision_files():
    """fp16 engines come from the precision link's files (issue 13; the precision table says
    which); on a device whose bundle lacks them, stages.device.engine says what to do."""
    wanted = precisions.get(CFG["engine"]["precision"]).host_files(L)
    return [p for p in wanted if HOST or os.path.exists(p)]


def task_build_engine():
    """Build the TensorRT engine for this device (run it on the device, e.g. the Jetson Nano)."""
    if not DEVICE:
        return {"actions": [run("stages.device.settings:refuse_engine")],
                "uptodate": [Check("this machine cannot build TensorRT engines (no TensorRT or no "
                                   "pycuda): it runs on the device only")]}
    return {"actions": [run("stages.device.engine:run_build", CFG, L)],
            "file_dep": [L.onnx_model, L.onnx_sidecar] + _precision_files(),
            "uptodate": [settings_changed("engine settings or device",
                                          lambda: device.engine_settings(CFG["engine"], L)),
                         device.engine_present(L)]}


def task_runtime_check():
    """Compile the CUDA kernels for this GPU and run one inference through the runtime."""
    if not CUDA:
        return {"actions": [run("stages.device.settings:refuse_cuda", "runtime_check")],
                "uptodate": [Check("this machine has no CUDA GPU with pycuda: it runs on the "
                                   "device only")]}
    return {"actions": [run("stages.device.runtime_check:run_check", CFG, L)],
            "file_dep": kernel_sources() + [L.onnx_model, L.golden_json],
            "uptodate": [settings_changed("device or engine",
                                          lambda: device.check_settings(L, CFG))]}


def task_verify():
    """Check the runtime against the golden files: input tensor, logits, end-to-end mask."""
    backend = CFG["verify"]["backend"]
    return {"actions": [run("stages.device.verify:run_verify", CFG, L)],
            "file_dep": L.golden_targets() + [L.onnx_model, L.onnx_sidecar],
            "targets": [L.verify_dir + "/report.json"],
            "uptodate": [settings_changed("backend, thresholds or engine",
                                          lambda: device.verify_settings(CFG, L, backend)),
                         targets_intact([L.verify_dir + "/report.json"])],
            "meta": {"up_to_date": ("stages.device.verify:last_report",
                                    L.verify_dir + "/report.json")}}


def task_infer():
    """Segment image=PATH (image, folder, video, camera index or GStreamer pipeline)."""
    return {"actions": [run("stages.device.infer:run_infer", CFG, L)],
            "uptodate": [ALWAYS], "verbosity": 2}


def task_bench():
    """Benchmark each stage (p50/p90/p99, FPS) and the GPU-vs-CPU pre/post ratios."""
    return {"actions": [run("stages.device.bench:run_bench", CFG, L,
                             "stages.host.cpu_compare:cpu_backends" if HOST else None,
                             "stages.host.fold_bench:compare_fold" if HOST else None)],
            "uptodate": [ALWAYS], "verbosity": 2}


def task_doctor():
    """Check this machine before the next link: board, versions, memory, power, artifacts."""
    return {"actions": [run("stages.device.doctor:run_doctor", CFG, L)], "uptodate": [ALWAYS],
            "verbosity": 2}


def task_bundle():
    """Pack what the device needs into one tarball (artifacts/bundle/...tar.gz)."""
    from stages.common.bundle import bundle_inputs
    pair = [run("stages.host.fold_bench:ship_pair", CFG, L)] if (
        HOST and CFG["bench"]["compare_fold"]) else []  # issue 22: the other graph too
    return {"actions": pair + [run("stages.common.bundle:run_bundle", CFG, L)],
            "file_dep": bundle_inputs(CFG, L), "targets": [L.bundle],
            "uptodate": [targets_intact([L.bundle]),
                         config_changed({"compare_fold": CFG["bench"]["compare_fold"]})],
            "clean": True}


def task_evaluate():
    """Accuracy on labelled images (data=DIR): mIoU, aAcc, per-class IoU of each variant here."""
    deps = [p for p in (L.onnx_model, L.onnx_sidecar) if HOST or os.path.exists(p)]
    if HOST:
        deps += [L.manifest] + _precision_files()
    return {"actions": [run("stages.device.evaluate:run_evaluate", CFG, L,
                            "stages.host.evaluate_host:host_variants" if HOST else None)],
            "file_dep": deps, "uptodate": [False], "verbosity": 2}
