"""Issue 22's graph variants of one checkout, made on the host side (torch, transformers, onnx,
onnxconverter-common) for the real TensorRT-RTX builds (tests/test_trt_real_fold.py) and for
CI (tests/test_fold.py runs this preparation on the embedded model without TensorRT).

Variants: "unfolded" (opset 13, decomposed LayerNorm: today's Nano export), "folded" (the same
with the decode head folded), "folded_ln" (folded, opset 17, LayerNormalization as one node: the
export for TensorRT >= 8.6). Each comes with its mixed fp16 graph and its islands (the LayerNorm
groups and Softmax nodes, as stages.host.precision finds them)."""
import os

VARIANTS = (("unfolded", False, 13), ("folded", True, 13), ("folded_ln", True, 17))
SEGFORMER_B4 = dict(depths=[3, 8, 27, 3], hidden_sizes=[64, 128, 320, 512], decoder_hidden_size=768,
                    num_labels=35, num_attention_heads=[1, 2, 5, 8])


def export(model_dir, size, path, fold, opset):
    from stages.host.onnx_export import check_and_simplify, export_graph
    try:
        import onnxsim  # noqa: F401
        simplify = True
    except Exception:
        simplify = False
    from runtime import files
    weights = "model.safetensors"  # the loader rechecks its sha256, as after `doit checkout`
    manifest = {"input": {"height": size, "width": size},
                "weights": {"format": "safetensors", "files": [weights]},
                "sha256": {weights: files.sha256_file(os.path.join(model_dir, weights))}}
    export_graph(model_dir, manifest, opset, path, fold=fold)
    return check_and_simplify(path, simplify)[0]


def prepared(model):
    """{"fp32": bytes, "mixed": bytes, "islands": [...], "macs", "nodes", "ops"}."""
    from stages.host.fp16_convert import to_mixed
    from stages.host.precision import precision_groups
    from stages.host.families.segformer_fold import count_macs
    groups = precision_groups(model)
    names = set(n for g in groups.values() for n in g["nodes"])
    islands = [{"node": n.name, "op": n.op_type, "outputs": list(n.output),
                "reason": "LayerNorm/Softmax"}
               for n in model.graph.node if n.name in names]
    return {"fp32": model.SerializeToString(),
            "mixed": to_mixed(model, names).SerializeToString(), "islands": islands,
            "macs": count_macs(model)["total"], "nodes": len(model.graph.node),
            "ops": sorted(set(n.op_type for n in model.graph.node))}


def b4_checkout(folder):
    """A SegFormer-B4-size checkout with random weights in `folder` (512x512, 35 labels)."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    SegformerForSemanticSegmentation(SegformerConfig(**SEGFORMER_B4)).save_pretrained(folder)
    return folder


def variants(model_dir, size, folder, names=None):
    """{variant: prepared(...)} for each of VARIANTS (or those in `names`)."""
    out = {}
    for name, fold, opset in VARIANTS:
        if names is None or name in names:
            path = os.path.join(folder, "%s.onnx" % name)
            out[name] = prepared(export(model_dir, size, path, fold, opset))
    return out
