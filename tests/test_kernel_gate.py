"""The kernel gate (tools/kernel_gate.py): its ptxas parsing and limit checks on recorded ptxas
output (always), and the real NVRTC + ptxas compile where requirements-kernels.txt is
installed."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("kernel_gate",
                                              os.path.join(ROOT, "tools", "kernel_gate.py"))
kg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kg)

# ptxas 12.6 -v for sm_53 on postprocess.cu with __launch_bounds__(256, 5) (before the Jetson
# archs got four blocks): the tiled kernels spill.
SPILLING = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'upsample_argmax_tiles_f16' for 'sm_53'
ptxas info    : Function properties for upsample_argmax_tiles_f16
    24 bytes stack frame, 32 bytes spill stores, 48 bytes spill loads
ptxas info    : Used 48 registers, used 1 barriers, 24 bytes cumulative stack size, """ \
    """368 bytes cmem[0], 20 bytes cmem[2]
ptxas info    : Compiling entry function 'upsample_argmax_early_f16' for 'sm_53'
ptxas info    : Function properties for upsample_argmax_early_f16
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 0 barriers, 368 bytes cmem[0], 12 bytes cmem[2]
"""
# ptxas 12.6 -v for sm_53 on a kernel with a 4 KB __shared__ array.
SHARED = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'shared_and_local' for 'sm_53'
ptxas info    : Function properties for shared_and_local
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 32 registers, used 1 barriers, 4096 bytes smem, 336 bytes cmem[0]
"""


def test_parse_reads_registers_shared_and_local_memory():
    use = kg.parse_ptxas(SPILLING)
    assert use["upsample_argmax_tiles_f16"] == dict(regs=48, smem=0, lmem=0, stack=24,
                                                    spill_stores=32, spill_loads=48)
    assert use["upsample_argmax_early_f16"]["regs"] == 40
    assert kg.parse_ptxas(SHARED)["shared_and_local"]["smem"] == 4096
    lmem = SHARED.replace("4096 bytes smem", "16 bytes lmem, 4096 bytes smem")
    assert kg.parse_ptxas(lmem)["shared_and_local"]["lmem"] == 16


def test_any_local_memory_fails():
    use = kg.parse_ptxas(SPILLING)
    bad = kg.problems("sm_53", "upsample_argmax_tiles_f16", use["upsample_argmax_tiles_f16"],
                      256, 0)
    assert len(bad) == 1 and "local memory" in bad[0] and "Jetson Nano" in bad[0]
    assert kg.problems("sm_53", "e", use["upsample_argmax_early_f16"], 256, 0) == []
    only_stack = dict(use["upsample_argmax_early_f16"], stack=8)
    assert kg.problems("sm_87", "e", only_stack, 256, 0)


def test_static_plus_dynamic_shared_memory_against_48_kb():
    use = kg.parse_ptxas(SHARED)["shared_and_local"]
    assert kg.problems("sm_72", "k", use, 256, 48 * 1024 - 4096) == []
    bad = kg.problems("sm_72", "k", use, 256, 48 * 1024 - 4095)
    assert len(bad) == 1 and "4096 static + 45057 dynamic" in bad[0]


def test_register_limits_per_thread_and_per_block():
    use = dict(regs=128, smem=0, lmem=0, stack=0, spill_stores=0, spill_loads=0)
    assert kg.block_registers(128, 256) == 32768 and kg.block_registers(17, 256) == 6144
    assert kg.problems("sm_53", "k", use, 256, 0) == []
    more = dict(use, regs=129)  # 129 x 32 rounds up to 4352 registers per warp
    assert "registers per block" in kg.problems("sm_53", "k", more, 256, 0)[0]
    assert "registers per block" in kg.problems("sm_62", "k", more, 256, 0)[0]
    assert kg.problems("sm_72", "k", more, 256, 0) == []  # 64K registers per block there
    assert "per thread" in kg.problems("sm_87", "k", dict(use, regs=256), 32, 0)[0]


def test_launch_sizes_come_from_the_runtime():
    from runtime import cuda_ops
    threads, shared = kg.tile_launches()
    assert threads == 256 and 0 < shared <= cuda_ops.SHARED_MAX
    assert kg.launch_of("upsample_argmax_tiles_f32", (threads, shared)) == (256,
                                                                             cuda_ops.SHARED_MAX)
    assert kg.launch_of("blend_overlay", (threads, shared)) == (256, 0)


def test_nvcc_options_are_shared_with_runtime_check(monkeypatch, tmp_path):
    from stages.device import runtime_check
    assert kg.ptxas_flags() == ["-O3"]
    with pytest.raises(kg.GateError, match="-lineinfo"):
        kg.ptxas_flags(("-O3", "-lineinfo"))
    seen = []

    class Proc(object):
        returncode = 0

        def __init__(self, cmd, **kw):
            seen.append(cmd)
            open(cmd[cmd.index("-o") + 1], "wb").close()

        def communicate(self):
            return ("", None)

    monkeypatch.setattr(runtime_check, "NVCC_FLAGS", ("-O3", "-lineinfo"))
    monkeypatch.setattr(runtime_check.subprocess, "Popen", Proc)
    monkeypatch.setattr(runtime_check, "find_nvcc", lambda: "nvcc")
    monkeypatch.chdir(ROOT)
    runtime_check.compile_kernels(str(tmp_path), "sm_53")
    assert seen and all(c[:5] == ["nvcc", "-cubin", "-arch=sm_53", "-O3", "-lineinfo"]
                        for c in seen)


def test_cuda_10_2_names():
    for src in sorted(n for n in os.listdir(os.path.join(ROOT, "runtime", "kernels"))
                      if n.endswith(".cu")):
        with open(os.path.join(ROOT, "runtime", "kernels", src)) as f:
            assert kg.cuda_10_2_problems(src, f.read()) == []
    bad = kg.cuda_10_2_problems("x.cu", "#include <cuda_bf16.h>\n v = __reduce_add_sync(m, v);")
    assert any("__reduce_add_sync" in p and "CUDA_10_2_NAMES" in p for p in bad)
    assert any("bf16" in p for p in bad) and any("sm_80" in p for p in bad)
    assert kg.cuda_10_2_problems("x.cu", "// __reduce_add_sync is sm_80\n/* __ldcs\n */") == []


def toolchain_or_skip():
    try:
        return kg.toolchain()
    except kg.GateError:
        pytest.skip("needs requirements-kernels.txt (NVRTC, CUDA headers, ptxas wheels)")


def test_real_gate_passes_on_every_jetson_arch(capsys):
    toolchain_or_skip()
    assert kg.main([]) == 0
    out = capsys.readouterr().out
    for arch in ("sm_53", "sm_62", "sm_72", "sm_87"):
        assert re.search(arch + r"\s+postprocess.cu\s+upsample_argmax_tiles_f16\s", out)
    assert "12 kernels x 4 architectures, all within limits" in out


def test_real_gate_fails_on_a_spill_and_on_a_compile_error(tmp_path):
    toolchain_or_skip()
    src = tmp_path / "postprocess.cu"
    shutil.copy(os.path.join(ROOT, "runtime", "kernels", "postprocess.cu"), str(src))
    text = src.read_text()
    assert "#define TILE_MIN_BLOCKS 4" in text
    src.write_text(text.replace("#define TILE_MIN_BLOCKS 4", "#define TILE_MIN_BLOCKS 5"))
    rows, found = kg.gate(["sm_53"], [str(src)])
    assert any("upsample_argmax_tiles_f32" in p and "local memory" in p for p in found)
    src.write_text(text.replace("__int_as_float(0x7f800000)", "undefined_name"))
    with pytest.raises(kg.GateError, match="does not compile for sm_53"):
        kg.gate(["sm_53"], [str(src)])


def test_real_gate_command_line_exit_code():
    toolchain_or_skip()
    gate = os.path.join("tools", "kernel_gate.py")
    proc = subprocess.run([sys.executable, gate, "--arch", "sm_53"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    assert proc.returncode == 0 and "1 architectures" in proc.stdout, proc.stdout
