"""The exceptions the runtime raises, and the root of every error in the project. Each message
is a full sentence that names the file or key and says what to do. `stages.common.errors` adds
the host links' errors on top; `stages.common.actions` turns any of them into one line and a
non-zero exit."""


class PipelineError(Exception):
    """An error the user can fix. str(error) is the whole message."""


class ConfigError(PipelineError):
    """pipeline.yaml, or a task variable on the command line, is wrong."""


class ImageError(PipelineError):
    """An input image or video cannot be read."""


class ToleranceError(PipelineError):
    """A numeric comparison fell outside its threshold in pipeline.yaml."""


class DeviceError(PipelineError):
    """This machine lacks what the task needs (TensorRT, a CUDA GPU, nvcc)."""


class EngineError(PipelineError):
    """The TensorRT engine cannot be built, loaded or used here."""


class ArtifactError(PipelineError):
    """An artifact is missing, damaged, or does not match its recorded hash."""


class NonFiniteError(PipelineError):
    """Weights, golden files or a backend's output hold NaN or infinity."""
