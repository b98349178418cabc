"""Plan the Jetson Nano's pip install from the package index, from any machine: resolve
requirements-device.txt for CPython 3.6 on manylinux2014_aarch64 (JetPack 4.6.x with pip 21.3.1)
and fail if anything but pycuda would build from source there.

    python tools/nano_install_check.py [--keep DIR]

1. The pure-Python sdists in PURE_PYTHON (pyinotify: doit's file watcher, no wheel on PyPI;
   pytools: pycuda's helper, whose last release for 3.6 has no wheel) are built here into
   wheels; each must come out py*-none-any, as it will on the Nano with no compiler involved.
2. Everything else, pycuda excepted, is downloaded with --only-binary=:all: for the Nano's tags,
   environment markers evaluated for Python 3.6. A package without such a wheel fails the check.
3. pycuda: no aarch64 cp36 wheel may exist (else the README's build steps are needless) and its
   sdist must resolve (the README's apt packages and CUDA on PATH build it), and its own
   dependencies must have wheels for the Nano.
Markers of requirements-device.txt are evaluated for the Nano (NANO_ENV); those inside the
dependencies' metadata are pip's, evaluated for this machine's Python."""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NANO = ["--platform", "manylinux2014_aarch64", "--python-version", "3.6", "--implementation",
        "cp", "--abi", "cp36m"]
NANO_ENV = {"python_version": "3.6", "python_full_version": "3.6.9", "platform_machine": "aarch64",
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}
# pure-Python projects whose newest release for 3.6 is an sdist only (what pip 21.3.1 picks there)
PURE_PYTHON = ("pyinotify==0.9.6", "pytools==2022.1.12")
SOURCE_BUILD = "pycuda"  # the one package the README builds on the Nano


def pip(*args):
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                           "-q"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    return proc.returncode, "\n".join(l for l in proc.stdout.splitlines() if "is ignored" not in l)


def split_requirements(path):
    """(the Nano's requirements but pycuda, pycuda's), markers evaluated for the Nano: pip
    download's --python-version does not apply to environment markers."""
    from packaging.requirements import Requirement
    keep, pycuda = [], None
    with open(path) as f:
        for line in f:
            spec = line.split("#")[0].strip()
            if not spec:
                continue
            req = Requirement(spec)
            if req.marker and not req.marker.evaluate(NANO_ENV):
                continue
            plain = req.name + str(req.specifier)
            if req.name == SOURCE_BUILD:
                pycuda = plain
            else:
                keep.append(plain)
    return keep, pycuda


def wheel_tags(name):
    """'py3-none-any' from a wheel's file name."""
    return "-".join(name[:-len(".whl")].split("-")[-3:])


def build_pure_python(folder):
    problems = []
    for spec in PURE_PYTHON:
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                               "--no-binary=:all:", "-w", folder, spec], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True)
        built = [n for n in os.listdir(folder) if n.lower().startswith(spec.split("==")[0])]
        if proc.returncode or not built or not wheel_tags(built[0]).endswith("-none-any"):
            problems.append("%s does not build into a pure-Python wheel: %s" % (
                spec, (proc.stdout.strip().splitlines() or ["?"])[-1]))
    return problems


def check(folder):
    """(downloaded file names, problems)."""
    keep, pycuda = split_requirements(os.path.join(ROOT, "requirements-device.txt"))
    local = os.path.join(folder, "pure")
    os.makedirs(local)
    problems = build_pure_python(local)
    req = os.path.join(folder, "requirements-nano.txt")
    with open(req, "w") as f:
        f.write("\n".join(keep) + "\n")
    wheels = os.path.join(folder, "wheels")
    code, out = pip("--only-binary=:all:", "--find-links", local, "-d", wheels, "-r", req, *NANO)
    if code:
        problems.append("pip would build from source on the Nano (no manylinux2014_aarch64 cp36 "
                        "wheel): %s" % " ".join(out.splitlines()[-2:]))
    if not pycuda:
        problems.append("requirements-device.txt has no pycuda line for Python < 3.8")
    else:
        code, out = pip("--only-binary=:all:", "--no-deps", "-d", os.path.join(folder, "x"),
                        pycuda, *NANO)
        if code == 0:
            problems.append("%s now has an aarch64 cp36 wheel: drop its build steps from the "
                            "README" % pycuda)
        code, out = pip("--no-binary=" + SOURCE_BUILD, "--no-deps", "--no-build-isolation", "-d",
                        wheels, pycuda)
        if code or not any(n.startswith(SOURCE_BUILD) and n.endswith(".tar.gz")
                           for n in os.listdir(wheels)):
            problems.append("%s has no sdist that resolves: %s" % (pycuda, out[-300:]))
        problems += sdist_dependencies(wheels, local)
    names = sorted(os.listdir(wheels)) if os.path.isdir(wheels) else []
    return names, problems


def sdist_dependencies(wheels, local):
    """pycuda's own dependencies (its egg-info's requires.txt) as wheels for the Nano."""
    import tarfile
    found = [n for n in os.listdir(wheels) if n.startswith(SOURCE_BUILD) and n.endswith(".tar.gz")]
    if not found:
        return []
    with tarfile.open(os.path.join(wheels, found[0])) as tar:
        member = [m for m in tar.getnames() if m.endswith(".egg-info/requires.txt")]
        deps = tar.extractfile(member[0]).read().decode().split() if member else []
    code, out = pip("--only-binary=:all:", "--find-links", local, "-d", wheels, *(deps + NANO))
    if code or not deps:
        return ["%s's dependencies %s have no cp36 aarch64 wheels: %s" % (
            found[0], deps, " ".join(out.splitlines()[-2:]))]
    return []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="download into this folder and keep it")
    args = parser.parse_args(argv)
    folder = args.keep or tempfile.mkdtemp(prefix="nano-install-")
    names, problems = check(folder)
    for name in names:
        kind = wheel_tags(name) if name.endswith(".whl") else "sdist (built on the Nano)"
        print("nano-install: %-70s %s" % (name, kind))
    for p in problems:
        print("nano-install: FAIL: %s" % p, file=sys.stderr)
    print("nano-install: %d files for cp36 aarch64; %s" % (
        len(names), "%d problems" % len(problems) if problems
        else "only %s builds from source" % SOURCE_BUILD))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
