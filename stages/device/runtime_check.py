"""runtime_check link (device): compile the .cu kernels to cubins for this GPU (only when their
source changed), load them, and run one full inference on a golden image with stage timings."""
import os
import shutil
import subprocess

from runtime.kernels import cubin as cubin_path
from stages.common import files
from stages.common.errors import DeviceError
from stages.common.layout import kernel_sources

# nvcc's options besides -cubin and -arch (tools/kernel_gate.py gives the same ones to NVRTC/ptxas)
NVCC_FLAGS = ("-O3",)


def find_nvcc():
    """nvcc from PATH, else from $CUDA_HOME/bin (default /usr/local/cuda, where JetPack puts it)."""
    fallback = os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")
    nvcc = shutil.which("nvcc") or (fallback if os.path.isfile(fallback) else None)
    if not nvcc:
        raise DeviceError("nvcc is not on PATH, so the CUDA kernels cannot be compiled: run "
                          "`export PATH=/usr/local/cuda/bin:$PATH` (JetPack installs it there) and "
                          "retry.")
    return nvcc


def compile_kernels(out_dir, arch):
    """nvcc -cubin each kernel for `arch`; skip those whose source sha256 is unchanged."""
    record_path = os.path.join(out_dir, "kernels.json")
    record = files.read_json(record_path) if os.path.isfile(record_path) else {}
    nvcc = None
    for src in kernel_sources():
        name = os.path.splitext(os.path.basename(src))[0]
        cubin = cubin_path(out_dir, name)
        sha = files.sha256_file(src)
        if record.get(name) == sha and os.path.isfile(cubin):
            print("runtime_check: %s.cubin is up to date for %s" % (name, arch))
            continue
        nvcc = nvcc or find_nvcc()
        with files.atomic_path(cubin, suffix=".cubin") as tmp:
            cmd = [nvcc, "-cubin", "-arch=" + arch] + list(NVCC_FLAGS) + ["-o", tmp, src]
            proc = subprocess.Popen(cmd,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    universal_newlines=True)
            log = proc.communicate()[0]
            if proc.returncode != 0:
                raise DeviceError("nvcc could not compile %s for %s: %s" % (
                    src, arch, log.strip().splitlines()[-1:]))
        record[name] = sha
        print("runtime_check: compiled %s -> %s" % (src, cubin))
    files.write_json(record_path, record)


def run_check(cfg, layout):
    from runtime.cuda_ops import arch
    from runtime.images import read_image
    from stages.common.compare import mask_metrics
    from runtime.golden import load_case
    from stages.device.select import describe, open_runtime
    gpu_arch = arch()
    compile_kernels(layout.kernels_dir(gpu_arch), gpu_arch)
    seg = open_runtime(layout, "auto", pre_post="gpu")
    from runtime.golden import read_index
    rec = read_index(layout.golden_json)[0]
    image = read_image(rec["source"])
    seg.segment(image)  # warm-up: module load, first launches, allocations
    result = seg.segment(image)
    agree = mask_metrics(result.mask, load_case(rec)[2], seg.labels)["mask_agreement"]
    info = describe(seg)
    print("runtime_check: %s on %s, pre/post on the %s" % (
        info["backend"], info["model"], info["pre_post"].upper()))
    print("runtime_check: %s %dx%d: %s; mask agreement with golden %.4f%%" % (
        rec["source"], image.shape[1], image.shape[0],
        ", ".join("%s %.2f ms" % kv for kv in sorted(result.timings.items())), 100 * agree))
