"""The house rules, read from the source (no import runs): runtime/ stands alone, the device wing
never imports the host wing, and nothing on the device side imports torch or transformers."""
import ast
import os
import subprocess

import pytest

from conftest import ROOT

HOST_ONLY = ("torch", "transformers", "onnx", "onnxsim", "safetensors", "huggingface_hub")


def _modules(folder):
    for base, dirs, names in os.walk(os.path.join(ROOT, folder)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for n in sorted(names):
            if n.endswith(".py"):
                yield os.path.relpath(os.path.join(base, n), ROOT)


def _imports(path):
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _offending(folders, forbidden):
    bad = []
    for folder in folders:
        for path in _modules(folder):
            bad += ["%s imports %s" % (path, m) for m in _imports(path)
                    if any(m == f or m.startswith(f + ".") for f in forbidden)]
    return bad


def test_runtime_imports_nothing_from_stages():
    assert _offending(["runtime"], ["stages"]) == []


def test_device_wing_and_common_never_import_the_host_wing():
    assert _offending(["stages/device", "stages/common", "runtime"], ["stages.host"]) == []


def test_device_side_never_imports_torch_or_transformers():
    assert _offending(["stages/device", "stages/common", "runtime"], HOST_ONLY) == []


def test_dodo_imports_the_host_wing_only_inside_host_tasks():
    with open(os.path.join(ROOT, "dodo.py")) as f:
        tree = ast.parse(f.read())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [getattr(n, "module", None) or n.names[0].name for n in top]
    assert not [m for m in names if m.startswith("stages.host") or m in HOST_ONLY], names


@pytest.mark.parametrize("wing", ["stages/host", "stages/device", "stages/common", "runtime"])
def test_the_scan_sees_every_wing(wing):
    # guards the tests above against vacuous success (a renamed folder would scan nothing)
    assert len(list(_modules(wing))) >= 2


def _source_files():
    """Tracked *.py, *.cu and .ci/* files, plus untracked *.py that git does not ignore."""
    def ls(*args):
        out = subprocess.check_output(["git", "ls-files"] + list(args), cwd=ROOT)
        return out.decode("utf-8").splitlines()
    files = ls("*.py", "*.cu", ".ci/*") + ls("--others", "--exclude-standard", "*.py")
    return sorted(set(f for f in files if os.path.isfile(os.path.join(ROOT, f))))


def test_no_line_longer_than_100_characters():
    files = _source_files()
    assert "dodo.py" in files and any(f.endswith(".cu") for f in files), files  # the scan sees them
    long_lines = []
    for path in files:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                length = len(line.rstrip("\r\n"))
                if length > 100:
                    long_lines.append("%s:%d (%d)" % (path, n, length))
    assert not long_lines, "lines over 100 characters: " + ", ".join(long_lines)
