"""The SegFormer family: Hugging Face transformers' SegformerForSemanticSegmentation and its image
processor. The only module of the chain that names them (besides the checkout gate's weight
checks, stages/host/checkout_weights.py)."""
import numpy as np

from stages.common.errors import CheckoutError
from stages.common.schema import PRECISION_GROUPS

TITLE = "SegFormer"
MODEL_TYPE, ARCHITECTURE = "segformer", "SegformerForSemanticSegmentation"
# The layer groups an fp16 engine keeps in fp32: all that stages/host/precision.py finds in the
# graph (mmdeploy #2477 and TensorRT #2781 show fp16 SegFormer engines going wrong without).
FP32_GROUPS = PRECISION_GROUPS
EXPORT = {"attn_implementation": "eager"}  # SDPA cannot be exported at opset 13


def recognises(config):
    """Whether a checkout's config.json describes a SegFormer."""
    return config.get("model_type") == MODEL_TYPE


def check_config(config, model_dir):
    """A SegFormer for semantic segmentation (not, say, the bare encoder)."""
    archs = config.get("architectures") or [ARCHITECTURE]
    if not isinstance(archs, list) or ARCHITECTURE not in archs:
        raise CheckoutError("config.json in %s is a SegFormer for %s, not for semantic "
                            "segmentation: use a %s checkout." % (model_dir, archs, ARCHITECTURE))


def load(model_dir, safetensors):
    """(model, loading info) from the checkout, eager attention, on the CPU. Called only by the
    checkout gate's load_model, which enforces model.allow_pickle first."""
    from transformers import SegformerForSemanticSegmentation
    return SegformerForSemanticSegmentation.from_pretrained(
        model_dir, attn_implementation=EXPORT["attn_implementation"],
        use_safetensors=safetensors, local_files_only=True, output_loading_info=True)


def load_processor(model_dir):
    """The checkout's image processor, Pillow backend (what the golden files are made with)."""
    import transformers
    proc_cls = (getattr(transformers, "SegformerImageProcessorPil", None)
                or transformers.SegformerImageProcessor)
    return proc_cls.from_pretrained(model_dir, local_files_only=True)


def logits(model, pixel_values):
    """The forward pass: a 1x3xHxW torch tensor -> 1xCx(H/4)x(W/4) logits (export, bench)."""
    return model(pixel_values=pixel_values).logits


def golden_case(model, processor, rgb):
    """The reference for one RGB image: (input tensor, logits, mask at the image's size), the
    mask made as transformers makes it (upsample the logits bilinearly, then argmax)."""
    import torch
    inputs = processor(images=rgb, return_tensors="pt")
    with torch.no_grad():
        out = model(pixel_values=inputs["pixel_values"])
    mask = processor.post_process_semantic_segmentation(out, target_sizes=[rgb.shape[:2]])[0]
    return (inputs["pixel_values"].numpy(), out.logits.numpy(),
            mask.numpy().astype(np.uint8))


def rewrite(model, fold):
    """Graph rewrites before export: the decode head folded when onnx.fold is on
    (segformer_fold.py, exact up to float rounding)."""
    if fold:
        from stages.host.families.segformer_fold import fold_decode_head
        fold_decode_head(model)
    return model


def sidecar_fields(graph_model, model_dir, fold):
    """What this family adds to model.json: its fp32 groups, which the engine link pins, and the
    decode head's record (folded or not, the MACs of both graphs)."""
    from stages.host.families.segformer_fold import fold_record
    from stages.host.precision import precision_groups
    groups = precision_groups(graph_model)
    return {"precision_groups": dict((name, groups[name]) for name in FP32_GROUPS),
            "decode_head": fold_record(graph_model, model_dir, fold)}
