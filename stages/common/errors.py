"""The pipeline's exceptions: the runtime's (runtime/errors.py, the root) plus the host links'.
Every message is a full sentence that names the file or key and says what to do;
`stages.common.actions` turns these into a failed doit task and an exit code."""
from runtime.errors import (  # noqa: F401  (re-exported: one import point for stages/)
    ArtifactError, ConfigError, DeviceError, EngineError, ImageError, PipelineError, ToleranceError)


class CheckoutError(PipelineError):
    """The Hugging Face checkout is missing, incomplete or not a SegFormer."""


class ExportError(PipelineError):
    """The ONNX export, check or simplification failed."""


class GateError(PipelineError):
    """The ONNX graph cannot be parsed by the target TensorRT."""
