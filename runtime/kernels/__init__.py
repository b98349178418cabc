"""The CUDA ops, one per .cu file in this folder: `doit runtime_check` compiles each to
artifacts/kernels/<arch>/<op>.cubin and runtime/cuda_ops.py loads them. Their names are listed
here once, and the tiled kernel's shared-memory layout is read from postprocess.cu itself."""
import os
import re

KERNELS = ("preprocess", "postprocess", "overlay")
FOLDER = os.path.dirname(os.path.abspath(__file__))
_REGION = re.compile(r"REGION\((\w+), [\w ]+, (\d+), ([\w *]+)\)")
_TILE_SHARED = []


def cubin(folder, name):
    """Where the compiled op `name` lives in a kernels folder (artifacts/kernels/<arch>)."""
    return os.path.join(folder, name + ".cubin")


def tile_shared_regions():
    """The TILE_SHARED table of postprocess.cu, the one definition of the tiled kernel's shared
    memory: (region, bytes per element, the names whose product is its element count)."""
    if not _TILE_SHARED:
        with open(os.path.join(FOLDER, "postprocess.cu")) as f:
            table = f.read().split("#define TILE_SHARED(REGION)", 1)[1].split("\n\n", 1)[0]
        _TILE_SHARED.extend((name, int(size), tuple(n.strip() for n in count.split("*")))
                            for name, size, count in _REGION.findall(table))
    return list(_TILE_SHARED)
