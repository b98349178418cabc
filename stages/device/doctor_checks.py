"""The checks of `doit doctor`, one function each. Every check reads a context dict (see
stages.device.doctor.context: the filesystem root, the probed Python environment, the artifact
layout, this machine's role and next link) and returns one row: name, status (ok, warn, FAIL),
what was found, the fix, and the links a FAIL blocks."""
import os

from runtime import jetson

SWAP_CMD = ("sudo fallocate -l {gb}G {f} && sudo chmod 600 {f} && sudo mkswap {f} && "
            "sudo swapon {f}")
LIBS_MB = 1000   # CUDA context + TensorRT, cuDNN, cuBLAS once loaded (CUDA 10.2 loads them eagerly)
ONNX_COPIES = 4  # file bytes in Python, the parser's weights, the builder's copies, the plan


def row(name, status, detail, fix=None, blocks=()):
    return {"name": name, "status": status, "detail": detail, "fix": fix, "blocks": list(blocks)}


def device_links(ctx, *links):
    """The links a missing piece blocks, restricted to those this machine runs."""
    return [l for l in links if l in ctx["links"]]


def version_tuple(text):
    out = []
    for part in (text or "").split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def check_board(ctx):
    env, jp = ctx["env"], ctx["jetpack"]
    gpu = env.get("gpu")
    if ctx["jetson"]:
        name = ctx["board"] or "Jetson (no device-tree model)"
        if not jp:
            return row("board", "warn", "%s, L4T %s: not in this project's JetPack table" % (
                name, ctx["l4t"]), "see https://developer.nvidia.com/embedded/jetpack-archive")
        return row("board", "ok", "%s, L4T %s = JetPack %s: TensorRT %s, CUDA %s, cuDNN %s, "
                   "Python %s" % (name, ctx["l4t"], jp["jetpack"], jp["tensorrt"], jp["cuda"],
                                  jp["cudnn"], jp["python"]))
    if gpu:
        return row("board", "ok", "desktop/datacenter GPU %s (sm_%s, %d MB), not a Jetson" % (
            gpu["name"], gpu["compute_capability"].replace(".", ""), gpu["memory_mb"]))
    return row("board", "ok", "CPU-only host (no CUDA GPU through pycuda): build_engine and "
               "runtime_check run on the device; verify, infer and bench use ONNX Runtime here")


def check_tensorrt(ctx):
    trt, jp = ctx["env"].get("tensorrt"), ctx["jetpack"]
    if trt is None:
        if ctx["jetson"]:
            return row("tensorrt", "FAIL", "not importable", "sudo apt-get install "
                       "python3-libnvinfer (JetPack's bindings are for its system python%s)" % (
                           (jp or {}).get("python", "3")), device_links(ctx, "build_engine"))
        if ctx["env"].get("gpu"):
            return row("tensorrt", "warn", "not importable: no engine can be built here; verify, "
                       "infer and bench use ONNX Runtime", "pip install tensorrt")
        return row("tensorrt", "ok", "not installed (not needed on the host)")
    detail = "tensorrt %s importable" % trt
    if jp and version_tuple(trt)[:2] != version_tuple(jp["tensorrt"])[:2]:
        return row("tensorrt", "warn", detail + ", but L4T %s ships %s" % (
            ctx["l4t"], jp["tensorrt"]), "reinstall JetPack's python3-libnvinfer; engines are "
            "tied to one TensorRT")
    target = ctx.get("onnx_target")
    if target and version_tuple(trt)[:2] < version_tuple(target)[:2]:
        return row("tensorrt", "warn", detail + "; model.onnx was gated for TensorRT %s" % target,
                   "operators newer than %s may not parse: export for this TensorRT or upgrade "
                   "JetPack" % trt)
    if jp:
        detail += " (JetPack %s ships %s)" % (jp["jetpack"], jp["tensorrt"])
    return row("tensorrt", "ok", detail)


def check_cuda(ctx):
    env, jp = ctx["env"], ctx["jetpack"]
    gpu = env.get("gpu")
    if not env.get("pycuda"):
        if ctx["role"] == "host":
            return row("cuda", "ok", "pycuda not installed (not needed on the host)")
        return row("cuda", "FAIL", "pycuda is not importable", "export PATH=/usr/local/cuda/bin:"
                   "$PATH && pip3 install --user 'pycuda<=2022.1'",
                   device_links(ctx, "build_engine", "runtime_check"))
    if not gpu:
        if not ctx["jetson"]:
            return row("cuda", "ok", "pycuda %s, no CUDA device" % env["pycuda"])
        return row("cuda", "FAIL", "pycuda %s, but no CUDA device" % env["pycuda"],
                   "check the L4T driver and that this user is in the video group",
                   device_links(ctx, "build_engine", "runtime_check"))
    detail = "pycuda %s, %s sm_%s, CUDA %s (pycuda's build), driver %s" % (
        env["pycuda"], gpu["name"], gpu["compute_capability"].replace(".", ""), gpu["cuda"],
        gpu["driver"])
    if jp and version_tuple(gpu["cuda"])[:2] != version_tuple(jp["cuda"])[:2]:
        return row("cuda", "warn", detail + "; JetPack %s has CUDA %s" % (
            jp["jetpack"], jp["cuda"]), "rebuild pycuda against JetPack's CUDA: pip3 install "
            "--user --force-reinstall --no-binary :all: 'pycuda<=2022.1'")
    return row("cuda", "ok", detail)


def check_python(ctx):
    version, jp = ctx["env"]["python"], ctx["jetpack"]
    if version_tuple(version) < (3, 6):
        return row("python", "FAIL", version, "use python3.6 or newer", ctx["links"])
    if jp and version_tuple(version)[:2] != version_tuple(jp["python"]):
        return row("python", "warn", "%s; JetPack %s's TensorRT bindings are for Python %s" % (
            version, jp["jetpack"], jp["python"]), "run doit with python%s" % jp["python"])
    return row("python", "ok", version)


def check_numpy(ctx):
    env = ctx["env"]
    numpy, trt = env.get("numpy"), env.get("tensorrt")
    if not numpy:
        return row("numpy", "FAIL", "not importable", "pip3 install --user numpy==1.19.4",
                   ctx["links"])
    t = version_tuple(trt)[:3]
    if trt and (8, 4) <= t <= (8, 5, 2) and version_tuple(numpy) >= (1, 24):
        return row("numpy", "warn", "%s with TensorRT %s, whose trt.nptype uses np.bool "
                   "(removed in numpy 1.24)" % (numpy, trt), "pip3 install --user 'numpy<1.24'")
    if numpy == "1.19.5" and ctx["jetson"]:
        return row("numpy", "warn", "1.19.5 dies with 'Illegal instruction' on Jetson (aarch64)",
                   "pip3 install --user numpy==1.19.4")
    return row("numpy", "ok", numpy)


def check_doit(ctx):
    return row("doit", "ok", ctx["env"]["doit"] + " (dodo.py uses nothing newer than 0.34.2)")


def check_opencv(ctx):
    cv2 = ctx["env"].get("cv2")
    if not cv2:
        return row("opencv", "FAIL", "cv2 is not importable", "sudo apt-get install python3-opencv "
                   "(JetPack) or pip install opencv-python-headless", ctx["links"])
    detail = "%s, GStreamer %s" % (cv2["version"], cv2["gstreamer"] or "unknown")
    if ctx["jetson"] and not (cv2["gstreamer"] or "").startswith("YES"):
        return row("opencv", "warn", detail + ": CSI cameras (nvarguscamerasrc) will not open",
                   "use JetPack's python3-opencv (built with GStreamer), not pip's opencv-python")
    return row("opencv", "ok", detail)


def check_nvcc(ctx):
    on_path = ctx["env"].get("nvcc")
    fallback = jetson.at(ctx["root"], "/usr/local/cuda/bin/nvcc")
    if on_path:
        return row("nvcc", "ok", on_path)
    if ctx["role"] == "host":
        return row("nvcc", "ok", "not on PATH (not needed on the host)")
    if os.path.isfile(fallback):
        return row("nvcc", "warn", "not on PATH, found at /usr/local/cuda/bin/nvcc",
                   "export PATH=/usr/local/cuda/bin:$PATH (add it to ~/.bashrc)")
    if ctx["kernels_here"]:
        return row("nvcc", "ok", "absent, and not needed: the kernels for %s are compiled" % (
            ctx["sm"]))
    return row("nvcc", "FAIL", "not on PATH nor at /usr/local/cuda/bin",
               "install the CUDA toolkit (JetPack: sudo apt-get install cuda-toolkit-*)",
               device_links(ctx, "runtime_check"))


def estimate_build(onnx_bytes, workspace_mb, integrated):
    """(MB, how): the memory a TensorRT build of this ONNX needs. On a Jetson the GPU's workspace
    is taken from the same RAM; on a discrete GPU it is not."""
    onnx_mb = onnx_bytes / float(1 << 20)
    total = LIBS_MB + ONNX_COPIES * onnx_mb + (workspace_mb if integrated else 0)
    how = "%d MB CUDA/TensorRT/cuDNN libraries + %d x ONNX (%.0f MB)" % (
        LIBS_MB, ONNX_COPIES, onnx_mb)
    how += " + workspace %d MB (shared CPU/GPU memory)" % workspace_mb if integrated else \
        " (workspace %d MB lives in GPU memory)" % workspace_mb
    return int(round(total)), how


def memory_budget(root):
    """(usable MB, description) where usable = MemAvailable + free disk swap; zram is left out:
    it is compressed RAM, and float weights barely compress."""
    mem = jetson.meminfo(root)
    if not mem:
        return None, "/proc/meminfo unreadable"
    entries = jetson.swaps(root)
    zram = sum(s["size_mb"] for s in entries if s["zram"])
    disk = sum(s["size_mb"] - s["used_mb"] for s in entries if not s["zram"])
    if not entries:  # /proc/swaps unreadable: take meminfo's swap, assumed to be disk
        disk = mem["swap_free"]
    text = "RAM %d MB (%d available), disk swap %d MB free, zram %d MB (not counted)" % (
        mem["total"], mem["available"], disk, zram)
    return mem["available"] + disk, text


def swap_command(root, short_mb):
    names = [s["name"] for s in jetson.swaps(root)]
    path = "/swapfile" if "/swapfile" not in names else "/swapfile2"
    gb = max(4, -(-int(short_mb) // 1024))
    return SWAP_CMD.format(gb=gb, f=path)


def check_memory(ctx):
    usable, text = memory_budget(ctx["root"])
    onnx = ctx["layout"].onnx_model if ctx["layout"] else None
    if usable is None:
        return row("memory", "warn", text)
    if ctx["role"] != "device" or not onnx or not os.path.isfile(onnx):
        return row("memory", "ok", text)
    need, how = estimate_build(os.path.getsize(onnx), ctx["workspace_mb"], ctx["jetson"])
    detail = "%s; the engine build needs about %d MB = %s" % (text, need, how)
    if need <= usable:
        return row("memory", "ok", detail)
    fix = ("add swap: %s; or stop the desktop (sudo systemctl isolate multi-user.target), or "
           "lower engine.workspace_mb" % swap_command(ctx["root"], need - usable))
    status = "FAIL" if "build_engine" == ctx["next"] else "warn"
    return row("memory", status, detail, fix, device_links(ctx, "build_engine"))


def check_power(ctx):
    if not ctx["jetson"]:
        return row("power", "ok", "not a Jetson (no nvpmodel)")
    mode = jetson.power_mode(ctx["runner"])
    if mode is None:
        return row("power", "warn", "nvpmodel -q gave no power mode",
                   "sudo apt-get install nvpmodel")
    detail = "nvpmodel mode %d (%s)" % (mode["id"], mode["name"])
    if "MAXN" not in mode["name"].upper():
        nano = jetson.board_sm(ctx["board"]) == "5.3"
        return row("power", "warn", detail + ": not the fastest mode", "sudo nvpmodel -m 0 (MAXN, "
                   "10 W)" if nano else "`nvpmodel -p --verbose` lists the modes: sudo nvpmodel -m "
                   "<id of MAXN>")
    return row("power", "ok", detail)


def check_clocks(ctx):
    if not ctx["jetson"]:
        return row("clocks", "ok", "not a Jetson (no jetson_clocks)")
    root = ctx["root"]
    active, evidence = jetson.jetson_clocks(root)
    gpu, emc = jetson.devfreq(root), jetson.emc(root)
    state = {True: "on", False: "off", None: "unknown"}[active]
    parts = ["jetson_clocks %s (%s)" % (state, evidence)]
    if gpu:
        parts.append("GPU %d MHz" % gpu["cur_mhz"])
    parts.append("EMC %d/%s MHz" % (emc["cur_mhz"], emc["max_mhz"]) if emc else
                 "EMC not readable (debugfs needs root)")
    temps = jetson.temperatures(root)
    if temps:
        parts.append("temps " + ", ".join("%s %.0fC" % kv for kv in sorted(temps.items())))
    if active:
        return row("clocks", "ok", "; ".join(parts))
    return row("clocks", "warn", "; ".join(parts), "sudo jetson_clocks before doit bench")
