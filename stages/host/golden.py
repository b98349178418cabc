"""golden link (host only): run the checkout's model and its image processor on the CPU and
save, per image, the exact input tensor, the logits, the mask and an overlay, plus golden.json.

The mask is made in the reference order: upsample the logits bilinearly to the original size,
then argmax (HF's post_process_semantic_segmentation). The set is written into a temp folder and
swapped in whole, so a failed run leaves the previous set, never a mix of two runs with stale
hashes in golden.json."""
import io
import os
import shutil

import numpy as np

from stages.common import files
from stages.common.errors import ArtifactError, ImageError
from stages.host import checkout
from runtime import palette as pal
from runtime.images import read_image
from runtime.finite import DAMAGED, require_finite
from runtime.reference import blend

from stages.common.layout import GOLDEN_FILES as FILES

MAX_MEGAPIXELS = 80.0  # the golden link's own limit (infer.max_megapixels is the device's)


def pass_order():
    """The resize pass order of the Pillow that makes the golden tensors (see runtime.reference)."""
    import PIL
    return "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "horizontal_first"


class Reference(object):
    """The checkout's model and image processor, run as their family (stages/host/families)
    runs them."""

    def __init__(self, family, model, processor):
        self.family, self.model, self.processor = family, model, processor

    def case(self, rgb):
        """(input tensor, logits, mask) for one RGB image: the golden files."""
        return self.family.golden_case(self.model, self.processor, rgb)

    def logits(self, pixel_values):
        return self.family.logits(self.model, pixel_values)


def load_reference(model_dir, manifest, allow_pickle=False):
    """The reference model (CPU, eval) and its PIL-backend image processor, both loaded through
    the checkout link's loaders (the only way in; they enforce model.allow_pickle)."""
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    return Reference(checkout.family(model_dir), checkout.load_model(model_dir, manifest,
                                                                     allow_pickle),
                     checkout.load_processor(model_dir))


def read_golden_image(path):
    """A golden image as BGR, refused (one sentence, naming golden.images) when it is too large."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, SyntaxError, ValueError):
        w = h = 0  # read_image says what is wrong with it
    if w * h / 1e6 > MAX_MEGAPIXELS:
        raise ImageError("Image %s in golden.images is %dx%d (%.0f MP), over the golden link's "
                         "%.0f MP: downscale it, or pick another image for golden.images in "
                         "pipeline.yaml." % (path, w, h, w * h / 1e6, MAX_MEGAPIXELS))
    return read_image(path, None)


def run_golden(cfg, layout):
    """The golden link: transformers on the CPU -> golden tensors, logits, masks, overlays."""
    model_dir, alpha = cfg["model"]["path"], cfg["golden"]["overlay_alpha"]
    allow_pickle = cfg["model"]["allow_pickle"]
    manifest = checkout_manifest(layout.manifest)
    reference = load_reference(model_dir, manifest, allow_pickle)
    staged = files.staged_dir(layout.golden_dir)
    try:
        records = [_one_image(reference, manifest, layout, staged, i, path, alpha)
                   for i, path in enumerate(layout.images)]
        files.write_json(os.path.join(staged, os.path.basename(layout.golden_json)),
                         _index(records, layout.manifest, reference.processor, manifest))
        files.replace_dir(staged, layout.golden_dir)
    finally:
        if os.path.isdir(staged):
            shutil.rmtree(staged, ignore_errors=True)


def checkout_manifest(path):
    manifest = files.read_json(path)
    if not isinstance(manifest, dict) or not all(
            k in manifest for k in ("labels", "num_labels", "weights")):
        raise ArtifactError("%s is not a checkout manifest: rerun `doit checkout`." % path)
    return manifest


def _one_image(reference, manifest, layout, staged, i, path, alpha):
    bgr = read_golden_image(path)
    tensor, logits, mask = reference.case(np.ascontiguousarray(bgr[..., ::-1]))
    require_finite(logits, DAMAGED % path)
    final = layout.golden_case_dir(i, path)
    folder = os.path.join(staged, os.path.relpath(final, layout.golden_dir))
    record = _save_image(folder, path, bgr, tensor, logits, mask, manifest, alpha)
    record["dir"] = final
    print("golden: %s -> %s, logits %s, classes %s" % (
        path, "x".join(map(str, tensor.shape)), "x".join(map(str, logits.shape)),
        ", ".join(manifest["labels"][c] for c, _ in pal.classes_by_area(mask)[:4])))
    return record


def _index(records, manifest_path, processor, manifest):
    import PIL
    import torch
    import transformers
    return {"images": records, "manifest_sha256": files.sha256_file(manifest_path),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "pillow": PIL.__version__, "numpy": np.__version__},
            "processor": {"class": type(processor).__name__, "resample": manifest["resample"],
                          "pass_order": pass_order()},
            "mask_order": "upsample bilinear (align_corners=False) to the original size, then "
                          "argmax"}


def _npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _save_image(folder, src, bgr, tensor, logits, mask, manifest, alpha):
    import cv2
    palette = pal.palette_rgb(manifest["num_labels"])
    over = pal.draw_legend(blend(bgr, mask, pal.bgr_table(palette), alpha), mask,
                           manifest["labels"], palette)
    ok, jpg = cv2.imencode(".jpg", over, [cv2.IMWRITE_JPEG_QUALITY, 90])
    blobs = {"input.npy": _npy_bytes(tensor.astype(np.float32)),
             "logits.npy": _npy_bytes(logits.astype(np.float32)),
             "mask.png": pal.encode_mask_png(mask, palette), "overlay.jpg": jpg.tobytes()}
    for name in FILES:
        files.write_bytes(os.path.join(folder, name), blobs[name])
    return {"source": src, "source_sha256": files.sha256_file(src),
            "height": int(bgr.shape[0]), "width": int(bgr.shape[1]),
            "sha256": dict((n, files.sha256_bytes(b)) for n, b in blobs.items())}
