"""doit bench with bench.compare_fold (issue 22): the folded and the unfolded graph as two TensorRT
engines on this device, built by the engine link's own builder and timed alternately by the same
bench code in one run.

The main engine (artifacts/engine/<device>/) is model.onnx's. The other graph is exported on the
host (no torch here) into artifacts/bench/fold/ by `doit bundle` when bench.compare_fold is on:
model.<folded|unfolded>.onnx with its record (the model.onnx sha256 it pairs with), and for
strongly typed fp16 its mixed version with precision.json's islands. Its engine goes to
artifacts/bench/fold/engine-<device>/ and is reused while it pairs with the same files."""
import os
import time

from runtime import files
from runtime.engine_folder import EngineFolder
from stages.common import precisions
from stages.common.userpath import shown
from stages.device import settings as device

GET_IT = ("run `doit bundle` on the host with bench.compare_fold: true (it exports the other "
          "graph into artifacts/bench/fold/) and copy the bundle to the device again")


def pair_paths(layout, folded):
    """The other graph's files in artifacts/bench/fold/ (onnx, record, mixed)."""
    stem = os.path.join(layout.bench_dir, "fold",
                        "model.%s" % ("unfolded" if folded else "folded"))
    return {"onnx": stem + ".onnx", "record": stem + ".json", "mixed": stem + ".mixed.onnx"}


def missing(layout, paths, strong):
    """One sentence naming what the comparison lacks, or None when the files are all there."""
    need = [paths["onnx"], paths["record"]] + ([paths["mixed"]] if strong else [])
    absent = [p for p in need if not os.path.isfile(p)]
    if absent:
        return "bench.compare_fold: %s %s missing: %s." % (
            ", ".join(shown(p) for p in absent), "is" if len(absent) == 1 else "are", GET_IT)
    record = files.read_json(paths["record"])
    if record.get("pairs_with_onnx_sha256") != files.sha256_file(layout.onnx_model):
        return ("bench.compare_fold: %s was made for another model.onnx than %s: %s." % (
            shown(paths["onnx"]), shown(layout.onnx_model), GET_IT))
    if strong and record.get("mixed_sha256") != files.sha256_file(paths["mixed"]):
        return ("bench.compare_fold: %s does not match the mixed_sha256 in %s: %s." % (
            shown(paths["mixed"]), shown(paths["record"]), GET_IT))
    return None


def other_source(trt, cfg, layout, paths):
    """What the builder parses for the other graph, as engine.build_source does for model.onnx."""
    from stages.device import trt_precision as tp
    mode = tp.typing(trt, cfg["engine"]["precision"])
    recipe = precisions.recipe(mode)
    name = paths["mixed"] if recipe.from_link else paths["onnx"]
    with open(name, "rb") as f:
        source = {"onnx": f.read(), "name": os.path.basename(name), "typing": mode}
    if recipe.reduced and os.path.isfile(layout.precision_report):
        record = files.read_json(paths["record"])  # the islands the host found in this graph
        source["islands"] = record["islands"] if "islands" in record else files.read_json(
            layout.precision_report)["islands"]
    return source


def other_engine(trt, cfg, layout, paths, meta):
    """The other graph's engine folder, built with the project's builder unless it is already
    built here from the same bytes and settings."""
    from stages.device.doctor import check_build_memory
    from stages.device.trt_builder import build
    fp = device.fingerprint()
    folder = EngineFolder(os.path.join(layout.bench_dir, "fold", "engine-" + device.slug(fp)))
    source = other_source(trt, cfg, layout, paths)
    key = files.sha256_bytes(source["onnx"])
    if folder.exists() and folder.read().get("onnx_sha256") == key and \
            folder.read()["engine"]["settings"] == cfg["engine"]:
        return folder, folder.read()["engine"]["build_seconds"]
    print("bench: building the %s engine from %s into %s (once per model.onnx)" % (
        "unfolded" if "unfolded" in paths["onnx"] else "folded", shown(paths["onnx"]),
        shown(folder.path)))
    check_build_memory(paths["onnx"], cfg["engine"]["workspace_mb"])  # as the engine link does
    lines, settings = [], dict(cfg["engine"], timing_cache=False)
    t0 = time.time()
    plan, _, info = build(trt, source, settings, None, lines)
    seconds = time.time() - t0
    folder.write_log(lines, seconds=seconds)
    meta = dict(meta, onnx_sha256=key)
    folder.write(plan, meta, cfg["engine"], device.identity(fp), info, seconds, trt.__version__)
    return folder, round(seconds, 1)


def _timed_engines(backends, tensor, n, warmup):
    """Alternated runs of both engines on the same input, with bench's own timer."""
    from stages.device.bench import percentiles, timed
    samples = dict((k, []) for k in backends)
    for i in range(warmup + n):
        for name in sorted(backends):
            ms = timed(lambda: backends[name].infer(tensor), 1, 0)[0]
            if i >= warmup:
                samples[name].append(ms)
    return dict((k, percentiles(v)) for k, v in samples.items())


def compare_engines(cfg, layout, n, warmup, main_backend):
    """Both graphs as TensorRT engines on this device (main_backend: bench's own, model.onnx's):
    {"device", "engines": {"folded", "unfolded"}, "macs", "mac_ratio", "speedup", "summary"},
    or {"error": one sentence}."""
    from runtime.backends.tensorrt_backend import TensorRTBackend
    from runtime.golden import load_case, read_index
    from stages.device import trt_precision as tp
    import tensorrt as trt
    meta = files.read_json(layout.onnx_sidecar)
    head = meta.get("decode_head")
    if head is None:
        return {"error": "bench.compare_fold: model.json has no decode_head record: rerun "
                         "`doit onnx` on the host and copy the bundle again."}
    folded = head["folded"]
    paths = pair_paths(layout, folded)
    problem = missing(layout, paths,
                      precisions.recipe(tp.typing(trt, cfg["engine"]["precision"])).from_link)
    if problem:
        return {"error": problem}
    folder, build_seconds = other_engine(trt, cfg, layout, paths, meta)
    fp = device.fingerprint()
    main, other = ("folded", "unfolded") if folded else ("unfolded", "folded")
    backends = {main: main_backend, other: TensorRTBackend(folder, device.identity(fp))}
    tensor = load_case(read_index(layout.golden_json)[0])[0]
    ms = _timed_engines(backends, tensor, n, warmup)
    r = {"device": "%s (TensorRT %s)" % (fp["gpu"], trt.__version__),
         "precision": cfg["engine"]["precision"], "model_onnx_is": main,
         "engines": dict((k, {"engine": shown(b.source), "infer_ms": ms[k]})
                         for k, b in backends.items()),
         "other_build_seconds": build_seconds, "macs": head["macs"],
         "mac_ratio": head["macs"]["ratio"],
         "speedup": ms["unfolded"]["p50"] / ms["folded"]["p50"]}
    r["summary"] = _summary(r, ms)
    return r


def _summary(r, ms):
    return ("decode-head fold on %s, %s engines: %.3f -> %.3f GMAC (%.2fx fewer); p50 unfolded vs "
            "folded %.2f vs %.2f ms (%.2fx)" % (
                r["device"], r["precision"], r["macs"]["unfolded"] / 1e9, r["macs"]["folded"] / 1e9,
                r["mac_ratio"], ms["unfolded"]["p50"], ms["folded"]["p50"], r["speedup"]))


def run_if_asked(report, cfg, layout, seg):
    """bench's hook: report["fold_engines"] when bench.compare_fold is on (and the reason in one
    sentence where this run has no TensorRT engine to compare)."""
    if not cfg["bench"]["compare_fold"]:
        return
    if not seg.backend.needs_engine:
        report["fold_engines"] = {"error": "bench.compare_fold: this run's backend is %s, not "
                                           "TensorRT: run it on the device after `doit "
                                           "build_engine`." % seg.backend.name}
        return
    from stages.device.bench import part
    plan = report["plan"]
    report["fold_engines"] = part(report, "fold_engines", compare_engines, cfg, layout,
                                  plan["fold"], plan["warmup"], seg.backend)
