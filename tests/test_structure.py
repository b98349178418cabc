"""The house rules, read from the source (no import runs): runtime/ stands alone, the device wing
never imports the host wing, and nothing on the device side imports torch or transformers."""
import ast
import os
import re
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


# ---- One home for each thing that varies (issue 23)

def _code_modules():
    return ["dodo.py"] + [p for w in ("runtime", "stages") for p in _modules(w)]


def _docstrings(tree):
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    return set(id(n.body[0].value) for n in nodes
               if n.body and isinstance(n.body[0], ast.Expr)
               and isinstance(n.body[0].value, ast.Constant))


def _strings(path):
    """(node, parent) for every string constant of a module that is not a docstring."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read(), path)
    skip = _docstrings(tree)
    for parent in ast.walk(tree):
        for node in ast.iter_child_nodes(parent):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in skip):
                yield node, parent


def _modules_listing(names, at_least=None):
    """Modules holding a tuple/list/set literal with `at_least` of `names` (default: exactly
    `names`, nothing else)."""
    found = set()
    for path in _code_modules():
        for node, parent in _strings(path):
            if isinstance(parent, (ast.Tuple, ast.List, ast.Set)):
                listed = [e.value for e in parent.elts if isinstance(e, ast.Constant)]
                if (len(set(listed) & set(names)) >= at_least if at_least
                        else set(listed) == set(names)):
                    found.add(path)
    return sorted(found)


def test_backend_names_are_defined_once():
    from runtime import backends
    names = backends.names()[1:]
    assert set(names) >= {"tensorrt", "onnxruntime"}
    home = os.path.join("runtime", "backends", "__init__.py")
    assert _modules_listing(names, at_least=2) == []
    registered = set()
    for path in _code_modules():
        for node, parent in _strings(path):
            if (node.value in names and isinstance(parent, ast.Call)
                    and getattr(parent.func, "id", None) == "register"):
                registered.add(path)
    assert _comparing(names) == [] and registered == {home}, (_comparing(names), registered)


def _comparing(names):
    """Modules that compare something with one of `names` (==, !=, in, not in; a literal
    tuple, list or set of them counts)."""
    found = set()
    for path in _code_modules():
        with open(os.path.join(ROOT, path)) as f:
            tree = ast.parse(f.read(), path)
        for cmp in (n for n in ast.walk(tree) if isinstance(n, ast.Compare)):
            sides = [cmp.left] + cmp.comparators
            operands = sides + [e for side in sides if isinstance(side, (ast.Tuple, ast.List,
                                                                          ast.Set))
                                for e in side.elts]
            if any(isinstance(c, ast.Constant) and c.value in names for c in operands):
                found.add(path)
    return sorted(found)


def test_precision_names_are_compared_in_at_most_two_modules():
    from stages.common import precisions
    names = set(precisions.names()) | set(precisions.RECIPES) | {"int8"}
    assert {"fp32", "fp16", "weak", "strong"} <= names
    assert len(_comparing(names)) <= 2, _comparing(names)
    assert _modules_listing(precisions.names()) == []  # the table's rows are the one list


def test_the_engine_file_name_is_spelled_in_one_module():
    spelled = set(p for p in _code_modules() for node, _ in _strings(p)
                  if "model.engine" in node.value)
    assert spelled == {os.path.join("runtime", "engine_folder.py")}, spelled


def test_kernel_names_and_identity_keys_are_listed_once():
    from runtime.device import IDENTITY_KEYS
    from runtime.kernels import KERNELS
    assert _modules_listing(KERNELS) == [os.path.join("runtime", "kernels", "__init__.py")]
    assert _modules_listing(IDENTITY_KEYS) == [os.path.join("runtime", "device.py")]


def test_the_segmenter_asks_the_declared_interface_not_getattr():
    with open(os.path.join(ROOT, "runtime", "segmenter.py")) as f:
        source = f.read()
    assert "getattr(" not in source and "DeviceBufferBackend" in source


def test_the_tiled_kernel_carves_its_shared_memory_from_the_table_the_host_reads():
    with open(os.path.join(ROOT, "runtime", "kernels", "postprocess.cu")) as f:
        source = f.read()
    kernel = source.split("void upsample_argmax_tiles(")[1].split("\n}\n")[0]
    # the buffers come from TILE_SHARED only: `shared` is named once, as the start of the carve
    assert "TILE_SHARED(TILE_CARVE)" in kernel and kernel.count("shared") == 3, kernel


def test_tile_shared_bytes_follows_the_kernels_table(tmp_path, monkeypatch):
    import shutil
    from runtime import kernels
    from runtime.cuda_ops import tile_shared_bytes
    assert [r[0] for r in kernels.tile_shared_regions()] == [
        "cands", "vals", "gap", "big", "xa", "arg", "label"]
    assert tile_shared_bytes(35, 10, 20, 64) == 10 * 20 * (8 + 4 * 35 + 4 + 4 + 1 + 1) + 16 * 64
    shutil.copy(os.path.join(kernels.FOLDER, "postprocess.cu"), str(tmp_path))
    path = str(tmp_path / "postprocess.cu")
    with open(path) as f:
        text = f.read().replace("REGION(gap, float, 4, texels)", "REGION(gap, double, 8, texels)")
    with open(path, "w") as f:
        f.write(text)
    monkeypatch.setattr(kernels, "FOLDER", str(tmp_path))
    monkeypatch.setattr(kernels, "_TILE_SHARED", [])
    assert tile_shared_bytes(35, 10, 20, 64) == 10 * 20 * (8 + 4 * 35 + 8 + 4 + 1 + 1) + 16 * 64


# its transformers classes, and its weight names (decode_head.*, segformer.*, the fuse layers)
SEGFORMER = re.compile(r"Segformer[A-Z]\w*|decode_head\.|linear_fuse|linear_projections|"
                       r"\"segformer\.\"")
FAMILY_AND_GATE = ("stages/host/families/", "stages/host/checkout.py",
                   "stages/host/checkout_weights.py")


def test_segformer_is_known_only_to_its_family_module_and_the_checkout_gate():
    knowing = set()
    for path in _code_modules():
        with open(os.path.join(ROOT, path)) as f:
            if SEGFORMER.search(f.read()):
                knowing.add(path.replace(os.sep, "/"))
    assert "stages/host/families/segformer.py" in knowing  # the scan sees the family's names
    assert sorted(p for p in knowing if not p.startswith(FAMILY_AND_GATE)) == []
