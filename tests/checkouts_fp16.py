"""A test checkout that needs fp32 islands: the embedded model with two LayerNorm inputs scaled up.

A LayerNorm is invariant to the scale of its input. Multiplying the convolution in front of two
of them by a factor leaves the fp32 model's masks as they were, but their squared deviations grow
by the factor squared, far beyond fp16's 65504 (the embedded model's peak is about 2,500):
- stage 1's patch embedding (max squared deviation 5.4) x 256: about 355,000;
- stage 1's first sequence reduction (about 2,500) x 16: about 640,000.
Naive fp16 turns those squares into inf, and the LayerNorm outputs into their bias."""
import os
import shutil

from conftest import ROOT, copy_project, edit_yaml

SCALED = {"segformer.encoder.patch_embeddings.0.proj.": 256.0,
          "segformer.encoder.block.0.0.attention.self.sr.": 16.0}
MODEL = os.path.join(ROOT, "models", "segformer-tiny-sidewalk")


def make_island_checkout(dest):
    """Write the scaled checkout to `dest` (a folder); returns it."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
    shutil.copytree(MODEL, dest)
    path = os.path.join(dest, "model.safetensors")
    with safe_open(path, "np") as f:
        metadata = f.metadata()
    weights = load_file(path)
    for prefix, scale in SCALED.items():
        for part in ("weight", "bias"):
            w = weights[prefix + part]
            weights[prefix + part] = w * w.dtype.type(scale)
    save_file(weights, path, metadata=metadata)
    return dest


def island_project(dest):
    """A fresh project copy whose pipeline.yaml points at the scaled checkout, one golden image."""
    copy_project(dest, with_artifacts=False)
    make_island_checkout(os.path.join(dest, "models", "needs-islands"))
    pipeline = os.path.join(dest, "pipeline.yaml")
    edit_yaml(pipeline, "path: models/segformer-tiny-sidewalk", "path: models/needs-islands")
    edit_yaml(pipeline, "    - examples/odd_641x479.jpg\n", "")
    edit_yaml(pipeline, "    - examples/portrait_720x1280.jpg\n", "")
    return dest


TIED = ("decode_head.classifier.bias", 3000.0)  # every logit + 3000


def make_tied_checkout(dest):
    """The embedded model with 3000 added to every logit (its classifier's bias): the same fp32
    masks, but fp16 keeps numbers near 3000 only to +-1 (spacing 2), while the embedded model's
    top-1/top-2 margins have a 5th percentile of about 1.7: relative to their size the logits
    are nearly tied, as a random B4's are, and no fp32 island can help (the classifier is no
    island)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
    shutil.copytree(MODEL, dest)
    path = os.path.join(dest, "model.safetensors")
    with safe_open(path, "np") as f:
        metadata = f.metadata()
    weights = load_file(path)
    name, offset = TIED
    weights[name] = weights[name] + weights[name].dtype.type(offset)
    save_file(weights, path, metadata=metadata)
    return dest


def tied_project(dest):
    """A fresh project copy on the tied checkout, one golden image."""
    copy_project(dest, with_artifacts=False)
    make_tied_checkout(os.path.join(dest, "models", "nearly-tied"))
    pipeline = os.path.join(dest, "pipeline.yaml")
    edit_yaml(pipeline, "path: models/segformer-tiny-sidewalk", "path: models/nearly-tied")
    edit_yaml(pipeline, "  max_abs: 1.0e-3 ", "  max_abs: 1.0e-2 ")  # fp32 itself: +-2.4e-4 at 3000
    edit_yaml(pipeline, "    - examples/odd_641x479.jpg\n", "")
    edit_yaml(pipeline, "    - examples/portrait_720x1280.jpg\n", "")
    return dest
