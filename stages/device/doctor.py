"""doit doctor: whether this machine can run the next link, one line per check (ok, warn, FAIL)
with the fix. It exits non-zero only when a FAIL blocks the next link, and names that link.
Also the engine build's memory guard (check_build_memory) and what `doit bench` records about
the conditions it ran under (bench_conditions, jetson_clocks_warning, trtexec_crosscheck).
Every probe takes `root` (a fake filesystem tree in tests) and `env` (the importables)."""
import glob
import json
import os
import platform
import re
import shutil
from importlib.util import find_spec

from runtime import jetson
from runtime.device import probe_gpu, probe_tensorrt, slug
from runtime.engine_folder import ENGINE, EngineFolder
from runtime.kernels import KERNELS, cubin
from stages.common.errors import DeviceError
from stages.common.files import sha256_file
from stages.device import doctor_checks as checks
from stages.device.doctor_checks import row

TRTEXEC = "/usr/src/tensorrt/bin/trtexec"


def _version(module, attr="__version__"):
    try:
        value = getattr(__import__(module), attr)
    except Exception:  # ImportError, or a broken install raising anything at import
        return None
    return ".".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def probe_cv2():
    try:
        import cv2
    except Exception:
        return None
    m = re.search(r"GStreamer:\s*(.+)", cv2.getBuildInformation())
    return {"version": cv2.__version__, "gstreamer": m.group(1).strip() if m else None}


def probe_env():
    """What this Python can import, the same dict the tests fake."""
    return {"python": platform.python_version(), "numpy": _version("numpy"),
            "doit": _version("doit"), "cv2": probe_cv2(), "tensorrt": probe_tensorrt(),
            "pycuda": _version("pycuda", "VERSION_TEXT"), "gpu": probe_gpu(),
            "nvcc": shutil.which("nvcc"),
            "host": bool(find_spec("torch") and find_spec("transformers"))}


def _onnx_target(layout):
    try:
        with open(os.path.join(layout.onnx_dir, "report.json")) as f:
            return json.load(f)["gate"]["target_tensorrt"]
    except (IOError, OSError, ValueError, KeyError, TypeError):
        return None


def _next_link(ctx):
    onnx = ctx["layout"] and os.path.isfile(ctx["layout"].onnx_model)
    if ctx["role"] == "host":
        return "onnx" if ctx["env"].get("host") and not onnx else "verify"
    done = {"build_engine": ctx["engine_here"], "runtime_check": ctx["kernels_here"]}
    for link in ("build_engine", "runtime_check"):
        if link in ctx["links"] and not done[link]:
            return link
    return "verify"


def context(layout=None, engine_cfg=None, root="/", env=None, runner=jetson.run_command):
    """Everything the checks read: the machine (under root), its importables, its artifacts."""
    env = probe_env() if env is None else env
    release, model, gpu = jetson.l4t(root), jetson.board(root), env.get("gpu") or {}
    is_jetson = bool(release or "jetson" in (model or "").lower())
    fp = {"gpu": gpu.get("name"), "compute_capability": gpu.get("compute_capability"),
          "cuda": gpu.get("cuda"), "tensorrt": env.get("tensorrt"), "l4t": release}
    sm = gpu.get("compute_capability") or (jetson.board_sm(model) if is_jetson else None)
    role = "device" if env.get("tensorrt") or is_jetson else ("gpu" if gpu else "host")
    ctx = {"root": root, "env": env, "runner": runner, "layout": layout, "jetson": is_jetson,
           "l4t": release, "board": model, "jetpack": jetson.jetpack(release), "fp": fp,
           "slug": slug(fp), "sm": "sm_" + sm.replace(".", "") if sm else None, "role": role,
           "links": {"device": ["build_engine", "runtime_check", "verify"],
                     "gpu": ["runtime_check", "verify"], "host": ["verify"]}[role],
           "workspace_mb": (engine_cfg or {}).get("workspace_mb", 1024),
           "onnx_target": _onnx_target(layout) if layout else None}
    engine = layout and EngineFolder(layout.engine_dir(ctx["slug"])).engine
    kernels = layout and ctx["sm"] and layout.kernels_dir(ctx["sm"])
    ctx["engine_here"] = bool(engine and fp["tensorrt"] and os.path.isfile(engine))
    ctx["kernels_here"] = bool(kernels) and all(
        os.path.isfile(cubin(kernels, k)) for k in KERNELS)
    ctx["next"] = _next_link(ctx)
    return ctx


def check_onnx(ctx):
    layout = ctx["layout"]
    path = layout.onnx_model
    if not os.path.isfile(path):
        if ctx["role"] == "host" and ctx["env"].get("host"):
            return row("model", "ok", "%s not exported yet: plain doit makes it" % path)
        return row("model", "FAIL", "%s is missing" % path, "on the host run doit && doit bundle, "
                   "copy artifacts/bundle/segformer-device-bundle.tar.gz here and untar it",
                   ctx["links"])
    sha = sha256_file(path)
    try:
        with open(layout.onnx_sidecar) as f:
            recorded = json.load(f).get("onnx_sha256")
    except (IOError, OSError, ValueError):
        recorded = None
    detail = "%s, %.1f MB, sha256 %s" % (path, os.path.getsize(path) / 1e6, sha[:16])
    if recorded != sha:
        return row("model", "FAIL", detail + ", which %s does not record" % layout.onnx_sidecar,
                   "copy model.onnx and model.json from the same doit onnx run (or bundle)",
                   ctx["links"])
    return row("model", "ok", detail + " (matches model.json)")


def _engine_tensorrt(folder):
    try:
        with open(EngineFolder(folder).sidecar) as f:
            return json.load(f)["engine"]["tensorrt"]
    except (IOError, OSError, ValueError, KeyError, TypeError):
        return "unknown"


def check_engines(ctx):
    layout = ctx["layout"]
    folders = [os.path.dirname(p) for p in sorted(glob.glob(
        os.path.join(layout.engine_root, "*", ENGINE)))]
    others = [os.path.basename(f) for f in folders if os.path.basename(f) != ctx["slug"]]
    listed = ", ".join("%s (TensorRT %s)" % (o, _engine_tensorrt(layout.engine_dir(o)))
                       for o in others) or "none"
    if not ctx["fp"]["tensorrt"]:
        return row("engines", "ok", "no TensorRT here to build or load one; present: " + listed)
    here = "built" if ctx["engine_here"] else "none yet (doit build_engine)"
    detail = "this device (%s): %s; for other devices: %s" % (ctx["slug"], here, listed)
    gpu = ctx["slug"].split("_")[0]
    stale = [o for o in others if o.split("_")[0] == gpu and ctx["role"] == "device"]
    if stale and not ctx["engine_here"]:
        return row("engines", "warn", detail + ": built here before an upgrade, they will not load",
                   "doit build_engine builds one for this TensorRT/L4T")
    return row("engines", "ok", detail)


def check_kernels(ctx):
    if not ctx["sm"]:
        return row("kernels", "ok", "no GPU here, no kernels to compile")
    folder = ctx["layout"].kernels_dir(ctx["sm"])
    if ctx["kernels_here"]:
        return row("kernels", "ok", "%s: %s.cubin" % (folder, ", ".join(KERNELS)))
    return row("kernels", "ok", "%s: not compiled yet (doit runtime_check compiles them)" % folder)


CHECKS = (checks.check_board, checks.check_tensorrt, checks.check_cuda, checks.check_python,
          checks.check_numpy, checks.check_doit, checks.check_opencv, checks.check_nvcc,
          checks.check_memory, checks.check_power, checks.check_clocks)


def examine(ctx):
    rows = [c(ctx) for c in CHECKS]
    if ctx["layout"]:
        rows += [check_onnx(ctx), check_engines(ctx), check_kernels(ctx)]
    return rows


def blockers(rows, ctx):
    return [r for r in rows if r["status"] == "FAIL" and ctx["next"] in r["blocks"]]


def render(rows, ctx):
    role = {"device": "device", "gpu": "GPU without TensorRT", "host": "host"}[ctx["role"]]
    lines = ["doit doctor (%s, next link: doit %s)" % (role, ctx["next"])]
    for r in rows:
        line = "  %-4s  %-8s %s" % (r["status"], r["name"], r["detail"])
        if r["fix"] and r["status"] != "ok":
            line += "  -> fix: " + r["fix"]
        if r["status"] == "FAIL" and r["blocks"]:
            line += "  [blocks doit %s]" % ", ".join(r["blocks"])
        lines.append(line)
    counts = dict((s, sum(r["status"] == s for r in rows)) for s in ("ok", "warn", "FAIL"))
    blocked = blockers(rows, ctx)
    lines.append("doctor: %d ok, %d warn, %d FAIL; doit %s %s" % (
        counts["ok"], counts["warn"], counts["FAIL"], ctx["next"],
        "is blocked by: " + ", ".join(r["name"] for r in blocked) if blocked else "can run"))
    return "\n".join(lines)


def run_doctor(cfg, layout, root="/", env=None, runner=jetson.run_command):
    """The doit action: print the report; raise only when the next link cannot succeed."""
    ctx = context(layout, cfg["engine"], root, env, runner)
    rows = examine(ctx)
    print(render(rows, ctx))
    blocked = blockers(rows, ctx)
    if blocked:
        raise DeviceError("doit %s cannot succeed on this machine: %s." % (ctx["next"], "; ".join(
            "%s (%s)" % (r["name"], r["fix"]) for r in blocked)))


def check_build_memory(onnx_path, workspace_mb, root="/"):
    """The guard before an engine build: raise when the estimated need exceeds free RAM + swap.
    Returns (needed MB, usable MB), or None where model.onnx or /proc/meminfo is missing."""
    usable, text = checks.memory_budget(root)
    if usable is None or not os.path.isfile(onnx_path):
        return None
    need, how = checks.estimate_build(os.path.getsize(onnx_path), workspace_mb,
                                      jetson.is_jetson(root))
    if need > usable:
        raise DeviceError(
            "The engine build needs about %d MB (%s) but only %d MB are free (%s): add swap with "
            "`%s` (or lower engine.workspace_mb in pipeline.yaml) and rerun doit build_engine." % (
                need, how, usable, text, checks.swap_command(root, need - usable)))
    return need, usable


def gpu_smi(runner=jetson.run_command):
    """A desktop GPU's temperature and clocks from nvidia-smi, or None."""
    fields = "temperature.gpu,clocks.sm,clocks.max.sm,clocks.mem,power.draw,pstate"
    result = runner(["nvidia-smi", "--query-gpu=" + fields, "--format=csv,noheader,nounits",
                     "-i", "0"])
    if not result or result[0] != 0 or not result[1].strip():
        return None
    values = [v.strip() for v in result[1].strip().splitlines()[0].split(",")]
    return dict(zip(fields.split(","), values))


def summary(rows, ctx):
    """The doctor's verdict in a few JSON-able fields (for the bench record)."""
    return {"ok": sum(r["status"] == "ok" for r in rows),
            "warn": sum(r["status"] == "warn" for r in rows),
            "fail": sum(r["status"] == "FAIL" for r in rows), "next_link": ctx["next"],
            "blocked": bool(blockers(rows, ctx)),
            "problems": ["%s %s: %s" % (r["status"], r["name"], r["detail"])
                         for r in rows if r["status"] != "ok"]}


def bench_conditions(layout=None, engine_cfg=None, root="/", env=None, runner=jetson.run_command):
    """Under what conditions a benchmark ran: power mode, jetson_clocks, clocks, temperatures
    (where readable; nvidia-smi's on a desktop GPU) and the doctor's summary. JSON-able."""
    ctx = context(layout, engine_cfg, root, env, runner)
    on_jetson = ctx["jetson"]
    active, evidence = jetson.jetson_clocks(root) if on_jetson else (None, "not a Jetson")
    jp = ctx["jetpack"] or {}
    return {"jetson": on_jetson, "board": ctx["board"], "l4t": ctx["l4t"],
            "jetpack": jp.get("jetpack"),
            "power_mode": jetson.power_mode(runner) if on_jetson else None,
            "jetson_clocks": active, "jetson_clocks_evidence": evidence,
            "gpu_clock_mhz": jetson.devfreq(root), "emc_clock_mhz": jetson.emc(root),
            "temperatures_c": jetson.temperatures(root),
            "nvidia_smi": None if on_jetson else gpu_smi(runner),
            "doctor": summary(examine(ctx), ctx)}


def jetson_clocks_warning(conditions=None, root="/"):
    """A warning line when a Jetson benchmark runs without jetson_clocks, else None."""
    if conditions is None:
        on_jetson = jetson.is_jetson(root)
        active, evidence = jetson.jetson_clocks(root) if on_jetson else (None, "")
    else:
        on_jetson = conditions["jetson"]
        active, evidence = conditions["jetson_clocks"], conditions["jetson_clocks_evidence"]
    if not on_jetson or active:
        return None
    state = "off" if active is False else "in an unknown state"
    return ("warning: jetson_clocks is %s (%s), so these timings are not at fixed maximum clocks: "
            "run `sudo jetson_clocks` before doit bench to compare runs." % (state, evidence))


def find_trtexec(root="/"):
    fixed = jetson.at(root, TRTEXEC)
    return fixed if os.access(fixed, os.X_OK) else shutil.which("trtexec")


def parse_trtexec(text):
    """(mean ms, median ms) of the last 'GPU Compute Time' summary (TensorRT 7: 'GPU Compute')."""
    found = re.findall(r"GPU Compute(?: Time)?:.*?mean\s*[=:]\s*([\d.]+)\s*ms.*?median\s*[=:]\s*"
                       r"([\d.]+)\s*ms", text)
    return (float(found[-1][0]), float(found[-1][1])) if found else None


def trtexec_crosscheck(engine_path, runs, tool=None, runner=jetson.run_command, root="/"):
    """TensorRT's own timing of the engine (trtexec --loadEngine), or None where trtexec is
    absent. A dict with mean/median GPU compute ms, or with 'error' when trtexec failed."""
    tool = tool or find_trtexec(root)
    if not tool:
        return None
    argv = [tool, "--loadEngine=" + engine_path, "--iterations=%d" % int(runs), "--warmUp=500",
            "--duration=0"]
    out = {"tool": tool, "command": " ".join(argv), "runs": int(runs)}
    result = runner(argv)
    times = parse_trtexec(result[1]) if result and result[0] == 0 else None
    if times is None:
        tail = (result[1].strip().splitlines() or [""])[-1] if result else "did not start"
        out["error"] = "trtexec gave no GPU Compute Time (exit %s): %s" % (
            result[0] if result else None, tail[-200:])
        return out
    out["gpu_compute_mean_ms"], out["gpu_compute_median_ms"] = times
    return out
