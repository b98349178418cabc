"""TEST DOUBLE: builder, network, parser and config of the `tensorrt` API (not TensorRT)."""
import json

import tensorrt as trt


class _Tensor(object):
    def __init__(self, name, shape=(), dtype=None):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype or trt.float32


class _Layer(object):
    def __init__(self, node):
        self.name, self.op = node.name, node.op_type
        self.type = trt._LAYER_TYPES.get(node.op_type, trt.LayerType.OTHER)
        self._outputs = [_Tensor(t) for t in node.output]
        self.output_types, self._precision, self.precision_is_set = {}, trt.float32, False

    @property
    def num_outputs(self):
        return len(self._outputs)

    def get_output(self, i):
        return self._outputs[i]

    @property
    def precision(self):
        return self._precision

    @precision.setter
    def precision(self, dt):
        self._precision, self.precision_is_set = dt, True

    def set_output_type(self, i, dt):
        self.output_types[i] = dt


class INetworkDefinition(object):
    def __init__(self, flags):
        self.flags, self.layers, self.inputs, self.outputs, self.onnx_bytes = flags, [], [], [], None

    @property
    def num_layers(self):
        return len(self.layers)

    def get_layer(self, i):
        return self.layers[i]

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, i):
        return self.inputs[i]


class _ParserError(object):
    def __init__(self, node_index, node, desc):
        self._i, self._node, self._desc = node_index, node, desc

    def desc(self):
        return self._desc

    def node(self):
        return self._i

    def code(self):
        return 8  # UNSUPPORTED_NODE

    if trt.GEN10:
        def node_name(self):
            return self._node.name

        def node_operator(self):
            return self._node.op_type


class OnnxParser(object):
    def __init__(self, network, logger):
        self.network, self.logger, self.errors = network, logger, []

    def parse(self, data):
        import onnx
        try:
            model = onnx.load_from_string(bytes(data))
        except Exception as e:
            self.errors.append(_ParserError(-1, None, "cannot read the model: %s" % e))
            return False
        opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        limit = 20 if trt.GEN10 else 13
        if opset > limit:
            self.errors.append(_ParserError(-1, model.graph.node[0], "opset %d is above %d" % (opset, limit)))
        for i, node in enumerate(model.graph.node):
            if node.op_type == "LayerNormalization" and not trt.GEN10:
                self.errors.append(_ParserError(i, node, "No importer registered for op: LayerNormalization"))
        if self.errors:
            return False
        net = self.network
        net.onnx_bytes = bytes(data)
        net.layers = [_Layer(n) for n in model.graph.node if n.op_type != "Constant"]
        dims = lambda vi: [d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
        net.inputs = [_Tensor(v.name, dims(v)) for v in model.graph.input]
        net.outputs = [_Tensor(v.name, dims(v)) for v in model.graph.output]
        return True

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, i):
        return self.errors[i]


class _TimingCache(object):
    def __init__(self, data):
        self.entries = json.loads(data.decode()) if data else {"builds": 0}

    def serialize(self):
        return json.dumps(self.entries).encode()


class IBuilderConfig(object):
    def __init__(self):
        self.flags, self.pool_limits, self.cache = set(), {}, None
        if not trt.GEN10:
            self.max_workspace_size = 0
        else:
            self.progress_monitor = None

    def set_flag(self, flag):
        self.flags.add(flag)

    def get_flag(self, flag):
        return flag in self.flags

    def create_timing_cache(self, data):
        return _TimingCache(data)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache

    if trt.GEN10:
        def set_memory_pool_limit(self, pool, size):
            self.pool_limits[pool] = size


class Builder(object):
    def __init__(self, logger):
        import os
        self.logger = logger
        self.platform_has_fast_fp16 = os.environ.get("TRT_DOUBLE_FAST_FP16", "1") != "0"
        if not trt.GEN10:
            self.max_batch_size = 1

    def create_network(self, flags=0):
        if not trt.GEN10 and not flags & (1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)):
            raise TypeError("the ONNX parser requires an explicit-batch network on TensorRT 8.x")
        return INetworkDefinition(flags)

    def create_builder_config(self):
        return IBuilderConfig()

    def build_serialized_network(self, network, config):
        import os
        import time
        time.sleep(float(os.environ.get("TRT_DOUBLE_SLOW_BUILD", "0")))  # emulate a long Jetson build
        if os.environ.get("TRT_DOUBLE_FAIL_BUILD"):
            self.logger.log(trt.ILogger.ERROR, "Requested amount of GPU memory could not be allocated (double)")
            return None
        workspace = config.pool_limits.get(trt.MemoryPoolType.WORKSPACE) if trt.GEN10 else config.max_workspace_size
        if not workspace:
            self.logger.log(trt.ILogger.ERROR, "workspace was never set")
            return None
        if config.cache is not None:
            config.cache.entries["builds"] = config.cache.entries.get("builds", 0) + 1
        header = {"version": trt.__version__, "fp16": trt.BuilderFlag.FP16 in config.flags,
                  "obey": trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS in config.flags,
                  "pinned": [l.name for l in network.layers if l.precision_is_set], "workspace": workspace,
                  "inputs": [(t.name, t.shape) for t in network.inputs],
                  "outputs": [(t.name, t.shape) for t in network.outputs]}
        return trt.MAGIC + json.dumps(header).encode() + b"\n" + network.onnx_bytes
