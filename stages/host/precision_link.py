"""precision link (host only): model.onnx -> model.mixed.onnx + precision.json, and the preview.

With engine.precision fp16: scans the fp32 graph on the golden inputs for values beyond fp16's
range, chooses the fp32 islands by their effect on the golden masks (precision_search, on the
fp16_switchboard emulation) within precision.budget_minutes and precision.budget_mb, writes the
mixed-precision model (fp16 compute, fp32 inputs/outputs, Cast nodes around the islands), and
ends with one verdict (precision_verdict): the islands found, "fp16 cannot keep these masks"
with the logit margins that say why, or "budget spent" with the best set. Fails when no set
meets the goal, or when the mixed model misses the verify.fp16 limits, since the device's
`doit verify` would then fail too. The goal is verify.fp16 as the user set it or its default,
never precision.json's derived limits (which verify uses where the user set no value,
stages/device/limits.py), so the goal does not move with the link's own output. With
engine.precision fp32 nothing is searched: the engine
needs no islands, and precision.json records that the link was skipped."""
import os
import time

from stages.common import files, precisions
from stages.common.errors import ConfigError, PipelineError
from stages.host import fp16_convert, precision_preview as pp, precision_scan
from stages.host import precision_search as ps, precision_verdict as pv
from stages.host.precision_budget import Budget, BudgetSpent, peak_mb

FORMAT = "segformer-precision/1"
SHOWN = 20  # island lines printed; precision.json has them all


class PrecisionError(PipelineError):
    """The mixed-precision model misses the fp16 limits, or no island set can reach them."""


def _reasons(all_groups, candidates, proven, verdict):
    """{node: why it is an island}, for the contract's records and the engine's build.log."""
    why = dict((c["node"], c["reason"]) for c in candidates)
    out = {}
    for name, reason, units in all_groups:
        for node in (n for u in units for n in u):
            base = why.get(node) or reason or "near fp16's range"
            test = ("the preview without it misses the mask goal" if node in proven else
                    "not tested alone: the budget ended the search" if verdict == "budget" else
                    "kept with its group")
            out[node] = "%s; %s" % (base, test)
    return out


def _seeds(all_groups, kept):
    """{keep_fp32 group: units, units kept in fp32}: what the search left of each seed group."""
    return dict((g, {"units": len(units), "kept": sum(1 for u in units if set(u) & kept)})
                for g, reason, units in all_groups if reason and reason.startswith("engine."))


def _islands(ranges, kept, mixed, reasons):
    """The contract's island records; mixed_outputs: the converter renames an island's outputs
    (<node>_output_cast_<i>) and gives the original names to the fp16 casts that follow."""
    by_node = dict((n.name, n) for n in mixed.graph.node)
    return [{"node": r["node"], "op": by_node[r["node"]].op_type, "outputs": r["outputs"],
             "mixed_outputs": list(by_node[r["node"]].output), "reason": reasons[r["node"]]}
            for r in ranges if r["node"] in kept]


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


def _skip(layout):
    """engine.precision fp32: no search; precision.json says so (model.mixed.onnx is not made)."""
    text = ("skipped: engine.precision is fp32, so the engine needs no fp32 islands; set "
            "engine.precision: fp16 to choose them")
    files.write_json(layout.precision_report, {
        "format": FORMAT, "onnx_sha256": files.sha256_file(layout.onnx_model), "islands": [],
        "verdict": {"kind": "skipped", "sentence": text}})
    print("precision: " + text)


def _scan(model, cases, budget, reserve):
    budget.say("step 1/4: range scan of the fp32 graph on %d golden image(s)" % len(cases))
    last = [time.time()]

    def image_done(i, n):
        budget.cost["range scan image"] = (time.time() - last[0], 0.0)
        budget.say("range scan: image %d of %d done" % (i, n))
        if i < n:
            budget.afford("range scan image", reserve)
        last[0] = time.time()
    ranges = precision_scan.node_ranges(model, [{"pixel_values": c[1]} for c in cases], image_done)
    candidates = precision_scan.candidates(ranges)
    unnamed = [c for c in candidates if not c["node"]]
    if unnamed:
        raise PrecisionError("The ONNX model has an unnamed %s node beyond the fp16 range: "
                             "re-export it with `doit onnx`." % unnamed[0]["op"])
    return ranges, candidates


def _check_groups(keep_fp32):
    unknown = [g for g in keep_fp32 if g not in ps.GROUPS]
    if unknown:
        raise ConfigError("engine.keep_fp32 names %s, but the groups are %s: fix pipeline.yaml."
                          % (", ".join(unknown), ", ".join(ps.GROUPS)))


def _prepare(model, cases, keep_fp32, budget, reserve):
    """Steps 1 and 2: (ranges, candidates, groups, switchable nodes, switchboard)."""
    from stages.host.fp16_switchboard import Board
    ranges, candidates = _scan(model, cases, budget, reserve)
    all_groups = ps.groups(model, ranges, candidates, keep_fp32)
    switchable = set(n for _, _, units in all_groups for u in units for n in u)
    budget.say("step 2/4: one emulation graph with %d switchable node(s) in %s" % (
        len(switchable), ", ".join("%s %d" % (g, len(u)) for g, _, u in all_groups) or "none"))
    scan_image = budget.estimate("range scan image")
    budget.cost["emulation graph"] = (scan_image, 0.0)  # a first guess: about one scan image
    budget.cost["preview"] = (0.6 * len(cases) * scan_image, 0.0)  # until one is measured
    started, _ = budget.start("emulation graph", reserve)
    board = Board(model, switchable)
    budget.cost["emulation graph"] = (time.time() - started, 0.0)
    return ranges, candidates, all_groups, switchable, board


def _search(model, cases, labels, cfg, budget, reserve):
    """(result of precision_search.choose, the search, what the search was made of)."""
    try:
        found = _prepare(model, cases, cfg["engine"]["keep_fp32"], budget, reserve)
    except BudgetSpent as spent:
        raise PrecisionError(pv.spent(spent.why, None, None, None, budget.seconds / 60))
    goal = ps.mask_goal(cfg["verify"]["fp16"], cfg["precision"]["margin"])
    budget.say("step 3/4: search (naive, all islands, then drop groups; the images run one by "
               "one: the export's shape is fixed at batch 1)")
    search = ps.Search(found[-1], cases, labels, goal, budget, reserve)
    result = ps.choose(search, found[2])
    search.board = None  # the switchboard session: free its memory before the rewrite
    return result, search, found[:-1]


def _verdict(result, search, found, cases, budget):
    """(kept islands, verdict record); raises PrecisionError when no set meets the goal."""
    ranges, candidates, all_groups, switchable = found
    minutes = budget.seconds / 60
    if result["verdict"] == "cannot":
        rows = search.seen.get(frozenset(switchable)) or search.seen[frozenset()]
        raise PrecisionError(pv.cannot(pv.margins(cases, rows), rows, search.goal,
                                       len(switchable)))
    kept = result["islands"]
    if kept is None:
        raise PrecisionError(pv.spent(result["why"], None, None, search.goal, minutes))
    rows = search.seen[frozenset(kept)]
    if result["verdict"] == "budget":
        text = pv.spent(result["why"], kept, rows, search.goal, minutes)
    else:
        text = pv.found(kept, search.runs, budget.elapsed())
    return kept, {"kind": result["verdict"], "sentence": text}


def _contract(cfg, search, result, found, made, budget):
    """precision.json's record (less the verdict and the two sha256): the islands by their
    model.onnx names, and the device limits from the mixed model's rows times the margin."""
    ranges, candidates, all_groups, _ = found
    cases, kept, mixed = made
    mixed_rows = search.seen[frozenset(kept)]  # the switchboard equals the mixed model's emulation
    reasons = _reasons(all_groups, candidates, result["proven"], result["verdict"])
    return {"format": FORMAT, "tool": fp16_convert.tool(),
            "islands": _islands(ranges, set(kept), mixed, reasons),
            "dropped": [c for c in candidates if c["node"] not in set(kept)],
            "keep_fp32": _seeds(all_groups, set(kept)),
            "preview": {"mixed": mixed_rows, "naive": search.seen.get(frozenset(), mixed_rows)},
            "limits": pp.derive_limits(mixed_rows, cases, cfg["precision"]["margin"]),
            "margins": pv.margins(cases, mixed_rows), "goal": search.goal,
            "previews_run": search.runs,
            "search": {"seconds": round(budget.elapsed(), 1), "peak_mb": round(peak_mb()),
                       "groups": dict((g, len(u)) for g, _, u in all_groups),
                       "budget_minutes": cfg["precision"]["budget_minutes"],
                       "budget_mb": cfg["precision"]["budget_mb"]},
            "checked_against": dict(cfg["verify"]["fp16"], engine_precision="fp16")}




def run_precision(cfg, layout):
    """The precision link: fp32 islands from the golden data -> model.mixed.onnx, precision.json."""
    fp16_limits = cfg["verify"]["fp16"]
    if precisions.get(cfg["engine"]["precision"]).host_artifact is None:
        return _skip(layout)  # an engine built from model.onnx alone needs no islands
    _check_groups(cfg["engine"]["keep_fp32"])
    budget = Budget(cfg["precision"]["budget_minutes"], cfg["precision"]["budget_mb"])
    import onnx
    model = onnx.load(layout.onnx_model)
    labels = files.read_json(layout.manifest)["labels"]
    cases = pp.golden_cases(layout.golden_json)
    reserve = 5 + os.path.getsize(layout.onnx_model) / 1e7  # the rewrite at the end (B4: ~15 s)
    result, search, found = _search(model, cases, labels, cfg, budget, reserve)
    kept, verdict = _verdict(result, search, found, cases, budget)
    budget.say("step 4/4: writing the mixed model with %d island(s)" % len(kept))
    mixed = fp16_convert.to_mixed(model, kept)
    data = mixed.SerializeToString()
    report = dict(_contract(cfg, search, result, found, (cases, kept, mixed), budget),
                  verdict=verdict,
                  onnx_sha256=files.sha256_file(layout.onnx_model),
                  mixed_sha256=files.sha256_bytes(data))
    mixed_rows = report["preview"]["mixed"]
    _print(report, fp16_limits, cfg.get("explicit") or {})
    failure = _failure(mixed_rows, fp16_limits, os.path.basename(layout.precision_model))
    if failure:
        raise PrecisionError(failure)
    files.write_bytes(layout.precision_model, data)
    files.write_json(layout.precision_report, report)
    print("precision: " + verdict["sentence"])


def _print(report, fp16_limits, explicit):
    islands = report["islands"]
    print("precision: %d fp32 island(s) chosen (%d beyond-range candidate(s) dropped, %d previews)"
          % (len(islands), len(report["dropped"]), report["previews_run"]))
    for i in islands[:SHOWN]:
        print("  island %-12s %s: %s" % (i["op"], i["node"], i["reason"]))
    if len(islands) > SHOWN:
        print("  ... and %d more (precision.json lists them all)" % (len(islands) - SHOWN))
    for group, seed in sorted(report["keep_fp32"].items()):
        print("precision: engine.keep_fp32 %s: %d of %d kept in fp32 (the others: the preview "
              "without them meets the mask goal)" % (group, seed["kept"], seed["units"]))
    for line in pp.table("precision: mixed model (model.mixed.onnx), emulated fp16",
                         report["preview"]["mixed"]):
        print(line)
    naive = report["preview"]["naive"]
    for line in pp.table("precision: naive all-fp16 model, emulated fp16", naive):
        print(line)
    lim = report["limits"]
    print("precision: limits derived for the device: logits max abs %.3g, mean abs %.3g, mask "
          "agreement %.4f%%, mIoU %.4f, used by verify where verify.fp16 sets none (the goal, "
          "verify.fp16 as set or by default: %.3g, %.3g, %.4f%%, %.4f)" % (
              lim["logits_max_abs"], lim["logits_mean_abs"], 100 * lim["mask_agreement"],
              lim["miou"], fp16_limits["logits_max_abs"], fp16_limits["logits_mean_abs"],
              100 * fp16_limits["mask_agreement"], fp16_limits["miou"]))
    stricter = [k for k in ("logits_max_abs", "logits_mean_abs") if fp16_limits[k] < lim[k]]
    stricter += [k for k in ("mask_agreement", "miou") if fp16_limits[k] > lim[k]]
    stricter = [k for k in stricter if "verify.fp16." + k in explicit]  # else verify derives
    if stricter:
        print("precision: note: verify.fp16.%s is stricter than this preview supports, so the "
              "device's verify may reject a sound fp16 engine" % ", verify.fp16.".join(stricter))
