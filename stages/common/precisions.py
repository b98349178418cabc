"""Precision as data: every precision an engine can be built in, in one table. Each says which
host link's files its build reads, which verify section's limits its engines must meet, and how
each TensorRT generation builds it (a Recipe). The schema's engine.precision choices, dodo's
file dependencies, the engine link, the builder and verify read this table; no other module
compares precision names (tests/test_structure.py).

A new precision (say int8 for Orin) is one row here (and its Recipes), its verify limits in
schema.py, and what its recipe asks of TensorRT in stages/device/trt_builder.py."""
from collections import OrderedDict


class Recipe(object):
    """How TensorRT builds one precision on one generation.
    typing: its name in the build record ("fp32", "weak" or "strong");
    from_link: the network is the precision link's model.mixed.onnx (else model.onnx);
    reduced: the build asks for reduced precision (a GPU without fast fp16 cannot);
    pins: the precision link's fp32 islands are pinned layer by layer (weak typing), with the
      builder flags that make TensorRT obey them, and checked in the built engine;
    strongly_typed: the network's own types decide (the STRONGLY_TYPED flag where weak typing
      still exists, the only way on TensorRT 11 and TensorRT-RTX)."""

    def __init__(self, typing, from_link=False, reduced=False, pins=False, strongly_typed=False):
        self.typing, self.from_link, self.reduced = typing, from_link, reduced
        self.pins, self.strongly_typed = pins, strongly_typed


FULL = Recipe("fp32")
WEAK = Recipe("weak", reduced=True, pins=True)
STRONG = Recipe("strong", from_link=True, reduced=True, strongly_typed=True)


RECIPES = dict((r.typing, r) for r in (FULL, WEAK, STRONG))


class Precision(object):
    """name: engine.precision's value; verify_key: the verify.<key> limits its engines meet;
    host_artifact: the Layout attribute of the precision link's model its engine is built from
    where TensorRT is strongly typed (None: model.onnx alone, no link files needed);
    weak, strong: its Recipe on a weakly typed TensorRT (8.x, the Jetson Nano) and on a strongly
    typed one (10.x with STRONGLY_TYPED, 11.x, TensorRT-RTX)."""

    def __init__(self, name, verify_key, host_artifact, weak, strong):
        self.name, self.verify_key, self.host_artifact = name, verify_key, host_artifact
        self.weak, self.strong = weak, strong

    def recipe(self, strongly_typed):
        """The Recipe on a TensorRT that is strongly typed (True) or weakly typed (False)."""
        return self.strong if strongly_typed else self.weak

    def link_outputs(self, layout):
        """What the precision link makes for an engine of this precision: precision.json, and
        the model its engine is built from where it has one."""
        return [layout.precision_report] + (
            [getattr(layout, self.host_artifact)] if self.host_artifact else [])

    def host_files(self, layout):
        """The precision link's files an engine of this precision reads: its model and the
        report that names its islands; none where it reads model.onnx alone."""
        if self.host_artifact is None:
            return []
        return [getattr(layout, self.host_artifact), layout.precision_report]


PRECISIONS = OrderedDict((p.name, p) for p in (
    Precision("fp32", "fp32", None, FULL, FULL),
    Precision("fp16", "fp16", "precision_model", WEAK, STRONG),
))
HALF = "fp16"  # what the engine inspector calls a layer that runs in half precision


def names():
    return tuple(PRECISIONS)


def get(name):
    """The table's row for engine.precision (the schema has already checked the name)."""
    return PRECISIONS[name]


def recipe(typing):
    """The Recipe named in a build record ("fp32", "weak" or "strong")."""
    return RECIPES[typing]


def limits(verify_cfg, name):
    """The verify limits an engine of precision `name` must meet."""
    return verify_cfg[get(name).verify_key]


def linked():
    """The precisions whose engines are built from the precision link's model."""
    return [p for p in PRECISIONS.values() if p.host_artifact is not None]
