"""TEST DOUBLE: pybind11-like behaviour shared by the double's classes (not TensorRT)."""
import enum


class PyEnumBase(enum.Enum):
    """A pybind11 enum: str() is 'Type.MEMBER', int() works, values order."""

    def __int__(self):
        return self.value

    __index__ = __int__

    def __lt__(self, other):
        return int(self) < int(other)

    def __le__(self, other):
        return int(self) <= int(other)

    def __str__(self):
        return "%s.%s" % (type(self).__name__, self.name)

    __hash__ = enum.Enum.__hash__


def PyEnum(name, members):
    return PyEnumBase(name, members, module="tensorrt")


class Trampoline(type):
    """pybind11 raises TypeError when a Python subclass of a trampoline class (ILogger,
    IProgressMonitor) overrides __init__ without calling the base __init__."""

    def __call__(cls, *args, **kwargs):
        obj = type.__call__(cls, *args, **kwargs)
        if not obj.__dict__.get("_base_init"):
            base = [b for b in cls.__mro__ if b.__module__ == "tensorrt"][0].__name__
            raise TypeError("%s.__init__() must be called when overriding __init__" % base)
        return obj


class Pybind(object):
    """Setting an attribute the binding does not define raises AttributeError, as on a pybind11
    object; read-only properties cannot be set. Private state (leading underscore) is the
    double's."""

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        prop = getattr(type(self), name, None)
        if not isinstance(prop, property):
            raise AttributeError("'tensorrt.%s' object has no attribute '%s'" % (
                type(self).__name__, name))
        if prop.fset is None:
            raise AttributeError("can't set attribute '%s'" % name)
        prop.fset(self, value)


def check_type(value, types, what):
    """pybind11's argument conversion: the wrong type is a TypeError, never silently accepted."""
    if isinstance(types, type) and issubclass(types, int) and not issubclass(types, bool):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, types)
    if not ok:
        raise TypeError("incompatible function arguments: %s must be %s, not %s" % (
            what, getattr(types, "__name__", types), type(value).__name__))
    return value


def check_buffer(value, what):
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("incompatible function arguments: %s must support the buffer protocol, "
                        "not %s" % (what, type(value).__name__))
    return bytes(value)


def call_log(logger, severity, msg):
    """The C++ side calling ILogger.log: on 8.0.1/8.2.1 the trampoline is noexcept without a
    try/catch, so an exception aborts the process (std::terminate); from 8.4.3 it is caught and
    printed (python/src/infer/pyCore.cpp)."""
    import os
    import sys
    import tensorrt as trt
    try:
        logger.log(severity, msg)
    except BaseException as e:
        if trt.GENERATION in ("8.0", "8.2"):
            sys.stderr.write("terminate called after throwing an instance of "
                             "'pybind11::error_already_set'\n")
            sys.stderr.flush()
            os.abort()
        sys.stderr.write("[ERROR] Exception caught in log(): %s\n" % e)
