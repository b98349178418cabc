"""The runtime's exceptions are the pipeline's: one module, full sentences."""
try:
    from stages.errors import PipelineError, ImageError, EngineError, DeviceError, ConfigError  # noqa: F401
except ImportError:  # the runtime used on its own, without stages/
    class PipelineError(Exception):
        """An error the user can fix. str(error) is the whole message."""

    class ImageError(PipelineError):
        """An input image or video cannot be read."""

    class EngineError(PipelineError):
        """The TensorRT engine cannot be loaded or used here."""

    class DeviceError(PipelineError):
        """This machine lacks what the runtime needs."""

    class ConfigError(PipelineError):
        """A setting is wrong."""
