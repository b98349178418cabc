"""Where every artifact lives, derived from the config (pure path arithmetic, no heavy imports)."""
import os

from runtime.kernels import KERNELS

GOLDEN_FILES = ("input.npy", "logits.npy", "mask.png", "overlay.jpg")


class Layout(object):
    def __init__(self, cfg):
        a = cfg["artifacts"]
        self.artifacts = a
        self.images = cfg["golden"]["images"]
        self.manifest = os.path.join(a, "checkout", "manifest.json")
        self.golden_dir = os.path.join(a, "golden")
        self.golden_json = os.path.join(self.golden_dir, "golden.json")
        self.onnx_dir = os.path.join(a, "onnx")
        self.onnx_model = os.path.join(self.onnx_dir, "model.onnx")
        self.onnx_sidecar = os.path.join(self.onnx_dir, "model.json")
        self.onnx_report = os.path.join(self.onnx_dir, "report.json")
        self.precision_model = os.path.join(self.onnx_dir, "model.mixed.onnx")  # precision link
        self.precision_report = os.path.join(self.onnx_dir, "precision.json")
        self.engine_root = os.path.join(a, "engine")
        self.kernels_root = os.path.join(a, "kernels")
        self.verify_dir = os.path.join(a, "verify")
        self.bench_dir = os.path.join(a, "bench")
        self.bundle = os.path.join(a, "bundle", "segformer-device-bundle.tar.gz")

    def golden_case_dir(self, index, image):
        stem = os.path.splitext(os.path.basename(image))[0]
        return os.path.join(self.golden_dir, "%02d_%s" % (index, stem))

    def golden_targets(self):
        out = [self.golden_json]
        for i, img in enumerate(self.images):
            out += [os.path.join(self.golden_case_dir(i, img), f) for f in GOLDEN_FILES]
        return out

    def engine_dir(self, slug):
        return os.path.join(self.engine_root, slug)

    def kernels_dir(self, arch):
        return os.path.join(self.kernels_root, arch)


def kernel_sources():
    """The .cu files, relative to the project root (doit runs there)."""
    return [os.path.join("runtime", "kernels", k + ".cu") for k in KERNELS]
