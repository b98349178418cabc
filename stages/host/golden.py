"""golden link (host only): run transformers' SegFormer and its image processor on the CPU and
save, per image, the exact input tensor, the logits, the mask and an overlay, plus golden.json.

The mask is made in the reference order: upsample the logits bilinearly to the original size,
then argmax (HF's post_process_semantic_segmentation)."""
import io
import os

import numpy as np

from stages.common import files
from runtime import palette as pal
from runtime.images import read_image
from runtime.reference import blend

from stages.common.layout import GOLDEN_FILES as FILES


def pass_order():
    """The resize pass order of the Pillow that makes the golden tensors (see runtime.reference)."""
    import PIL
    return "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "horizontal_first"


def load_reference(model_dir, manifest):
    """The HF model (eager attention, CPU, eval) and its PIL-backend image processor."""
    import torch
    import transformers
    from transformers import SegformerForSemanticSegmentation
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = SegformerForSemanticSegmentation.from_pretrained(
        model_dir, attn_implementation="eager",
        use_safetensors=manifest["weights"]["format"] == "safetensors").eval()
    proc_cls = getattr(transformers, "SegformerImageProcessorPil", None) or transformers.SegformerImageProcessor
    return model, proc_cls.from_pretrained(model_dir)


def run_golden(model_dir, layout, alpha):
    import torch
    import transformers
    manifest_path, images = layout.manifest, layout.images
    manifest = files.read_json(manifest_path)
    model, processor = load_reference(model_dir, manifest)
    palette = pal.palette_rgb(manifest["num_labels"])
    records = []
    for i, path in enumerate(images):
        bgr = read_image(path)
        inputs = processor(images=np.ascontiguousarray(bgr[..., ::-1]), return_tensors="pt")
        with torch.no_grad():
            out = model(pixel_values=inputs["pixel_values"])
        mask = processor.post_process_semantic_segmentation(out, target_sizes=[bgr.shape[:2]])[0]
        mask = mask.numpy().astype(np.uint8)
        tensor, logits = inputs["pixel_values"].numpy(), out.logits.numpy()
        records.append(_save_image(layout.golden_case_dir(i, path), path, bgr, tensor, logits, mask,
                                   manifest, palette, alpha))
        print("golden: %s -> %s, logits %s, classes %s" % (
            path, "x".join(map(str, tensor.shape)), "x".join(map(str, logits.shape)),
            ", ".join(manifest["labels"][c] for c, _ in pal.classes_by_area(mask)[:4])))
    import PIL
    files.write_json(layout.golden_json, {
        "images": records, "manifest_sha256": files.sha256_file(manifest_path),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "pillow": PIL.__version__, "numpy": np.__version__},
        "processor": {"class": type(processor).__name__, "resample": manifest["resample"],
                      "pass_order": pass_order()},
        "mask_order": "upsample bilinear (align_corners=False) to the original size, then argmax"})


def _npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _save_image(folder, src, bgr, tensor, logits, mask, manifest, palette, alpha):
    import cv2
    over = pal.draw_legend(blend(bgr, mask, pal.bgr_table(palette), alpha), mask, manifest["labels"], palette)
    ok, jpg = cv2.imencode(".jpg", over, [cv2.IMWRITE_JPEG_QUALITY, 90])
    blobs = {"input.npy": _npy_bytes(tensor.astype(np.float32)),
             "logits.npy": _npy_bytes(logits.astype(np.float32)),
             "mask.png": pal.encode_mask_png(mask, palette), "overlay.jpg": jpg.tobytes()}
    for name in FILES:
        files.write_bytes(os.path.join(folder, name), blobs[name])
    return {"source": src, "source_sha256": files.sha256_file(src), "dir": folder,
            "height": int(bgr.shape[0]), "width": int(bgr.shape[1]),
            "sha256": dict((n, files.sha256_bytes(b)) for n, b in blobs.items())}
