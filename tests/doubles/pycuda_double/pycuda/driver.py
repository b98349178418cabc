"""TEST DOUBLE of pycuda.driver: "device" memory is host memory, streams are synchronous,
kernels cannot be loaded. GPU identity from PYCUDA_DOUBLE_GPU="name;major.minor"."""
import itertools
import os

import numpy as np

_MEMORY = {}
_NEXT = itertools.count(0x10000, 0x10000)


class Error(Exception):
    pass


class LogicError(Error):
    pass


def init(flags=0):
    pass


def get_version():
    return (10, 2, 0)


def get_driver_version():
    return 10020


class Device(object):
    def __init__(self, ordinal):
        spec = os.environ.get("PYCUDA_DOUBLE_GPU", "Double GPU;5.3").split(";")
        self._name, self._cc = spec[0], tuple(int(v) for v in spec[1].split("."))

    @staticmethod
    def count():
        return 1

    def name(self):
        return self._name

    def compute_capability(self):
        return self._cc

    def total_memory(self):
        return 4 << 30


class Context(object):
    @staticmethod
    def get_device():
        return Device(0)

    @staticmethod
    def synchronize():
        pass


class DeviceAllocation(object):
    def __init__(self, nbytes):
        self.ptr = next(_NEXT) * 4096
        _MEMORY[self.ptr] = np.zeros(nbytes, np.uint8)

    def __int__(self):
        return self.ptr

    __index__ = __int__


def mem_alloc(nbytes):
    return DeviceAllocation(int(nbytes))


def _view(ptr, nbytes):
    ptr = int(ptr)
    for base, buf in _MEMORY.items():
        if base <= ptr and ptr + nbytes <= base + buf.size:
            return buf[ptr - base:ptr - base + nbytes]
    raise LogicError("cuMemcpy failed: invalid device pointer (double)")


def memcpy_htod(dest, src):
    src = np.ascontiguousarray(src)
    _view(dest, src.nbytes)[:] = src.reshape(-1).view(np.uint8)


def memcpy_dtoh(dest, src):
    dest.reshape(-1).view(np.uint8)[:] = _view(src, dest.nbytes)


def memcpy_htod_async(dest, src, stream=None):
    memcpy_htod(dest, src)


def memcpy_dtoh_async(dest, src, stream=None):
    memcpy_dtoh(dest, src)


def to_device(array):
    array = np.ascontiguousarray(array)
    buf = mem_alloc(array.nbytes)
    memcpy_htod(buf, array)
    return buf


def pagelocked_empty(shape, dtype):
    return np.empty(shape, dtype)


class Stream(object):
    handle = 0

    def synchronize(self):
        pass


class Event(object):
    def record(self, stream=None):
        pass

    def time_since(self, other):
        return 0.0


def module_from_file(path):
    raise Error("the pycuda double cannot load CUDA modules (%s)" % path)
