"""Host part of `doit bench` (issue 22): the folded and the unfolded decode head side by side,
same ONNX Runtime CPU session options, same input, alternated runs, in one bench run.

model.onnx is one of the two (onnx.fold says which); the other is exported here once, through
the onnx link's own export, check and simplify, at the same opset, and kept in
artifacts/bench/fold/ with the sha256 of the model.onnx it pairs with, so a second bench reuses
it and a new model.onnx replaces it."""
import os
import platform

from runtime.golden import load_case, read_index
from runtime.reference import upsample_argmax
from runtime.sidecar import INPUT_NAME, OUTPUT_NAME
from stages.common import files, precisions
from stages.device.bench import percentiles, timed


def cpu_name():
    """The CPU's model name (Linux /proc/cpuinfo), else platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def counterpart(cfg, layout, folded):
    """Path of the graph that model.onnx is not (folded or unfolded), exported when missing or
    paired with another model.onnx."""
    from stages.host import onnx_export
    folder = os.path.join(layout.bench_dir, "fold")
    path = os.path.join(folder, "model.%s.onnx" % ("unfolded" if folded else "folded"))
    record_path = path[:-len(".onnx")] + ".json"
    sha = files.sha256_file(layout.onnx_model)
    if os.path.isfile(path) and os.path.isfile(record_path):
        if files.read_json(record_path).get("pairs_with_onnx_sha256") == sha:
            return path
    report = files.read_json(layout.onnx_report)
    opset = report.get("export_opset", report["opset"])
    if not os.path.isdir(folder):
        os.makedirs(folder)
    exported = files.scratch_path(path, "export", ".onnx")  # our temp name (runtime/files.py)
    onnx_export.export_graph(cfg["model"]["path"], files.read_json(layout.manifest), opset,
                             exported, cfg["model"]["allow_pickle"], fold=not folded)
    try:
        model = onnx_export.check_and_simplify(exported, report["simplify"])[0]
    finally:
        os.remove(exported)
    files.write_bytes(path, model.SerializeToString())
    files.write_json(record_path, {"pairs_with_onnx_sha256": sha, "opset": opset,
                                   "folded": not folded})
    return path


def _masks(sessions, golden_json):
    """Per graph: the worst pixel agreement of its masks with the golden masks and the pixels
    that differ from them, over all golden images; and whether the two graphs' masks are equal."""
    import numpy as np
    out = {"unfolded": 1.0, "folded": 1.0, "pixels_differing": {"unfolded": 0, "folded": 0},
           "folded_equals_unfolded": True}
    for rec in read_index(golden_json):
        tensor, _, golden_mask = load_case(rec)
        masks = {}
        for name, sess in sessions.items():
            logits = sess.run([OUTPUT_NAME], {INPUT_NAME: tensor})[0]
            masks[name] = upsample_argmax(logits, rec["height"], rec["width"])
            out[name] = min(out[name], float(np.mean(masks[name] == golden_mask)))
            out["pixels_differing"][name] += int(np.sum(masks[name] != golden_mask))
        out["folded_equals_unfolded"] &= bool(np.array_equal(masks["folded"], masks["unfolded"]))
    return out


def _timed_pair(paths, tensor, n, warmup, threads):
    """Alternated runs of both graphs on ONNX Runtime CPU with `threads` intra-op threads (0:
    ONNX Runtime's default, one per physical core): p50s, best runs and their ratios."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sessions = dict((k, ort.InferenceSession(p, options, providers=["CPUExecutionProvider"]))
                    for k, p in paths.items())
    samples = {"folded": [], "unfolded": []}
    for i in range(warmup + n):
        for name in ("unfolded", "folded"):
            ms = timed(lambda: sessions[name].run(None, {INPUT_NAME: tensor}), 1, 0)[0]
            if i >= warmup:
                samples[name].append(ms)
    r = {"intra_op_threads": threads or "default",
         "folded_ms": percentiles(samples["folded"]),
         "unfolded_ms": percentiles(samples["unfolded"]),
         "folded_best_ms": min(samples["folded"]), "unfolded_best_ms": min(samples["unfolded"])}
    r["speedup"] = r["unfolded_ms"]["p50"] / r["folded_ms"]["p50"]
    r["speedup_best"] = r["unfolded_best_ms"] / r["folded_best_ms"]
    return r, sessions


def compare_fold(cfg, layout, n, warmup):
    """Both graphs side by side on ONNX Runtime CPU, at ONNX Runtime's default threads and at one
    thread (a shared or loaded host disturbs a multi-threaded run far more than the graphs
    differ): {"default_threads", "one_thread", "macs", "mac_ratio", "masks_vs_golden", ...}."""
    import onnxruntime as ort
    head = files.read_json(layout.onnx_sidecar).get("decode_head")
    if head is None:
        return {"error": "model.json has no decode_head record: rerun doit onnx"}
    folded = head["folded"]
    paths = {"folded" if folded else "unfolded": layout.onnx_model}
    paths["unfolded" if folded else "folded"] = counterpart(cfg, layout, folded)
    tensor = load_case(read_index(layout.golden_json)[0])[0]
    r = {"device": "CPU: %s (%d logical cores)" % (cpu_name(), os.cpu_count() or 0),
         "backend": "onnxruntime %s CPUExecutionProvider" % ort.__version__,
         "model_onnx_is": "folded" if folded else "unfolded",
         "macs": head["macs"], "mac_ratio": head["macs"]["ratio"]}
    r["default_threads"], sessions = _timed_pair(paths, tensor, n, warmup, 0)
    r["one_thread"] = _timed_pair(paths, tensor, n, warmup, 1)[0]
    r["masks_vs_golden"] = _masks(sessions, layout.golden_json)
    r["summary"] = _summary(r)
    return r


def _summary(r):
    d, o, m = r["default_threads"], r["one_thread"], r["masks_vs_golden"]
    return ("decode-head fold on the CPU (%s): %.3f -> %.3f GMAC (%.2fx fewer); p50 unfolded vs "
            "folded %.0f vs %.0f ms (%.2fx), one thread %.0f vs %.0f ms (%.2fx); mask pixels "
            "differing from golden: %d unfolded, %d folded (worst image %.4f%% / %.4f%%)" % (
                r["backend"], r["macs"]["unfolded"] / 1e9, r["macs"]["folded"] / 1e9,
                r["mac_ratio"], d["unfolded_ms"]["p50"], d["folded_ms"]["p50"], d["speedup"],
                o["unfolded_ms"]["p50"], o["folded_ms"]["p50"], o["speedup"],
                m["pixels_differing"]["unfolded"], m["pixels_differing"]["folded"],
                100 * m["unfolded"], 100 * m["folded"]))


def ship_pair(cfg, layout):
    """`doit bundle` with bench.compare_fold (issue 22): the other graph for the device's engine
    comparison (the device has no torch), and for fp16 its mixed version with the islands of
    precision.json that this graph has (strongly typed TensorRT builds from it)."""
    import onnx
    from stages.device.fold_engines import pair_paths
    from stages.host import fp16_convert
    folded = bool(files.read_json(layout.onnx_sidecar)["decode_head"]["folded"])
    paths = pair_paths(layout, folded)
    counterpart(cfg, layout, folded)
    record = files.read_json(paths["record"])
    if precisions.get(cfg["engine"]["precision"]).host_artifact is not None:  # islands to map
        model = onnx.load(paths["onnx"])
        names = set(node.name for node in model.graph.node)
        islands = [i for i in files.read_json(layout.precision_report)["islands"]
                   if i["node"] in names]
        mixed = fp16_convert.to_mixed(model, [i["node"] for i in islands])
        files.write_bytes(paths["mixed"], mixed.SerializeToString())
        record.update(islands=islands, mixed_sha256=files.sha256_file(paths["mixed"]))
        files.write_json(paths["record"], record)
    print("bundle: bench.compare_fold: %s%s ship for the device's engine comparison" % (
        paths["onnx"], " and its mixed fp16 version" if "mixed_sha256" in record else ""))
