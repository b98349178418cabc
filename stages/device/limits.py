"""The limits verify applies to an engine, and where each comes from (issue 23).

For a precision built from the precision link's model (fp16), each limit is, in this order:
- "explicit": the user's verify.<key>.<limit>, when the pipeline file or the command line sets it
  (stages.common.config records which keys were given);
- "derived": precision.json's `limits`, which the precision link derives from its fp16 preview,
  when precision.json exists and was made from this model.onnx (its onnx_sha256);
- "default": the schema's value.
Other precisions (fp32) use verify.<key> as configured. The precision link's own goal stays
verify.fp16 as configured (explicit or default), never the derived limits, so nothing loops.
An explicit limit stricter than the derived one is reported in one line."""
import os

from runtime import files, sidecar
from stages.common import precisions
from stages.common.errors import PipelineError

DERIVED = ("logits_max_abs", "logits_mean_abs", "mask_agreement", "miou")


def precision_report(layout, onnx_sha256):
    """precision.json (None before the precision link has run, or in a bundle without it) and
    whether it was made from the model.onnx whose hash is `onnx_sha256`."""
    if not os.path.isfile(layout.precision_report):
        return None, False
    report = files.read_json(layout.precision_report)
    return report, report.get("onnx_sha256") == onnx_sha256


def derived(layout):
    """precision.json's derived limits and a line to print: (None, None) without precision.json
    or model.onnx's sidecar; (None, line) when precision.json comes from another model.onnx."""
    folder = os.path.dirname(layout.onnx_model) or "."
    if not os.path.isfile(layout.precision_report) or not os.path.isfile(
            os.path.join(folder, sidecar.SIDECAR)):
        return None, None
    report, same = precision_report(layout, sidecar.load(folder)["onnx_sha256"])
    if not same:
        return None, ("verify: %s was made from another model.onnx than %s, so its derived "
                      "limits are not used: rerun `doit precision` on the host." % (
                          layout.precision_report, layout.onnx_model))
    found = report.get("limits") or {}
    return dict((k, float(found[k])) for k in DERIVED if k in found), None


def stricter(key, value, supported):
    """A limit `value` that an engine meeting `supported` could still fail."""
    return value < supported if key.endswith("abs") else value > supported


def resolve(cfg, layout, precision):
    """(limits, sources, lines): the limits for an engine of `precision`, each one's source
    (explicit / derived / default), and the lines verify prints about them."""
    key = precisions.get(precision).verify_key
    limits, sources, lines = dict(precisions.limits(cfg["verify"], precision)), {}, []
    given = cfg.get("explicit") or {}
    found, note = derived(layout) if precisions.get(precision).host_artifact else (None, None)
    lines += [note] if note else []
    for name in sorted(limits):
        dotted = "verify.%s.%s" % (key, name)
        if dotted in given:
            sources[name] = "explicit"
            if found and name in found and stricter(name, limits[name], found[name]):
                lines.append("verify: %s %.4g (%s) is stricter than the %.4g the %s preview "
                             "supports: expect this check to fail." % (
                                 dotted, limits[name], given[dotted], found[name], precision))
        elif found and name in found:
            limits[name], sources[name] = found[name], "derived"
        else:
            sources[name] = "default"
    return limits, sources, lines


def in_effect(cfg, layout, engine_sha256):
    """What decides verify's limits besides verify's own settings, for its up-to-date check:
    the explicit verify keys, and precision.json's derived limits where verify may run an engine
    (engine_sha256 not None; the ONNX model runs in fp32, which never takes them)."""
    given = cfg.get("explicit") or {}
    try:
        found = derived(layout)[0] if engine_sha256 is not None else None
    except PipelineError as e:  # damaged: verify reruns and says so
        found = str(e)
    return {"explicit": sorted(k for k in given if k.startswith("verify.")), "derived": found}
