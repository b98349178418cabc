"""Read-only probes of an NVIDIA Jetson (or any Linux machine): board, L4T release and the JetPack
it implies, memory, swap and zram, GPU/EMC clocks, temperatures, the nvpmodel power mode and
whether jetson_clocks is holding the clocks at their maximum. Every probe takes `root`, the
filesystem prefix ("/" on the machine itself, a fake tree in tests), and returns None where the
file is absent or unreadable. Nothing here needs root privileges or imports beyond the stdlib."""
import glob
import os
import re
import subprocess

from runtime.device import l4t_release

# L4T release -> JetPack and the versions it ships. Sources: the README's JetPack table (NVIDIA's
# JetPack archive via jetson_stats / jetson-containers maps, NVIDIA forum and pytorch/TensorRT
# pages); platforms.md of this project. First matching prefix wins.
JETPACK = (
    ("32.5", "4.5", "7.1.3", "10.2", "8.0", "3.6"),
    ("32.6", "4.6", "8.0.1", "10.2", "8.2.1", "3.6"),
    ("32.7.1", "4.6.1", "8.2.1", "10.2", "8.2.1", "3.6"),
    ("32.7", "4.6.2-4.6.6", "8.2.1", "10.2", "8.2.1", "3.6"),
    ("35.1", "5.0.2", "8.4.1", "11.4", "8.4.1", "3.8"),
    ("35.2", "5.1", "8.5.2", "11.4", "8.6.0", "3.8"),
    ("35.3", "5.1.1", "8.5.2", "11.4", "8.6.0", "3.8"),
    ("35.4", "5.1.2", "8.5.2", "11.4", "8.6.0", "3.8"),
    ("35", "5.1.3-5.1.5", "8.5.2", "11.4", "8.6.0", "3.8"),
    ("36.2", "6.0 DP", "8.6.2", "12.2", "8.9.4", "3.10"),
    ("36.3", "6.0", "8.6.2", "12.2", "8.9.4", "3.10"),
    ("36.4.0", "6.1", "10.3", "12.6", "9.3", "3.10"),
    ("36.4", "6.2", "10.3", "12.6", "9.3", "3.10"),
)
# Board name keyword -> compute capability (GPU generations of the Jetson family).
BOARD_SM = (("orin", "8.7"), ("xavier", "7.2"), ("tx2", "6.2"), ("nano", "5.3"), ("tx1", "5.3"))
# GPU devfreq nodes: 57000000.gpu (Nano, TX1), 17000000.gp10b (TX2), .gv11b (Xavier), .ga10b (Orin)
GPU_DEVFREQ = re.compile(r"\.(gpu|g[pva]\d+b)$")
# EMC (memory) clock in debugfs, readable as root only: Orin/Xavier (bpmp), then Nano/TX1/TX2.
EMC_FILES = (("/sys/kernel/debug/bpmp/debug/clk/emc/rate",
              "/sys/kernel/debug/bpmp/debug/clk/emc/max_rate"),
             ("/sys/kernel/debug/clk/emc/clk_rate", "/sys/kernel/debug/clk/emc/clk_max_rate"))


def at(root, path):
    return os.path.join(root, path.lstrip("/"))


def read(root, path):
    """The stripped text of root/path (NULs removed, as in device-tree strings), or None."""
    try:
        with open(at(root, path)) as f:
            return f.read().replace("\x00", "").strip()
    except (IOError, OSError, UnicodeDecodeError):
        return None


def read_int(root, path):
    text = read(root, path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def l4t(root="/"):
    """'32.7.1' from <root>/etc/nv_tegra_release, or None off Jetson."""
    return l4t_release(at(root, "/etc/nv_tegra_release"))


def board(root="/"):
    """The device-tree model, e.g. 'NVIDIA Jetson Nano Developer Kit', or None."""
    return read(root, "/proc/device-tree/model")


def is_jetson(root="/"):
    return bool(l4t(root) or "jetson" in (board(root) or "").lower())


def board_sm(model):
    """The compute capability a Jetson board's GPU has, from its name ('5.3' for a Nano)."""
    name = (model or "").lower()
    for key, sm in BOARD_SM:
        if key in name:
            return sm
    return None


def jetpack(release):
    """What an L4T release ships: dict(jetpack, tensorrt, cuda, cudnn, python), or None."""
    for prefix, jp, trt, cuda, cudnn, py in JETPACK:
        if release and (release == prefix or release.startswith(prefix + ".")):
            return {"jetpack": jp, "tensorrt": trt, "cuda": cuda, "cudnn": cudnn, "python": py}
    return None


def meminfo(root="/"):
    """/proc/meminfo in MB: total, available, swap_total, swap_free (None where absent)."""
    text = read(root, "/proc/meminfo") or ""
    values = dict((k, int(v) // 1024) for k, v in re.findall(r"^(\w+):\s+(\d+)", text, re.M))
    if not values:
        return None
    return {"total": values.get("MemTotal"),
            "available": values.get("MemAvailable", values.get("MemFree")),
            "swap_total": values.get("SwapTotal", 0), "swap_free": values.get("SwapFree", 0)}


def swaps(root="/"):
    """/proc/swaps as [{name, size_mb, used_mb, zram}] (zram: compressed RAM, not disk)."""
    text = read(root, "/proc/swaps")
    out = []
    for line in (text or "").splitlines()[1:]:
        f = line.split()
        if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
            out.append({"name": f[0], "size_mb": int(f[2]) // 1024, "used_mb": int(f[3]) // 1024,
                        "zram": "zram" in f[0]})
    return out


def devfreq(root, pattern=GPU_DEVFREQ):
    """The GPU's devfreq node: {name, cur_mhz, min_mhz, max_mhz}, or None where unreadable."""
    for path in sorted(glob.glob(at(root, "/sys/class/devfreq/*"))):
        name = os.path.basename(path)
        if pattern.search(name):
            rel = "/sys/class/devfreq/" + name + "/"
            hz = [read_int(root, rel + f) for f in ("cur_freq", "min_freq", "max_freq")]
            if hz[0] is None:
                continue
            return {"name": name, "cur_mhz": hz[0] // 1000000,
                    "min_mhz": hz[1] // 1000000 if hz[1] else None,
                    "max_mhz": hz[2] // 1000000 if hz[2] else None}
    return None


def emc(root="/"):
    """The memory-controller clock {cur_mhz, max_mhz} from debugfs (readable only as root)."""
    for cur, top in EMC_FILES:
        rate = read_int(root, cur)
        if rate:
            peak = read_int(root, top)
            return {"cur_mhz": rate // 1000000, "max_mhz": peak // 1000000 if peak else None}
    return None


def cpu_pinned(root="/"):
    """True when cpu0's minimum frequency equals its maximum (what jetson_clocks sets), None
    where cpufreq is unreadable."""
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    low, top = read_int(root, base + "scaling_min_freq"), read_int(root, base + "cpuinfo_max_freq")
    return None if low is None or top is None else low >= top


def jetson_clocks(root="/"):
    """(active, evidence): jetson_clocks pins the GPU's and CPUs' minimum clocks to their maximum.
    active is None where the clocks cannot be read."""
    gpu, cpu = devfreq(root), cpu_pinned(root)
    if gpu is None or gpu["min_mhz"] is None or gpu["max_mhz"] is None:
        return None, "GPU devfreq not readable"
    gpu_pinned = gpu["min_mhz"] >= gpu["max_mhz"]
    evidence = "GPU min %d / max %d MHz, CPU min %s max" % (
        gpu["min_mhz"], gpu["max_mhz"], {True: "=", False: "<", None: "?"}[cpu])
    return bool(gpu_pinned and cpu is not False), evidence


def temperatures(root="/"):
    """{zone type: degrees C} for every readable thermal zone (not the Nano's PMIC-Die, which
    always reads 100 C)."""
    out = {}
    for path in sorted(glob.glob(at(root, "/sys/class/thermal/thermal_zone*"))):
        rel = "/sys/class/thermal/" + os.path.basename(path)
        name, milli = read(root, rel + "/type"), read_int(root, rel + "/temp")
        if name and name != "PMIC-Die" and milli is not None and -40000 < milli < 150000:
            out[name] = round(milli / 1000.0, 1)
    return out


def run_command(argv):
    """(exit code, stdout+stderr) of argv, or None when the program is absent."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True)
        out, _ = proc.communicate(timeout=60)
        return proc.returncode, out
    except (IOError, OSError):
        return None
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def power_mode(runner=run_command):
    """`nvpmodel -q` as {name, id, raw}, or None where nvpmodel is absent or fails."""
    result = runner(["nvpmodel", "-q"])
    if not result or result[0] != 0:
        return None
    m = re.search(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)", result[1])
    if not m:
        return None
    return {"name": m.group(1), "id": int(m.group(2))}
