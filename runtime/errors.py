"""The runtime raises the pipeline's exceptions: one module (stages/errors.py), full sentences."""
from stages.errors import ConfigError, DeviceError, EngineError, ImageError, PipelineError  # noqa: F401
