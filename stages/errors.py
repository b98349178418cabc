"""The one exceptions module. Every message is a full sentence that names the file or key
and says what to do; `stages.actions` turns these into a failed doit task and an exit code."""


class PipelineError(Exception):
    """An error the user can fix. str(error) is the whole message."""


class ConfigError(PipelineError):
    """pipeline.yaml, or a task variable on the command line, is wrong."""


class CheckoutError(PipelineError):
    """The Hugging Face checkout is missing, incomplete or not a SegFormer."""


class ImageError(PipelineError):
    """An input image or video cannot be read."""


class ExportError(PipelineError):
    """The ONNX export, check or simplification failed."""


class GateError(PipelineError):
    """The ONNX graph cannot be parsed by the target TensorRT."""


class ToleranceError(PipelineError):
    """A numeric comparison fell outside its threshold in pipeline.yaml."""


class DeviceError(PipelineError):
    """This machine lacks what the task needs (TensorRT, a CUDA GPU, nvcc)."""


class EngineError(PipelineError):
    """The TensorRT engine cannot be built, loaded or used here."""
