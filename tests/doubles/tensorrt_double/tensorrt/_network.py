"""TEST DOUBLE: network, layers, builder config, timing cache and builder (not TensorRT).

What the builder emulates: the workspace must be set; a strongly typed network refuses any weak
typing (FP16 flag, layer precision or output types); pins hold only with OBEY/STRICT; per-layer
precisions land in the plan for the EngineInspector (DETAILED verbosity); the progress monitor is
called and can cancel. Knobs: TRT_DOUBLE_FAST_FP16=0 (no fast fp16), TRT_DOUBLE_FAIL_BUILD=1 (out
of memory), TRT_DOUBLE_OOM_ABOVE_MB=N (out of memory above an N MB workspace),
TRT_DOUBLE_SLOW_BUILD=SECONDS, TRT_DOUBLE_WARN=TEXT (a warning logged during the build),
TRT_DOUBLE_IGNORE_PIN=TEXT (pinned layers whose name contains TEXT
run in fp16 anyway, as in NVIDIA/TensorRT #3889)."""
import json
import os
import time
import warnings

import tensorrt as trt
from tensorrt._base import Pybind, call_log, check_buffer, check_type


class ITensor(Pybind):
    def __init__(self, name, shape, dtype):
        self._name, self._shape, self._dtype = name, tuple(shape), dtype

    name = property(lambda self: self._name,
                    lambda self, v: setattr(self, "_name", check_type(v, str, "name")))
    shape = property(lambda self: self._shape)
    dtype = property(lambda self: self._dtype,
                     lambda self, v: setattr(self, "_dtype", check_type(v, trt.DataType, "dtype")))


class ILayer(Pybind):
    def __init__(self, name, kind, inputs, outputs):
        self._name, self._type, self._inputs, self._outputs = name, kind, inputs, outputs
        self._precision, self._output_types = None, {}

    name = property(lambda self: self._name,
                    lambda self, v: setattr(self, "_name", check_type(v, str, "name")))
    type = property(lambda self: self._type)
    num_outputs = property(lambda self: len(self._outputs))
    num_inputs = property(lambda self: len(self._inputs))

    def get_output(self, index):
        return self._outputs[check_type(index, int, "index")]

    def get_input(self, index):
        return self._inputs[check_type(index, int, "index")]

    @property
    def precision(self):
        return self._precision or trt.float32

    @precision.setter
    def precision(self, dtype):
        self._precision = check_type(dtype, trt.DataType, "precision")

    precision_is_set = property(lambda self: self._precision is not None)

    def reset_precision(self):
        self._precision = None

    def set_output_type(self, index, dtype):
        check_type(index, int, "index")
        self._output_types[index] = check_type(dtype, trt.DataType, "dtype")

    def get_output_type(self, index):
        return self._output_types.get(index, self._outputs[index].dtype)

    def output_type_is_set(self, index):
        return index in self._output_types

    def reset_output_type(self, index):
        self._output_types.pop(index, None)


class INetworkDefinition(Pybind):
    def __init__(self, flags, implicit_batch, strong):
        self._flags, self._implicit_batch, self._strong = flags, implicit_batch, strong
        self._layers, self._inputs, self._outputs, self._onnx = [], [], [], None

    def _load(self, onnx_bytes, layers, inputs, outputs):
        self._onnx, self._layers, self._inputs, self._outputs = onnx_bytes, layers, inputs, outputs

    num_layers = property(lambda self: len(self._layers))
    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))
    has_implicit_batch_dimension = property(lambda self: self._implicit_batch)
    has_explicit_precision = property(lambda self: False)
    flags = property(lambda self: self._flags)

    def get_layer(self, index):
        return self._layers[check_type(index, int, "index")]

    def get_input(self, index):
        return self._inputs[check_type(index, int, "index")]

    def get_output(self, index):
        return self._outputs[check_type(index, int, "index")]

    def get_flag(self, flag):
        return bool(self._flags & (1 << int(check_type(flag, trt.NetworkDefinitionCreationFlag,
                                                       "flag"))))


class ITimingCache(Pybind):
    def __init__(self, entries):
        self._entries = entries

    def serialize(self):
        return IHostMemory(json.dumps(self._entries).encode())

    def combine(self, other, ignore_mismatch):
        self._entries["builds"] += check_type(other, ITimingCache, "input_cache")._entries["builds"]
        return True

    def reset(self):
        self._entries = {"version": trt.__version__, "builds": 0}
        return True


class IHostMemory(Pybind):
    def __init__(self, data):
        self._data = data

    def __bytes__(self):
        return self._data

    nbytes = property(lambda self: len(self._data))


class IBuilderConfig(Pybind):
    def __init__(self):
        self._flags, self._pools, self._cache, self._monitor = set(), {}, None, None
        self._verbosity = trt.ProfilingVerbosity.LAYER_NAMES_ONLY if hasattr(
            trt.ProfilingVerbosity, "LAYER_NAMES_ONLY") else trt.ProfilingVerbosity.DEFAULT
        self._opt_level, self._hw_level = 3, None

    @property
    def max_workspace_size(self):
        return self._pools.get("WORKSPACE", 0)

    @max_workspace_size.setter
    def max_workspace_size(self, nbytes):
        if trt.SURFACE.get("IBuilderConfig.set_memory_pool_limit"):  # deprecateMember from 8.4.3
            warnings.warn("Use set_memory_pool_limit instead.", DeprecationWarning)
        self._pools["WORKSPACE"] = check_type(nbytes, int, "max_workspace_size")

    def set_memory_pool_limit(self, pool, pool_size):
        self._pools[check_type(pool, trt.MemoryPoolType, "pool").name] = check_type(
            pool_size, int, "pool_size")

    def get_memory_pool_limit(self, pool):
        return self._pools.get(check_type(pool, trt.MemoryPoolType, "pool").name, 0)

    def set_flag(self, flag):
        self._flags.add(check_type(flag, trt.BuilderFlag, "flag"))

    def get_flag(self, flag):
        return check_type(flag, trt.BuilderFlag, "flag") in self._flags

    def clear_flag(self, flag):
        self._flags.discard(check_type(flag, trt.BuilderFlag, "flag"))

    flags = property(lambda self: sum(1 << int(f) for f in self._flags))

    def create_timing_cache(self, serialized_timing_cache):
        """A raw ITimingCache* in the real binding: None when the bytes are not a cache."""
        data = check_buffer(serialized_timing_cache, "serialized_timing_cache")
        if not data:
            return ITimingCache({"version": trt.__version__, "builds": 0})
        try:
            return ITimingCache(json.loads(data.decode()))
        except ValueError:
            return None

    def set_timing_cache(self, cache, ignore_mismatch):
        check_type(cache, ITimingCache, "cache")
        check_type(ignore_mismatch, bool, "ignore_mismatch")
        if cache._entries.get("version") != trt.__version__ and not ignore_mismatch:
            return False
        self._cache = cache
        return True

    def get_timing_cache(self):
        return self._cache

    @property
    def progress_monitor(self):
        return self._monitor

    @progress_monitor.setter
    def progress_monitor(self, monitor):
        self._monitor = check_type(monitor, trt.IProgressMonitor, "progress_monitor")

    profiling_verbosity = property(
        lambda self: self._verbosity,
        lambda self, v: setattr(self, "_verbosity",
                                check_type(v, trt.ProfilingVerbosity, "profiling_verbosity")))
    builder_optimization_level = property(lambda self: self._opt_level,
                                          lambda self, v: setattr(self, "_opt_level",
                                                                  check_type(v, int, "level")))
    hardware_compatibility_level = property(lambda self: self._hw_level,
                                            lambda self, v: setattr(self, "_hw_level", v))

    def set_preview_feature(self, feature, enable):
        return None


def _precisions(network, config):
    """Per layer: what the double's 'builder' runs it in."""
    flags = config._flags
    fp16 = getattr(trt.BuilderFlag, "FP16", None) in flags
    obey = any(getattr(trt.BuilderFlag, f, None) in flags for f in ("OBEY_PRECISION_CONSTRAINTS",
                                                                    "STRICT_TYPES"))
    ignore = os.environ.get("TRT_DOUBLE_IGNORE_PIN")
    out = []
    for layer in network._layers:
        dtype = layer.get_output(0).dtype if layer.num_outputs else trt.float32
        if network._strong or dtype != trt.float32:
            run = dtype
        elif fp16 and not (obey and layer._precision is not None
                           and not (ignore and ignore in layer.name)):
            run = trt.float16
        else:
            run = trt.float32
        out.append(run)
    return out


FORMATS = {"FLOAT": "Row major linear FP32",
           "HALF": "Channel major FP16 format where channel % 8 == 0",
           "INT32": "Row major linear Int32", "INT64": "Row major linear Int64",
           "BOOL": "Row major linear Bool"}


def engine_layers(network, config):
    """The plan's layer records: Constant layers folded away, a SoftMax fused with the Shuffle
    after it when both run in one precision, else one engine layer per network layer."""
    records, runs, layers = [], _precisions(network, config), network._layers
    skip = set()
    for i, layer in enumerate(layers):
        if i in skip or layer.type == trt.LayerType.CONSTANT:
            continue
        name, outputs = layer.name, layer._outputs
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if layer.type == trt.LayerType.SOFTMAX and nxt is not None and runs[i + 1] == runs[i] \
                and nxt.get_input(0) is layer.get_output(0):
            name, outputs = name + " + " + nxt.name, nxt._outputs
            skip.add(i + 1)
        records.append({"Name": name, "LayerType": layer.type.name.title(),
                        "Outputs": [{"Name": t.name,
                                     "Format/Datatype": FORMATS.get(runs[i].name, runs[i].name)}
                                    for t in outputs]})
    return records


def _io(network):
    return ([[t.name, True, list(t.shape), t.dtype.name] for t in network._inputs] +
            [[t.name, False, list(t.shape), t.dtype.name] for t in network._outputs])


class Builder(Pybind):
    def __init__(self, logger):
        self._logger = check_type(logger, trt.ILogger, "logger")

    platform_has_fast_fp16 = property(
        lambda self: os.environ.get("TRT_DOUBLE_FAST_FP16", "1") != "0")
    platform_has_fast_int8 = property(lambda self: False)
    platform_has_tf32 = property(lambda self: False)
    max_batch_size = property(lambda self: 1, lambda self, v: None)

    def create_network(self, flags=0):
        check_type(flags, int, "flags")
        kinds = trt.NetworkDefinitionCreationFlag
        implicit = hasattr(kinds, "EXPLICIT_BATCH") and hasattr(self, "max_batch_size") and \
            not flags & (1 << int(kinds.EXPLICIT_BATCH))
        strong = not hasattr(trt.BuilderFlag, "FP16") or (
            hasattr(kinds, "STRONGLY_TYPED") and bool(flags & (1 << int(kinds.STRONGLY_TYPED))))
        return INetworkDefinition(flags, implicit, strong)

    def create_builder_config(self):
        return IBuilderConfig()

    def is_network_supported(self, network, config):
        return True

    def build_engine(self, network, config):
        raise RuntimeError("the double builds serialized networks only")

    def _refuse(self, network, config):
        """An error message when the real builder would fail, else None."""
        workspace_mb = config._pools.get("WORKSPACE", 0) >> 20
        limit = os.environ.get("TRT_DOUBLE_OOM_ABOVE_MB")
        if os.environ.get("TRT_DOUBLE_FAIL_BUILD") or (limit and workspace_mb > int(limit)):
            return ("Requested amount of GPU memory (%d bytes) could not be allocated (double)" % (
                1 << 31))
        if not config._pools.get("WORKSPACE"):
            return "workspace was never set (double)"
        weak = getattr(trt.BuilderFlag, "FP16", None) in config._flags or any(
            l._precision is not None or l._output_types for l in network._layers)
        if network._strong and weak:
            return "Setting layer precision, layer output types or the FP16 flag is not allowed " \
                   "on a strongly typed network (double)"
        return None

    def _progress(self, config):
        monitor = config._monitor
        if monitor is None:
            return True
        monitor.phase_start("Building engine", None, 3)
        for step in range(3):
            if not monitor.step_complete("Building engine", step):
                return False
        monitor.phase_finish("Building engine")
        return True

    def build_serialized_network(self, network, config):
        check_type(network, INetworkDefinition, "network")
        check_type(config, IBuilderConfig, "config")
        # emulate a long Jetson build
        time.sleep(float(os.environ.get("TRT_DOUBLE_SLOW_BUILD", "0")))
        if os.environ.get("TRT_DOUBLE_WARN"):
            call_log(self._logger, trt.Logger.Severity.WARNING, os.environ["TRT_DOUBLE_WARN"])
        error = self._refuse(network, config)
        if error:
            call_log(self._logger, trt.Logger.Severity.ERROR, error)
            return None
        if not self._progress(config):
            call_log(self._logger, trt.Logger.Severity.ERROR,
                     "Build cancelled by the progress monitor")
            return None
        if config._cache is not None:
            config._cache._entries["builds"] = config._cache._entries.get("builds", 0) + 1
        detailed = config._verbosity.name == "DETAILED"
        layers = engine_layers(network, config)
        header = {"version": trt.__version__, "io": _io(network),
                  "verbosity": config._verbosity.name,
                  "layers": layers if detailed else [l["Name"] for l in layers],
                  "workspace": config._pools["WORKSPACE"],
                  "flags": sorted(f.name for f in config._flags)}
        return IHostMemory(trt.MAGIC + json.dumps(header).encode() + b"\n" + network._onnx)
