"""precision link (host only): model.onnx -> model.mixed.onnx + precision.json, and the preview.

Scans the fp32 graph on the golden inputs for values beyond fp16's range, chooses the fp32
islands by their effect on the golden masks (precision_search), writes the mixed-precision model
(fp16 compute, fp32 inputs/outputs, Cast nodes around the islands), and previews it and a naive
all-fp16 model with a faithful fp16 emulation (fp16_emulate). Fails when the mixed model misses
the verify.fp16 limits, since the device's `doit verify` would then fail too."""
import os

from stages.common import files
from stages.common.errors import PipelineError
from stages.host import fp16_convert, precision_preview as pp, precision_scan, precision_search

FORMAT = "segformer-precision/1"


class PrecisionError(PipelineError):
    """The mixed-precision model misses the fp16 limits, or no island set can reach them."""


def _islands(ranges, candidates, kept, mixed):
    """The contract's island records; mixed_outputs: the converter renames an island's outputs
    (<node>_output_cast_<i>) and gives the original names to the fp16 casts that follow."""
    why = dict((c["node"], c["reason"]) for c in candidates)
    in_mixed = dict((n.name, list(n.output)) for n in mixed.graph.node)
    info = dict((r["node"], r) for r in ranges)
    out = []
    for name in kept:
        reason = why.get(name) or "bisection: needed for mask agreement (max |x| %.4g)" % (
            info[name]["max_abs"])
        out.append({"node": name, "op": info[name]["op"], "outputs": info[name]["outputs"],
                    "mixed_outputs": in_mixed[name], "reason": reason})
    return out


def _misses(row, limits):
    """(what, value, limit key) of the first verify.fp16 limit this preview row misses, or None."""
    if row["nan"] or row["inf"]:
        return ("NaN/Inf logits", row["nan"] + row["inf"], None)
    for key, higher_is_worse in (("logits_max_abs", True), ("logits_mean_abs", True),
                                 ("mask_agreement", False), ("miou", False)):
        value = row[key]
        if (value > limits[key]) if higher_is_worse else (value < limits[key]):
            return (key.replace("_", " "), value, "verify.fp16.%s" % key)
    return None


def _failure(rows, limits, path):
    """One sentence naming the first limit the mixed model misses, or None."""
    for r in rows:
        miss = _misses(r, limits)
        if miss:
            what, value, key = miss
            against = " against %s %.4g" % (key, limits[key.split(".")[-1]]) if key else ""
            return ("The fp16 preview of %s fails on %s: %s %.4g%s; use engine.precision: fp32, "
                    "or loosen verify.fp16 in pipeline.yaml if the preview table is acceptable "
                    "to you." % (path, r["image"], what, value, against))
    return None


def _search(model, cases, labels, fp16_limits, margin, ranges, candidates):
    goal = precision_search.mask_goal(fp16_limits, margin)
    search = precision_search.Search(model, cases, labels, goal)
    kept = precision_search.choose(search, ranges, candidates)
    if kept is None:
        raise PrecisionError("No set of fp32 islands lets the fp16 preview reach a mask agreement "
                             "of %.4f%% and mIoU %.4f on the golden images: use engine.precision: "
                             "fp32." % (100 * goal["mask_agreement"], goal["miou"]))
    return kept, search


def run_precision(cfg, layout):
    """The precision link: fp32 islands from the golden data -> model.mixed.onnx, precision.json."""
    precision_cfg, fp16_limits = cfg["precision"], cfg["verify"]["fp16"]
    engine_precision = cfg["engine"]["precision"]
    import onnx
    model = onnx.load(layout.onnx_model)
    labels = files.read_json(layout.manifest)["labels"]
    cases = pp.golden_cases(layout.golden_json)
    ranges = precision_scan.node_ranges(model, [{"pixel_values": c[1]} for c in cases])
    candidates = precision_scan.candidates(ranges)
    unnamed = [c for c in candidates if not c["node"]]
    if unnamed:
        raise PrecisionError("%s has an unnamed %s node beyond the fp16 range: re-export it with "
                             "`doit onnx`." % (layout.onnx_model, unnamed[0]["op"]))
    margin = precision_cfg["margin"]
    kept, search = _search(model, cases, labels, fp16_limits, margin, ranges, candidates)
    mixed, mixed_rows = pp.preview(model, kept, cases, labels)
    naive_rows = search.rows(frozenset())
    data = mixed.SerializeToString()
    report = {"format": FORMAT, "onnx_sha256": files.sha256_file(layout.onnx_model),
              "mixed_sha256": files.sha256_bytes(data), "tool": fp16_convert.tool(),
              "islands": _islands(ranges, candidates, kept, mixed),
              "dropped": [c for c in candidates if c["node"] not in set(kept)],
              "preview": {"mixed": mixed_rows, "naive": naive_rows},
              "limits": pp.derive_limits(mixed_rows, cases, margin),
              "goal": search.goal, "previews_run": search.runs + 1,
              "checked_against": dict(fp16_limits, engine_precision=engine_precision)}
    _print(report, fp16_limits)
    failure = _failure(mixed_rows, fp16_limits, os.path.basename(layout.precision_model))
    if failure and engine_precision == "fp16":
        raise PrecisionError(failure)
    files.write_bytes(layout.precision_model, data)
    files.write_json(layout.precision_report, report)
    if failure:
        print("precision: %s (engine.precision is fp32, so the link passes)" % failure)


def _print(report, fp16_limits):
    islands = report["islands"]
    print("precision: %d fp32 island(s) chosen (%d candidate(s) dropped by bisection, %d previews)"
          % (len(islands), len(report["dropped"]), report["previews_run"]))
    for i in islands:
        print("  island %-12s %s: %s" % (i["op"], i["node"], i["reason"]))
    for line in pp.table("precision: mixed model (model.mixed.onnx), emulated fp16",
                         report["preview"]["mixed"]):
        print(line)
    naive = report["preview"]["naive"]
    for line in pp.table("precision: naive all-fp16 model, emulated fp16", naive):
        print(line)
    lim = report["limits"]
    print("precision: limits derived for the device: logits max abs %.3g, mean abs %.3g, mask "
          "agreement %.4f%%, mIoU %.4f (pipeline.yaml verify.fp16: %.3g, %.3g, %.4f%%, %.4f)" % (
              lim["logits_max_abs"], lim["logits_mean_abs"], 100 * lim["mask_agreement"],
              lim["miou"], fp16_limits["logits_max_abs"], fp16_limits["logits_mean_abs"],
              100 * fp16_limits["mask_agreement"], fp16_limits["miou"]))
    stricter = [k for k in ("logits_max_abs", "logits_mean_abs") if fp16_limits[k] < lim[k]]
    stricter += [k for k in ("mask_agreement", "miou") if fp16_limits[k] > lim[k]]
    if stricter:
        print("precision: note: verify.fp16.%s is stricter than this preview supports, so the "
              "device's verify may reject a sound fp16 engine" % ", verify.fp16.".join(stricter))
