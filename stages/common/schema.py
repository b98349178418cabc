"""Every setting of the pipeline as data: pipeline.yaml's sections and keys, and the command-line
variables, each of which overrides named keys (so `alpha=2` is checked by the same rule, with the
same message, as `infer.alpha: 2`). stages.common.config applies it."""
from runtime.backends import names as backend_names  # the backend registry, read live
from stages.common.precisions import names as precision_names  # the precision table

# rtx: TensorRT-RTX (11.1 table)
TRT_TARGETS = ("8.0", "8.2", "8.4", "8.5", "8.6", "10", "11", "rtx")
# engine.keep_fp32: the layer groups stages/host/precision.py finds (precision_groups)
PRECISION_GROUPS = ("LayerNorm", "Softmax")
# The bounds table: every number's sane range (a limit that can never fail, or a size no machine
# has, is refused). Tests check that every int and float key has both bounds.
ABS_LIMIT = 1000       # an abs-error limit above this could never fail (logits are O(10))
# the same tuple as stages.device.evaluate_data.LAYOUTS
LABEL_LAYOUTS = ("auto", "indices", "sidewalk", "cityscapes")


class Key(object):
    """One setting: kind is bool|int|float|str|path|outpath|outdir|paths|strs|choice|
    source, its default,
    and its limits. A float is always finite (NaN and infinity are refused)."""

    def __init__(self, kind, default, choices=None, optional=False, minimum=None, maximum=None):
        self.kind, self.default, self._choices = kind, default, choices
        self.optional, self.minimum, self.maximum = optional, minimum, maximum

    @property
    def choices(self):
        """The accepted values; a function (such as the backend registry's names) is asked
        each time, so what registers later is accepted too."""
        return self._choices() if callable(self._choices) else self._choices


def _fraction(default):
    return Key("float", default, minimum=0, maximum=1)


def _abs(default):
    return Key("float", default, minimum=0, maximum=ABS_LIMIT)


def _thresholds(input_max_abs, logits_max_abs, logits_mean_abs, mask_agreement, miou):
    return {"input_max_abs": _abs(input_max_abs),
            "logits_max_abs": _abs(logits_max_abs),
            "logits_mean_abs": _abs(logits_mean_abs),
            "mask_agreement": _fraction(mask_agreement),
            "miou": _fraction(miou)}


SCHEMA = {
    "artifacts": Key("outpath", "artifacts"),
    "model": {
        "path": Key("str", "models/segformer-tiny-sidewalk"),
        "repo_id": Key("str", None, optional=True),
        "revision": Key("str", None, optional=True),
        "allow_pickle": Key("bool", False),
    },
    "golden": {
        "images": Key("paths", ["examples/street_1920x1080.jpg"]),
        "overlay_alpha": _fraction(0.5),
    },
    "onnx": {
        "opset": Key("int", 13, minimum=7, maximum=23),
        "simplify": Key("bool", True),
        "target_tensorrt": Key("choice", "8.2", choices=TRT_TARGETS),
        "max_abs": _abs(1e-3),
        "mask_agreement": _fraction(0.999),
        "fold": Key("bool", True),  # issue 22: fold the decode head's fuse conv + BatchNorm
        # issue 22: LayerNormalization as one node (opset 17) where the target parses it
        "layer_norm": Key("choice", "auto", choices=("auto", "decomposed", "native")),
    },
    "precision": {  # the precision link: fp32 islands, mixed model, fp16 preview
        "margin": Key("float", 4.0, minimum=1, maximum=1000),
        "budget_minutes": Key("float", 10.0, minimum=0.1, maximum=1440),
        "budget_mb": Key("int", 6000, minimum=500, maximum=1048576),
    },
    "engine": {
        "precision": Key("choice", "fp16", choices=precision_names),
        "workspace_mb": Key("int", 1024, minimum=16, maximum=1 << 18),  # 256 GB
        "keep_fp32": Key("strs", ["LayerNorm", "Softmax"], choices=PRECISION_GROUPS),
        "timing_cache": Key("bool", True),
    },
    "verify": {
        "backend": Key("choice", "auto", choices=backend_names),
        "fp32": _thresholds(1e-3, 1e-3, 1e-4, 0.999, 0.99),
        "fp16": _thresholds(1e-3, 0.05, 0.006, 0.995, 0.89),  # from `doit precision`'s limits
    },
    "infer": {
        "image": Key("source", None, optional=True),
        "out": Key("outdir", "artifacts/infer"),
        "alpha": _fraction(0.5),
        "mode": Key("choice", "both", choices=("overlay", "mask", "both")),
        "backend": Key("choice", "auto", choices=backend_names),
        "n": Key("int", None, optional=True, minimum=1, maximum=10 ** 9),
        "sequential": Key("bool", False),
        "max_megapixels": Key("float", 80.0, minimum=0.01, maximum=1000),
    },
    "bench": {
        "image": Key("path", "examples/street_1920x1080.jpg"),
        "iterations": Key("int", 50, minimum=1, maximum=10 ** 6),
        "warmup": Key("int", 5, minimum=0, maximum=10 ** 4),
        "backend": Key("choice", "auto", choices=backend_names),
        "cpu": Key("bool", True),
        "compare_fold": Key("bool", False),  # issue 22: both engines side by side (TensorRT)
    },
    "evaluate": {  # doit evaluate: accuracy on a labelled set (stages/device/evaluate.py)
        "data": Key("str", "datasets/sidewalk-demo"),
        "labels": Key("choice", "auto", choices=LABEL_LAYOUTS),
        "max_miou_drop": _fraction(0.01),
        "max_class_iou_drop": Key("float", None, optional=True, minimum=0, maximum=1),
        "worst": Key("int", 3, minimum=0, maximum=50),
    },
}

# name= on the command line -> (help, the keys it overrides). `config` picks the pipeline file.
VARIABLES = {
    "config": ("the pipeline file (default pipeline.yaml)", ()),
    "image": ("an image, folder, video, camera index or GStreamer pipeline (infer)",
              ("infer.image",)),
    "out": ("the output folder (infer)", ("infer.out",)),
    "alpha": ("the overlay blend 0..1 (infer)", ("infer.alpha",)),
    "mode": ("overlay, mask or both (infer)", ("infer.mode",)),
    "backend": ("%s or %s (verify, infer, bench)" % (", ".join(backend_names()[:-1]),
                                                      backend_names()[-1]),
                ("verify.backend", "infer.backend", "bench.backend")),
    "n": ("frames (infer) or timed iterations (bench)", ("infer.n", "bench.iterations")),
    "sequential": ("1 to run infer's stream stages one after another (no pipelining)",
                   ("infer.sequential",)),
    "cpu": ("0 to skip bench's ONNX Runtime vs PyTorch CPU comparison", ("bench.cpu",)),
    "compare_fold": ("1 to time the folded and unfolded engines side by side (bench, TensorRT)",
                     ("bench.compare_fold",)),
    "data": ("a labelled set: DIR/images/ and DIR/labels/ (evaluate)", ("evaluate.data",)),
    "labels": ("auto, indices, sidewalk or cityscapes label layout (evaluate)",
               ("evaluate.labels",)),
}


def key_spec(dotted):
    """The Key for 'section.name' (or a top-level name)."""
    node = SCHEMA
    for part in dotted.split("."):
        node = node[part]
    return node
