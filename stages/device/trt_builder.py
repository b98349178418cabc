"""One builder adapter over TensorRT 8.2, 8.4, 8.5, 8.6 and 10.x, choosing by feature detection:

- workspace: config.set_memory_pool_limit(WORKSPACE) (8.4+) or config.max_workspace_size (8.2);
- network flags: EXPLICIT_BATCH while implicit batch still exists (builder.max_batch_size, <= 8.6);
- builder.build_serialized_network (8.x and 10.x; build_engine is gone in 10);
- fp16 with chosen layers pinned to fp32 via layer.precision + set_output_type and
  OBEY_PRECISION_CONSTRAINTS (8.2+; STRICT_TYPES only where that flag is missing);
- a timing cache that is loaded, extended and saved; progress through IProgressMonitor where it
  exists (8.6+) plus a heartbeat thread everywhere.

Written against NVIDIA's documented Python API. In this project's CI it is exercised only through
the TensorRT test double in tests/doubles (backed by ONNX Runtime), never against real TensorRT."""
import threading
import time

from stages.common.errors import EngineError


def make_logger(trt, lines):
    """A trt.ILogger that keeps every message (for build.log) and prints warnings and errors."""
    loud = (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR, trt.ILogger.WARNING)

    class BuildLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            lines.append("[%s] %s" % (str(severity).split(".")[-1], msg))
            if severity in loud:
                print("build_engine: TensorRT %s: %s" % (str(severity).split(".")[-1].lower(), msg))
    return BuildLogger()


def network_flags(trt, builder):
    """EXPLICIT_BATCH where implicit batch still exists (TensorRT <= 8.6); 0 on 10.x."""
    if hasattr(builder, "max_batch_size") and hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def set_workspace(trt, config, nbytes):
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)
        return "set_memory_pool_limit(WORKSPACE)"
    config.max_workspace_size = nbytes
    return "max_workspace_size"


def parse(trt, network, logger, onnx_bytes):
    parser = trt.OnnxParser(network, logger)
    if parser.parse(onnx_bytes):
        return parser
    errors = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        node = e.node_name() if hasattr(e, "node_name") else "#%s" % e.node()
        op = " (%s)" % e.node_operator() if hasattr(e, "node_operator") else ""
        errors.append("node %s%s: %s" % (node, op, e.desc()))
    raise EngineError("TensorRT %s cannot parse model.onnx: %s; export at an opset and operator set this TensorRT "
                      "supports (onnx.opset, onnx.target_tensorrt) and rerun doit onnx." % (
                          trt.__version__, "; ".join(errors) or "no details"))


def pin_fp32(trt, network, groups, wanted):
    """Pin layers of the wanted groups to fp32; returns {group: pinned layer count}."""
    unknown = [g for g in wanted if g not in groups]
    if unknown:
        raise EngineError("engine.keep_fp32 names %s, but the ONNX sidecar knows only %s: fix pipeline.yaml." % (
            ", ".join(unknown), ", ".join(sorted(groups))))
    by_group = dict((g, (set(groups[g]["nodes"]), set(groups[g]["tensors"]))) for g in wanted)
    counts = dict((g, 0) for g in wanted)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        for g, (nodes, tensors) in by_group.items():
            if layer.name in nodes or any(t.name in tensors for t in outs):
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
                counts[g] += 1
                break
    return counts


def set_precision(trt, builder, config, network, precision, groups, keep_fp32):
    if precision != "fp16":
        return {}
    if not builder.platform_has_fast_fp16:
        raise EngineError("engine.precision is fp16, but this GPU has no fast fp16: set engine.precision: fp32 "
                          "in pipeline.yaml.")
    config.set_flag(trt.BuilderFlag.FP16)
    flag = getattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS", None) or trt.BuilderFlag.STRICT_TYPES
    config.set_flag(flag)
    return pin_fp32(trt, network, groups, keep_fp32)


def attach_progress(trt, config):
    """IProgressMonitor (TensorRT 8.6+) lines for each build phase."""
    if not (hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor")):
        return

    class Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            print("build_engine: phase %s (%d steps)" % (phase_name, num_steps))

        def step_complete(self, phase_name, step):
            return True

        def phase_finish(self, phase_name):
            pass
    config.progress_monitor = Progress()


class Heartbeat(object):
    """Prints 'still building' every `every` seconds: a Jetson Nano build takes minutes."""

    def __init__(self, every=30.0):
        self.every, self.done, self.t0 = every, threading.Event(), time.time()
        self.thread = threading.Thread(target=self._run)
        self.thread.daemon = True

    def _run(self):
        while not self.done.wait(self.every):
            print("build_engine: still building, %d s elapsed..." % (time.time() - self.t0))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()


def build(trt, onnx_bytes, settings, groups, timing_cache, log_lines):
    """ONNX bytes -> (plan bytes, timing cache bytes, info). Raises EngineError with one sentence."""
    logger = make_logger(trt, log_lines)
    builder = trt.Builder(logger)
    flags = network_flags(trt, builder)
    network = builder.create_network(flags)
    parser = parse(trt, network, logger, onnx_bytes)
    config = builder.create_builder_config()
    info = {"workspace_api": set_workspace(trt, config, settings["workspace_mb"] << 20),
            "workspace_mb": settings["workspace_mb"], "layers": network.num_layers,
            "explicit_batch_flag": flags != 0}
    info["pinned_fp32"] = set_precision(trt, builder, config, network, settings["precision"], groups,
                                        settings["keep_fp32"])
    cache = config.create_timing_cache(timing_cache or b"")
    config.set_timing_cache(cache, False)
    attach_progress(trt, config)
    with Heartbeat():
        plan = builder.build_serialized_network(network, config)
    del parser
    if plan is None:
        raise EngineError("TensorRT could not build the engine (see build.log); if it ran out of memory on a 4 GB "
                          "board, add swap (sudo fallocate -l 4G /swapfile && sudo mkswap /swapfile && sudo swapon "
                          "/swapfile) or lower engine.workspace_mb.")
    return bytes(plan), bytes(config.get_timing_cache().serialize()), info
