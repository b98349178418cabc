"""checkout link: resolve model.path (download only if model.repo_id is set), validate the
HF checkout, and write artifacts/checkout/manifest.json (file hashes, labels, input spec)."""
import json
import os
import struct

from stages.common import files
from stages.common.errors import CheckoutError

CONFIG, PREPROCESSOR = "config.json", "preprocessor_config.json"
LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"
SUPPORTED_RESAMPLE = {2: "bilinear"}


def run_checkout(model_cfg, manifest_path):
    """Validate (fetching first if asked) the checkout and write its manifest."""
    model_dir = model_cfg["path"]
    if not os.path.isdir(model_dir):
        if not model_cfg["repo_id"]:
            raise CheckoutError(
                "model.path %s does not exist: clone the model there (git lfs install; git clone "
                "https://huggingface.co/<repo>) or set model.repo_id to download it." % model_dir)
        fetch(model_cfg["repo_id"], model_cfg["revision"], model_dir, model_cfg["allow_pickle"])
    manifest = validate(model_dir, model_cfg["allow_pickle"])
    files.write_json(manifest_path, manifest)
    print("checkout: %s, %d labels, input %dx%d, weights %s" % (
        model_dir, manifest["num_labels"], manifest["input"]["height"], manifest["input"]["width"],
        manifest["weights"]["format"]))


def fetch(repo_id, revision, model_dir, allow_pickle):
    """Download the files the pipeline needs from the Hugging Face Hub (only when asked)."""
    patterns = [CONFIG, PREPROCESSOR, "*.safetensors", "*.safetensors.index.json"]
    if allow_pickle:
        patterns.append("pytorch_model*.bin")
    try:
        from huggingface_hub import snapshot_download
        snapshot_download(repo_id=repo_id, revision=revision, local_dir=model_dir, allow_patterns=patterns)
    except Exception as e:  # the hub client raises many types; all mean the same to the user
        raise CheckoutError("Could not download %s from the Hugging Face Hub into %s (%s): check the "
                            "network, or clone it yourself and set model.path." % (
                                repo_id, model_dir, type(e).__name__))


def _read_json(model_dir, name):
    path = os.path.join(model_dir, name)
    if not os.path.isfile(path):
        raise CheckoutError("%s is missing from %s: the checkout is incomplete; clone the model again." % (
            name, model_dir))
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        _reject_lfs_pointer(path, model_dir)
        raise CheckoutError("%s in %s is not valid JSON: restore it from the model repository." % (
            name, model_dir))


def _reject_lfs_pointer(path, model_dir):
    with open(path, "rb") as f:
        head = f.read(len(LFS_MAGIC))
    if head == LFS_MAGIC:
        what = "weights are" if not path.endswith(".json") else "%s is" % os.path.basename(path)
        raise CheckoutError("%s a Git LFS pointer: run `git lfs pull` in %s." % (what, model_dir))


def validate_config(model_dir):
    cfg = _read_json(model_dir, CONFIG)
    if cfg.get("model_type") != "segformer":
        raise CheckoutError("config.json in %s describes a %r model, not a SegFormer: point model.path at "
                            "a SegFormer checkout." % (model_dir, cfg.get("model_type")))
    archs = cfg.get("architectures") or ["SegformerForSemanticSegmentation"]
    if "SegformerForSemanticSegmentation" not in archs:
        raise CheckoutError("config.json in %s is a SegFormer for %s, not for semantic segmentation: use a "
                            "SegformerForSemanticSegmentation checkout." % (model_dir, ", ".join(archs)))
    id2label = cfg.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise CheckoutError("config.json in %s has no id2label: add the class names." % model_dir)
    labels = [id2label[k] for k in sorted(id2label, key=int)]
    if len(labels) > 256:
        raise CheckoutError("config.json in %s has %d labels; masks are uint8, so at most 256 are "
                            "supported." % (model_dir, len(labels)))
    return labels


def validate_preprocessor(model_dir):
    pre = _read_json(model_dir, PREPROCESSOR)
    size = pre.get("size") or {}
    if isinstance(size, int):
        size = {"height": size, "width": size}
    if not (isinstance(size, dict) and "height" in size and "width" in size):
        raise CheckoutError("preprocessor_config.json in %s must give size as height and width." % model_dir)
    mean, std = pre.get("image_mean"), pre.get("image_std")
    for key, val in (("image_mean", mean), ("image_std", std)):
        if not (isinstance(val, list) and len(val) == 3):
            raise CheckoutError("preprocessor_config.json in %s must give %s as 3 numbers." % (model_dir, key))
    resample = pre.get("resample", 2)
    if resample not in SUPPORTED_RESAMPLE:
        raise CheckoutError("preprocessor_config.json in %s asks for resample=%r; the pipeline reproduces "
                            "only bilinear (2), the SegFormer default." % (model_dir, resample))
    if not (pre.get("do_resize", True) and pre.get("do_normalize", True)):
        raise CheckoutError("preprocessor_config.json in %s turns off resize or normalize; the pipeline "
                            "needs both on." % model_dir)
    return {"input": {"height": int(size["height"]), "width": int(size["width"])},
            "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "rescale_factor": float(pre.get("rescale_factor", 1.0 / 255) if pre.get("do_rescale", True) else 1.0),
            "resample": SUPPORTED_RESAMPLE[resample]}


def check_safetensors(path, model_dir):
    """Check the header and total size of a safetensors file without loading it."""
    _reject_lfs_pointer(path, model_dir)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        header = f.read(n) if 0 < n <= size - 8 else b""
    try:
        meta = json.loads(header.decode("utf-8"))
        end = max([v["data_offsets"][1] for k, v in meta.items() if k != "__metadata__"] or [0])
    except (ValueError, KeyError, TypeError, IndexError):
        raise CheckoutError("%s is not a valid safetensors file: re-download it (git lfs pull in %s)." % (
            path, model_dir))
    if 8 + n + end != size:
        raise CheckoutError("%s is truncated or corrupt (expected %d bytes, found %d): re-download it "
                            "(git lfs pull in %s)." % (path, 8 + n + end, size, model_dir))


def weight_files(model_dir, allow_pickle):
    names = sorted(os.listdir(model_dir))
    safe = [n for n in names if n.endswith(".safetensors")]
    if safe:
        for n in safe:
            check_safetensors(os.path.join(model_dir, n), model_dir)
        return "safetensors", safe + [n for n in names if n.endswith(".safetensors.index.json")]
    pickles = [n for n in names if n.startswith("pytorch_model") and n.endswith(".bin")]
    if pickles and not allow_pickle:
        raise CheckoutError("%s has only %s, a pickle that can run code when loaded: convert it to "
                            "safetensors, or set model.allow_pickle: true if you trust it." % (model_dir, pickles[0]))
    if pickles:
        for n in pickles:
            _reject_lfs_pointer(os.path.join(model_dir, n), model_dir)
        return "pytorch_pickle", pickles
    raise CheckoutError("%s has no model.safetensors: the weights are missing; clone the model again "
                        "with git-lfs installed." % model_dir)


def validate(model_dir, allow_pickle):
    """Check the checkout and return its manifest (no absolute paths, so re-clones compare equal)."""
    labels = validate_config(model_dir)
    spec = validate_preprocessor(model_dir)
    fmt, weights = weight_files(model_dir, allow_pickle)
    hashed = [CONFIG, PREPROCESSOR] + weights
    manifest = {"labels": labels, "num_labels": len(labels),
                "weights": {"format": fmt, "files": weights},
                "sha256": dict((n, files.sha256_file(os.path.join(model_dir, n))) for n in hashed)}
    manifest.update(spec)
    return manifest


def model_files(model_dir):
    """The files of a checkout that the checkout task depends on (for doit's file_dep)."""
    if not os.path.isdir(model_dir):
        return []
    keep = (CONFIG, PREPROCESSOR)
    return [os.path.join(model_dir, n) for n in sorted(os.listdir(model_dir))
            if n in keep or n.endswith((".safetensors", ".bin", ".safetensors.index.json"))]
