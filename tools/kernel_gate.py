"""The kernel gate: compile every runtime/kernels/*.cu for the Jetson GPUs without a GPU, and
check each kernel against that GPU's limits.

    pip install -r requirements-kernels.txt   # NVRTC, the CUDA headers and ptxas 12.6 (wheels)
    python tools/kernel_gate.py [--arch sm_53 ...]

Each source goes through NVRTC to PTX (-std=c++14: CUDA 10.2's nvcc default dialect, the Nano's
JetPack 4.6.x) and then through `ptxas -v` with the options `doit runtime_check` gives nvcc
(stages/device/runtime_check.NVCC_FLAGS). It fails (exit 1) on a compile error, on an intrinsic
outside those known to CUDA 10.2, on more registers per thread than the GPU allows or than the
launch's block size leaves, on static plus launch-time dynamic shared memory above the per-block
limit, and on any local memory (spill stores or loads, stack frame, lmem). It prints one row per
kernel per architecture."""
import argparse
import ctypes
import glob
import importlib.util
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from runtime import cuda_ops  # noqa: E402
from stages.device.runtime_check import NVCC_FLAGS  # noqa: E402

# Per-block limits (CUDA C Programming Guide, "Technical Specifications per Compute Capability";
# deviceQuery on a Nano and a TX2 reports 32768 registers per block).
ARCHS = {
    "sm_53": {"gpu": "Jetson Nano", "regs_thread": 255, "regs_block": 32768, "shared": 48 * 1024},
    "sm_62": {"gpu": "Jetson TX2", "regs_thread": 255, "regs_block": 32768, "shared": 48 * 1024},
    "sm_72": {"gpu": "Jetson Xavier", "regs_thread": 255, "regs_block": 65536,
              "shared": 48 * 1024},
    "sm_87": {"gpu": "Jetson Orin", "regs_thread": 255, "regs_block": 65536, "shared": 48 * 1024},
}
REG_UNIT = 256  # registers are given to a warp in units of 256 (compute capability 5.x to 8.x)
DIALECT = "-std=c++14"
PTXAS_FLAGS = {"-O3": ["-O3"]}  # nvcc's device-side meaning of each of runtime_check's flags

# Every double-underscore name the kernels use, all in CUDA 10.2 (Programming Guide 10.2 and
# its cuda_fp16.h). A new one must be checked against CUDA 10.2 before it goes here.
CUDA_10_2_NAMES = frozenset((
    "__global__", "__device__", "__forceinline__", "__restrict__", "__shared__",
    "__launch_bounds__", "__syncthreads", "__half", "__half2float", "__float2half_rn",
    "__fadd_rn", "__fsub_rn", "__fmul_rn", "__fdiv_rn", "__int_as_float", "__ffsll",
    "__popcll", "__ballot_sync", "__shfl_xor_sync", "__CUDA_ARCH__"))
NEWER = {"__reduce_": "warp reduce intrinsics (CUDA 11, sm_80)", "__nv_bfloat16": "bf16 (CUDA 11)",
         "cuda_bf16": "bf16 (CUDA 11)", "__hmax": "half max/min (CUDA 11)",
         "__hmin": "half max/min (CUDA 11)", "memcpy_async": "async copies (CUDA 11)",
         "cooperative_groups": "cooperative groups (check each API's CUDA version)",
         "cuda::": "libcu++ (check each API's CUDA version)"}


class GateError(Exception):
    """A toolchain problem: one sentence for the user."""


def toolchain():
    """(libnvrtc path, CUDA include folder, ptxas path) from the pip wheels."""
    spec = importlib.util.find_spec("nvidia")
    bases = list(spec.submodule_search_locations) if spec else []
    want = {"nvrtc": "cuda_nvrtc/lib/libnvrtc.so.*", "include": "cuda_runtime/include",
            "ptxas": "cuda_nvcc/bin/ptxas"}
    found = {}
    for key, pattern in want.items():
        hits = sorted(h for b in bases for h in glob.glob(os.path.join(b, pattern)))
        if not hits:
            raise GateError("The kernel gate needs NVRTC, the CUDA headers and ptxas: run "
                            "`pip install -r requirements-kernels.txt` (%s not found)." % pattern)
        found[key] = hits[0]
    return found["nvrtc"], found["include"], found["ptxas"]


def nvrtc_ptx(lib_path, include, src, arch):
    """PTX of `src` for `arch` (sm_XY -> compute_XY), or GateError with NVRTC's log."""
    lib = ctypes.CDLL(lib_path)
    prog = ctypes.c_void_p()
    with open(src, "rb") as f:
        text = f.read()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), text, src.encode(), 0, None, None):
        raise GateError("NVRTC could not take %s." % src)
    opts = [b"--gpu-architecture=compute_" + arch[3:].encode(), b"-I" + include.encode(),
            DIALECT.encode()]
    try:
        code = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        if code:
            raise GateError("%s does not compile for %s:\n%s" % (
                src, arch, log.value.decode(errors="replace").strip()))
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, ptx)
        return ptx.value
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def ptxas_flags(nvcc_flags=NVCC_FLAGS):
    """ptxas's share of runtime_check's nvcc options (an unknown one stops the gate)."""
    out = []
    for flag in nvcc_flags:
        if flag not in PTXAS_FLAGS:
            raise GateError("runtime_check gives nvcc %s, which tools/kernel_gate.py does not "
                            "know how to pass on: add it to PTXAS_FLAGS." % flag)
        out += PTXAS_FLAGS[flag]
    return out


def ptxas_report(ptxas, ptx, arch, workdir):
    """`ptxas -v` of the PTX for `arch`: its resource report (stderr and stdout)."""
    path = os.path.join(workdir, "kernel.ptx")
    with open(path, "wb") as f:
        f.write(ptx)
    proc = subprocess.run([ptxas, "-v", "-arch=" + arch] + ptxas_flags()
                          + [path, "-o", os.path.join(workdir, "kernel.cubin")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if proc.returncode:
        raise GateError("ptxas failed for %s:\n%s" % (arch, proc.stdout.strip()))
    return proc.stdout


ENTRY = re.compile(r"Compiling entry function '([^']+)'")
PROPS = re.compile(r"Function properties for (\S+)")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
FIELD = re.compile(r"(\d+) (registers|bytes lmem|bytes smem)")


def parse_ptxas(text):
    """{function: {regs, smem, lmem, stack, spill_stores, spill_loads}} from `ptxas -v`."""
    usage, entry, current = {}, None, None
    for line in text.splitlines():
        m = ENTRY.search(line) or PROPS.search(line)
        if m:
            current = m.group(1)
            entry = current if m.re is ENTRY else entry
            usage.setdefault(current, dict(regs=0, smem=0, lmem=0, stack=0, spill_stores=0,
                                           spill_loads=0))
            continue
        m = FRAME.search(line)
        if m and current:
            usage[current].update(stack=int(m.group(1)), spill_stores=int(m.group(2)),
                                  spill_loads=int(m.group(3)))
        elif "Used" in line and entry:
            for value, what in FIELD.findall(line):
                usage[entry][{"registers": "regs", "bytes lmem": "lmem",
                              "bytes smem": "smem"}[what]] = int(value)
    return usage


def tile_launches():
    """(largest block in threads, largest dynamic shared bytes) of upsample_argmax_tiles over
    frames from 1x1 to 4K and logits of 1 to 150 classes, chosen by the runtime's own choose_tile
    (shared bytes from cuda_ops.tile_shared_bytes)."""
    threads, shared = 0, 0
    for classes in (1, 19, 35, 150):
        for h, w in ((16, 16), (64, 64), (128, 128), (97, 61), (256, 256)):
            for out in ((1, 1), (5, 5), (479, 641), (1080, 1920), (2160, 4096)):
                chosen = cuda_ops.choose_tile(classes, h, w, out[0], out[1])
                if chosen:
                    threads = max(threads, chosen[1][0] * chosen[1][1])
                    shared = max(shared, chosen[3])
    return threads, shared


def launch_of(kernel, tiles):
    """(threads per block, dynamic shared bytes the runtime may ask for) of one entry point:
    the tiled early-out takes up to cuda_ops.SHARED_MAX, the others run on cuda_ops.BLOCK."""
    if kernel.startswith("upsample_argmax_tiles"):
        return tiles[0], max(tiles[1], cuda_ops.SHARED_MAX)
    return cuda_ops.BLOCK[0] * cuda_ops.BLOCK[1] * cuda_ops.BLOCK[2], 0


def block_registers(regs, threads):
    warps = -(-threads // 32)
    return warps * (-(-regs * 32 // REG_UNIT) * REG_UNIT)


def problems(arch, kernel, use, threads, dynamic):
    """What breaks one GPU's limits, one sentence each ([] when the kernel fits)."""
    lim, out = ARCHS[arch], []
    if use["regs"] > lim["regs_thread"]:
        out.append("%d registers per thread, above %d" % (use["regs"], lim["regs_thread"]))
    if block_registers(use["regs"], threads) > lim["regs_block"]:
        out.append("%d registers x %d threads need %d registers per block, above %d" % (
            use["regs"], threads, block_registers(use["regs"], threads), lim["regs_block"]))
    if use["smem"] + dynamic > lim["shared"]:
        out.append("%d static + %d dynamic bytes of shared memory, above %d" % (
            use["smem"], dynamic, lim["shared"]))
    local = use["spill_stores"] + use["spill_loads"] + use["stack"] + use["lmem"]
    if local:
        out.append("local memory: %d bytes spill stores, %d spill loads, %d stack, %d lmem" % (
            use["spill_stores"], use["spill_loads"], use["stack"], use["lmem"]))
    return ["%s %s (%s): %s" % (kernel, arch, lim["gpu"], p) for p in out]


def cuda_10_2_problems(src, text):
    """Names the kernels use that CUDA 10.2 (JetPack 4.6.x) may lack (comments are not uses)."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    out = []
    for name in sorted(set(re.findall(r"\b__[A-Za-z0-9_]+\b", text)) - CUDA_10_2_NAMES):
        out.append("%s uses %s, not in the kernel gate's CUDA 10.2 list: check it is in CUDA "
                   "10.2, then add it to CUDA_10_2_NAMES" % (src, name))
    for needle, why in sorted(NEWER.items()):
        if needle in text:
            out.append("%s uses %s: %s" % (src, needle, why))
    return out


def gate(archs, sources):
    """(table rows, problems) of every kernel of `sources` on every arch."""
    import tempfile
    lib, include, ptxas = toolchain()
    tiles, rows, found = tile_launches(), [], []
    for src in sources:
        with open(src) as f:
            found += cuda_10_2_problems(os.path.relpath(src, ROOT), f.read())
        for arch in archs:
            with tempfile.TemporaryDirectory() as work:
                usage = parse_ptxas(ptxas_report(ptxas, nvrtc_ptx(lib, include, src, arch),
                                                 arch, work))
            for kernel, use in sorted(usage.items()):
                threads, dynamic = launch_of(kernel, tiles)
                bad = problems(arch, kernel, use, threads, dynamic)
                found += bad
                rows.append((arch, os.path.basename(src), kernel, use["regs"], threads,
                             block_registers(use["regs"], threads), use["smem"], dynamic,
                             use["spill_stores"] + use["spill_loads"] + use["stack"]
                             + use["lmem"], "FAIL" if bad else "ok"))
    return rows, found


def print_table(rows):
    head = ("arch", "source", "kernel", "regs", "threads", "regs/block", "smem", "dyn smem",
            "local B", "")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for row in [head] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", choices=sorted(ARCHS),
                        help="only these architectures (default: all four)")
    args = parser.parse_args(argv)
    from stages.common.layout import kernel_sources
    sources = [os.path.join(ROOT, s) for s in kernel_sources()]
    try:
        rows, found = gate(args.arch or sorted(ARCHS), sources)
    except GateError as e:
        print("kernel gate: error: %s" % e, file=sys.stderr)
        return 1
    print_table(rows)
    for p in found:
        print("kernel gate: FAIL: %s" % p, file=sys.stderr)
    print("kernel gate: %d kernels x %d architectures, %s" % (
        len(set(r[2] for r in rows)), len(set(r[0] for r in rows)),
        "%d problems" % len(found) if found else "all within limits, no local memory"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
