"""SegFormer's decode head, folded exactly (issue 22), and a MAC counter for ONNX graphs.

HF's SegformerDecodeHead: per stage i, a linear projection C_i -> D, bilinear upsampling to the
1/4-resolution grid of stage 0, a concat of the 4·D channels in reversed stage order, a 1x1
"fuse" convolution 4·D -> D (no bias), BatchNorm, ReLU, dropout and the classifier. Everything
before the ReLU is linear, and a bilinear resize (weights summing to 1) commutes with a per-pixel
channel map, so the fuse convolution and the eval-mode BatchNorm fold into each projection:

    W'_i = s * (F_i @ W_i),   b' = s * sum_i F_i @ b_i + (beta - s * mean),
    s = gamma / sqrt(var + eps)

with F_i the D x D block of the fuse weight at stage i's slot of the concat. Each stage then
projects straight to the D fused channels at its own resolution, is upsampled, and the four are
summed; b' rides on stage 0's projection, which is never resized. The 4·D x D product at 1/4
resolution disappears; the result is the same up to float rounding.

The fold rewrites the torch module before export (not the ONNX graph): the module names every
weight and the stage order, so the rewrite is ten lines of linear algebra instead of a pattern
match over whatever the exporter and onnx-simplifier made of the head."""
import os

import numpy as np

FOLD_FORMAT = "segformer-decode-head-fold/1"


def _folded_weights(head):
    """float64 (W'_i, b') from a SegformerDecodeHead in eval mode."""
    import torch
    n = len(head.linear_projections)
    fuse = head.linear_fuse.weight.detach().double()[:, :, 0, 0]  # D x n*D
    d = fuse.shape[0]
    bn = head.batch_norm
    s = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    bias = bn.bias.detach().double() - s * bn.running_mean.detach().double()
    weights = []
    for i, mlp in enumerate(head.linear_projections):
        slot = n - 1 - i  # HF concatenates all_hidden_states[::-1]
        f_i = fuse[:, slot * d:(slot + 1) * d]
        weights.append(s[:, None] * (f_i @ mlp.proj.weight.detach().double()))
        bias = bias + s * (f_i @ mlp.proj.bias.detach().double())
    return weights, bias


def _folded_head_class():
    import torch
    from torch import nn

    class FoldedDecodeHead(nn.Module):
        """Per stage a 1x1 convolution straight to the fused, normalised D channels, bilinear
        upsampling to stage 0's grid, a sum, ReLU and the original classifier."""

        def __init__(self, head):
            nn.Module.__init__(self)
            weights, bias = _folded_weights(head)
            dtype = head.classifier.weight.dtype
            self.config = head.config
            self.projections = nn.ModuleList()
            for i, w in enumerate(weights):
                conv = nn.Conv2d(w.shape[1], w.shape[0], kernel_size=1, bias=(i == 0))
                conv.weight.data = w[:, :, None, None].to(dtype).contiguous()
                if i == 0:
                    conv.bias.data = bias.to(dtype)
                self.projections.append(conv)
            self.activation = nn.ReLU()
            self.classifier = head.classifier

        def forward(self, encoder_hidden_states, **kwargs):
            size = encoder_hidden_states[0].shape[2:]
            fused = None
            for i, (state, conv) in enumerate(zip(encoder_hidden_states, self.projections)):
                if self.config.reshape_last_stage is False and state.ndim == 3:  # as HF does
                    side = int(state.shape[-1] ** 0.5)
                    state = state.reshape(state.shape[0], side, side, -1).permute(0, 3, 1, 2)
                y = conv(state)
                if i > 0:  # stage 0 is the 1/4 grid itself (HF's resize there is the identity)
                    y = nn.functional.interpolate(y, size=size, mode="bilinear",
                                                  align_corners=False)
                fused = y if fused is None else fused + y
            return self.classifier(self.activation(fused))

    return FoldedDecodeHead


def fold_decode_head(model):
    """A SegformerForSemanticSegmentation (any size, label count or input size) -> the same
    model, in eval mode, with its decode head folded. Returns the model."""
    model.eval()
    model.decode_head = _folded_head_class()(model.decode_head)
    return model


def removed_macs(config, logits_hw):
    """MACs of the fuse convolution the fold removes: D x 4·D per pixel of the logits grid."""
    d, n = config.decoder_hidden_size, config.num_encoder_blocks
    return d * n * d * int(logits_hw[0]) * int(logits_hw[1])


def _shapes(model):
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if all(x.HasField("dim_value") for x in dims):
            shapes[vi.name] = [x.dim_value for x in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def count_macs(onnx_model):
    """Multiply-accumulates of Conv, ConvTranspose, MatMul and Gemm nodes, with shapes from ONNX
    shape inference (the graph must have static shapes). Returns {"total", "by_op"}."""
    import onnx
    model = onnx.shape_inference.infer_shapes(onnx_model)
    shapes = _shapes(model)
    by_op = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
            continue
        out, a = shapes.get(node.output[0]), shapes.get(node.input[0])
        if out is None or a is None:
            raise ValueError("count_macs: no static shape for %s's tensors" % node.name)
        if node.op_type == "Conv":  # weight C_out x C_in/group x k...: per output element
            macs = int(np.prod(out)) * int(np.prod(shapes[node.input[1]][1:]))
        elif node.op_type == "ConvTranspose":  # weight C_in x C_out/group x k...: per input
            macs = int(np.prod(a)) * int(np.prod(shapes[node.input[1]][1:]))
        else:  # MatMul and Gemm: each output element is a dot product over K
            trans_a = any(x.name == "transA" and x.i for x in node.attribute)
            k = a[-2] if trans_a else a[-1]
            macs = int(np.prod(out)) * k
        by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
    return {"total": sum(by_op.values()), "by_op": by_op}


def fold_record(onnx_model, model_dir, folded):
    """The sidecar's "decode_head" entry: whether the graph is folded, and the MACs of the
    folded and unfolded graphs. This graph's count comes from the graph; the other one differs
    by exactly the fuse convolution (tests check it against a real export of the other)."""
    import json
    from transformers import SegformerConfig
    with open(os.path.join(model_dir, "config.json")) as f:  # validated by `doit checkout`;
        config = SegformerConfig(**json.load(f))  # the defaults save_pretrained leaves out
    graph = count_macs(onnx_model)
    logits_hw = [d.dim_value for d in onnx_model.graph.output[0].type.tensor_type.shape.dim][2:]
    fuse = removed_macs(config, logits_hw)
    macs = {"folded": graph["total"] - (0 if folded else fuse),
            "unfolded": graph["total"] + (fuse if folded else 0)}
    macs["ratio"] = round(macs["unfolded"] / float(macs["folded"]), 4)
    return {"format": FOLD_FORMAT, "folded": bool(folded), "macs": macs,
            "graph_macs_by_op": graph["by_op"],
            "counted": "Conv/MatMul/Gemm of this graph with ONNX shape inference; the other "
                       "graph's count adds or removes the fuse convolution (D x %d*D per logits "
                       "pixel)" % config.num_encoder_blocks}
