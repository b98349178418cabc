"""The engine folder: artifacts/engine/<device-slug>/ holding model.engine, its sidecar
model.json, build.log and timing.cache. This type is the only code that knows those names:
the engine link writes through it, the device checks and the TensorRT backend read through it."""
import os
import time

from runtime import files, sidecar
from runtime.device import IDENTITY_KEYS, IDENTITY_LABELS as LABELS
from runtime.errors import ArtifactError, EngineError

ENGINE, BUILD_LOG, TIMING_CACHE = "model.engine", "build.log", "timing.cache"
SIDECAR = sidecar.SIDECAR
BUILT_IN = "build_engine: built in "


class EngineFolder(object):
    """One device's engine and everything beside it."""

    def __init__(self, path):
        self.path = path
        self.engine = os.path.join(path, ENGINE)
        self.sidecar = os.path.join(path, SIDECAR)
        self.build_log = os.path.join(path, BUILD_LOG)
        self.timing_cache = os.path.join(path, TIMING_CACHE)

    def __repr__(self):
        return "EngineFolder(%r)" % self.path

    def exists(self):
        """True when the engine and its sidecar are both there (one build writes both)."""
        return os.path.isfile(self.engine) and os.path.isfile(self.sidecar)

    def read(self):
        """The checked sidecar (labels, tensors, preprocess, and the `engine` record)."""
        meta = sidecar.load(self.sidecar)
        record = meta.get("engine")
        if not isinstance(record, dict) or not all(
                k in record for k in ("sha256", "device", "settings")):
            raise EngineError("%s has no engine record: rebuild it with `doit build_engine`."
                              % self.sidecar)
        return meta

    def recorded_sha256(self):
        """The engine's sha256 as its sidecar records it (no hashing), or None when unreadable."""
        try:
            return self.read()["engine"]["sha256"]
        except EngineError:
            return None

    def precision(self, meta=None):
        return (meta or self.read())["engine"]["settings"]["precision"]

    def device(self, meta=None):
        return (meta or self.read())["engine"]["device"]

    def read_plan(self, meta=None):
        """The engine bytes, refused (one sentence) when they differ from the recorded sha256."""
        meta = meta or self.read()
        with open(self.engine, "rb") as f:
            plan = f.read()
        if files.sha256_bytes(plan) != meta["engine"]["sha256"]:
            raise ArtifactError("%s does not match the sha256 in %s (damaged or replaced): rebuild "
                                "it with `doit build_engine`." % (self.engine, self.sidecar))
        return plan

    def read_timing_cache(self):
        if not os.path.isfile(self.timing_cache):
            return None
        with open(self.timing_cache, "rb") as f:
            return f.read()

    def check_compatible(self, current, meta=None):
        """Refuse an engine built for another GPU, CUDA, TensorRT or L4T, naming both sides."""
        built = self.device(meta)
        diff = [k for k in IDENTITY_KEYS if built.get(k) != current.get(k)]
        if diff:
            raise EngineError(
                "%s was built for another %s (%s) than this device's (%s): rebuild it here with "
                "`doit build_engine`." % (self.engine, ", ".join(LABELS[k] for k in diff),
                                          _describe(built, diff), _describe(current, diff)))

    def write_log(self, lines, seconds=None, failed_after=None):
        """build.log: TensorRT's messages, then how the build ended (for people; the next build's
        time-left estimate reads the sidecar's build_seconds)."""
        if seconds is not None:
            lines = list(lines) + ["%s%.1f s" % (BUILT_IN, seconds)]
        elif failed_after is not None:
            lines = list(lines) + ["build_engine: failed after %.1f s" % failed_after]
        files.write_text(self.build_log, "\n".join(lines) + "\n")

    def previous_build_seconds(self):
        """How long the build of the engine in this folder took, as its sidecar records it, or
        None (no engine, or an unreadable sidecar)."""
        if not self.exists():
            return None
        try:
            seconds = self.read()["engine"].get("build_seconds")
        except EngineError:
            return None
        return float(seconds) if isinstance(seconds, (int, float)) else None

    def write(self, plan, onnx_meta, settings, device, build_info, seconds, trt_version,
              cache=None):
        """Engine first, then its sidecar (the sidecar's sha256 names the engine it describes)."""
        meta = dict(onnx_meta)
        meta.pop("precision_groups", None)
        meta["engine"] = {"file": ENGINE, "settings": settings, "device": device,
                          "tensorrt": trt_version,
                          "sha256": files.sha256_bytes(plan), "build_seconds": round(seconds, 1),
                          "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          "build": build_info}
        files.write_bytes(self.engine, plan)
        files.write_json(self.sidecar, meta)
        if cache is not None:
            files.write_bytes(self.timing_cache, cache)
        return meta


def _describe(identity, keys):
    return ", ".join("%s %s" % (LABELS[k], identity.get(k)) for k in keys)
