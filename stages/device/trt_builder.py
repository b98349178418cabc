"""One builder adapter over TensorRT 8.0, 8.2, 8.4-8.6, 10.x, 11.x and TensorRT-RTX, choosing by
feature detection (the facts, per release tag, are in tests/doubles/tensorrt_double/surface.json):

- workspace: config.set_memory_pool_limit(WORKSPACE) (8.4.3+) or config.max_workspace_size (8.0,
  8.2; deprecated in 8.4.3, removed in 10.0); one retry with half the workspace when TensorRT runs
  out of memory;
- network flags and precision: stages/device/trt_precision.py (weak typing with pinned islands
  on 8.x, strong typing from model.mixed.onnx on 10.x, 11.x and TensorRT-RTX);
- builder.build_serialized_network (every generation; build_engine is gone in 10.0);
- a timing cache that is loaded, extended and saved, and replaced by a fresh one (with a warning)
  when TensorRT cannot read it: create_timing_cache returns a raw pointer, None on failure, and
  set_timing_cache(None) raises;
- the logger, progress monitor and heartbeat of stages/device/trt_progress.py.

In this project's CI it runs against the TensorRT test double (tests/doubles); the strongly
typed path also ran against TensorRT-RTX 1.7's real parser and builder (docs/device-runs/)."""
from stages.common.errors import EngineError
from stages.common import precisions
from stages.device import trt_precision as tp
from stages.device.trt_progress import BuildState, Heartbeat, attach_progress, make_logger, say

OUT_OF_MEMORY = ("out of memory", "could not be allocated", "cudaerrormemoryallocation",
                 "outofmemory",
                 "insufficient memory", "failed to allocate")


def set_workspace(trt, config, nbytes):
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)
        return "set_memory_pool_limit(WORKSPACE)"
    config.max_workspace_size = nbytes
    return "max_workspace_size"


def parse(trt, network, logger, onnx_bytes, name="model.onnx"):
    parser = trt.OnnxParser(network, logger)
    if parser.parse(onnx_bytes):
        return parser
    errors = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        node = e.node_name() if hasattr(e, "node_name") else "#%s" % e.node()
        op = " (%s)" % e.node_operator() if hasattr(e, "node_operator") else ""
        errors.append("node %s%s: %s" % (node, op, e.desc()))
    raise EngineError("TensorRT %s cannot parse %s: %s; export at an opset and operator set this "
                      "TensorRT supports (onnx.opset, onnx.target_tensorrt) and rerun doit "
                      "onnx." % (trt.__version__, name, "; ".join(errors) or "no details"))


def use_timing_cache(trt, config, data):
    """Attach the saved cache, or a fresh one when TensorRT cannot use it; returns what happened."""
    cache, problem = None, None
    if data:
        try:
            cache = config.create_timing_cache(data)
            problem = None if cache is not None else "unreadable"
            if cache is not None and not config.set_timing_cache(cache, False):
                cache, problem = None, "from another TensorRT or GPU"
        except Exception as e:  # a buffer TensorRT rejects outright
            cache, problem = None, "unreadable (%s)" % str(e).splitlines()[0]
        if cache is not None:
            return "reused"
        say("build_engine: warning: the saved timing.cache is %s; starting a fresh one." % problem)
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, False):
        return "none (TensorRT could not create one)"
    return "replaced: the saved one was %s" % problem if problem else "new"


def out_of_memory(lines):
    text = "\n".join(lines).lower()
    return any(p in text for p in OUT_OF_MEMORY)


def build_plan(trt, builder, network, config, settings, lines, state, previous=None):
    """build_serialized_network, retried once with half the workspace when it ran out of memory."""
    mb = settings["workspace_mb"]
    for attempt in (1, 2):
        api = set_workspace(trt, config, mb << 20)
        start = len(lines)
        with Heartbeat(previous=previous):
            plan = builder.build_serialized_network(network, config)
        if state.interrupted:
            raise KeyboardInterrupt
        if plan is not None:
            return plan, {"workspace_api": api, "workspace_mb": mb, "oom_retry": attempt == 2}
        if attempt == 1 and mb >= 32 and out_of_memory(lines[start:]):
            mb //= 2
            lines.append("build_engine: TensorRT ran out of memory; retrying once with half the "
                         "workspace (%d MB)" % mb)
            say(lines[-1] + ".")
            continue
        raise EngineError("TensorRT could not build the engine (see build.log); if it ran out of "
                          "memory on a 4 GB board, add swap (sudo fallocate -l 4G /swapfile && "
                          "sudo mkswap /swapfile && sudo swapon /swapfile) or lower "
                          "engine.workspace_mb.")


def apply_precision(trt, builder, config, network, mode, islands):
    """mode: the Recipe's name (stages/common/precisions.py) this build follows."""
    recipe = precisions.recipe(mode)
    if not recipe.reduced:
        return {"typing": mode}
    if not getattr(builder, "platform_has_fast_fp16", True):  # gone in 11.x: strong typing decides
        raise EngineError("engine.precision is fp16, but this GPU has no fast fp16: set "
                          "engine.precision: fp32 in pipeline.yaml.")
    if not recipe.pins:
        return {"typing": mode}
    record = tp.pin_islands(trt, network, islands or [])
    record.update({"typing": mode, "flags": ["FP16", tp.set_weak_fp16(trt, config)]})
    if record["unmatched_islands"]:
        say("build_engine: warning: no layer of the parsed network computes the islands %s; they "
            "cannot be pinned." % ", ".join(record["unmatched_islands"]))
    return record


def build(trt, source, settings, timing_cache, lines, previous=None):
    """source: {"onnx": bytes, "name": file name, "typing": fp32|weak|strong, "islands": [...]}.
    Returns (plan bytes, timing cache bytes or None, info). Raises EngineError with one sentence."""
    state = BuildState()
    logger = make_logger(trt, lines, state)
    builder = trt.Builder(logger)
    flags = tp.network_flags(trt, builder, source["typing"])
    network = builder.create_network(flags)
    parser = parse(trt, network, logger, source["onnx"], source["name"])
    config = builder.create_builder_config()
    info = {"onnx": source["name"], "layers": network.num_layers, "network_flags": flags,
            "precision": apply_precision(trt, builder, config, network, source["typing"],
                                         source.get("islands")),
            "timing_cache": use_timing_cache(trt, config, timing_cache),
            "detailed_profiling": tp.set_detailed_profiling(trt, config),
            "progress_monitor": attach_progress(trt, config, state)}
    plan, workspace = build_plan(trt, builder, network, config, settings, lines, state, previous)
    info.update(workspace)
    cache = config.get_timing_cache()
    cache = bytes(cache.serialize()) if cache is not None else None
    plan = bytes(plan)
    del parser, network, config
    pins = info["precision"] if precisions.recipe(source["typing"]).pins else None
    info["inspector"] = tp.check_engine(trt, trt.Runtime(logger), plan, pins)
    return plan, cache, info
