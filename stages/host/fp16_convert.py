"""The graph rewrite: fp32 model.onnx -> mixed precision (fp16 compute, fp32 islands).

onnxconverter-common's float16 converter does the rewrite (README "fp16: the precision link"
says why this one and not ModelOpt AutoCast): fp32 graph inputs and outputs, every node fp16
except the islands, and a Cast node on each edge between an fp16 node and an fp32 island.
Its defaults are not plain fp16 rounding, so they are overridden here:
- initializers are clamped to [1e-7, 1e4] by default; here only to +-65504, so a weight is
  rounded as fp16 rounds it (tiny ones to subnormals or zero; beyond 65504 to +-65504, not inf);
- its default op block list keeps Resize, Min, Max, Range... in fp32 for ONNX Runtime's sake;
  here no op is kept in fp32 by type, only the islands that the data asked for."""
import warnings

FP16_MAX = 65504.0


def tool():
    import onnxconverter_common
    return {"name": "onnxconverter-common (float16.convert_float_to_float16)",
            "version": onnxconverter_common.__version__}


def to_mixed(model, islands):
    """A copy of `model` in fp16 with the nodes named in `islands` kept in fp32."""
    from onnxconverter_common import float16
    copy = type(model)()
    copy.CopyFrom(model)
    with warnings.catch_warnings():  # it warns for each clamped weight; the preview measures them
        warnings.simplefilter("ignore")
        return float16.convert_float_to_float16(
            copy, min_positive_val=0.0, max_finite_val=FP16_MAX, keep_io_types=True,
            op_block_list=[], node_block_list=sorted(islands), check_fp16_ready=True)


def island_casts(mixed):
    """How many Cast nodes the rewrite placed (fp32<->fp16 boundaries, inputs and outputs too)."""
    return sum(1 for n in mixed.graph.node if n.op_type == "Cast")
