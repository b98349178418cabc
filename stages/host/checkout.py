"""checkout link: resolve model.path (download only if model.repo_id is set), validate the
HF checkout, and write artifacts/checkout/manifest.json (file hashes, labels, input spec).

This is the one validation of a checkout that the whole chain trusts: every check that can be
made from the files (JSON shapes, labels, input size, mean/std, weights' headers and their
segmentation head) is made here, so later links never crash on a malformed checkout. And
`load_model` / `load_processor` are the only way the checkout is loaded (golden, onnx, bench),
so `model.allow_pickle` cannot be side-stepped."""
import errno
import json
import math
import os

from stages.common import files
from stages.common.errors import CheckoutError
from stages.host import checkout_weights as weights_check
from stages.host import families

CONFIG, PREPROCESSOR = "config.json", "preprocessor_config.json"
SUPPORTED_RESAMPLE = {2: "bilinear"}
MIN_SIDE, MAX_SIDE = 32, 4096  # SegFormer downsamples by 32; 4096 is far beyond any checkpoint


def run_checkout(cfg, layout):
    """The checkout link: model.path validated (fetched first if asked) -> the manifest."""
    return write_manifest(cfg["model"], layout.manifest)


def write_manifest(model_cfg, manifest_path):
    """Validate (fetching first if asked) the checkout and write its manifest."""
    model_dir = model_cfg["path"]
    if not os.path.isdir(model_dir):
        _refuse_model_path(model_dir)
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


def _refuse_model_path(model_dir):
    """model.path exists but is no folder: a file, a symlink loop or a dangling link, each named."""
    if os.path.islink(model_dir):
        try:
            os.stat(model_dir)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise CheckoutError("model.path %s is a symlink loop: point the link at the "
                                    "checkout folder (ls -l %s)." % (model_dir, model_dir))
            raise CheckoutError("model.path %s is a symlink to %s, which does not exist: fix the "
                                "link or clone the model there." % (
                                    model_dir, os.readlink(model_dir)))
    if os.path.exists(model_dir):
        raise CheckoutError("model.path %s is a file, not a folder: set model.path to the checkout "
                            "folder (the one holding config.json)." % model_dir)


def fetch(repo_id, revision, model_dir, allow_pickle):
    """Download the files the pipeline needs from the Hugging Face Hub (only when asked)."""
    patterns = [CONFIG, PREPROCESSOR, "*.safetensors", "*.safetensors.index.json"]
    if allow_pickle:
        patterns.append("pytorch_model*.bin")
    try:
        from huggingface_hub import snapshot_download
        snapshot_download(repo_id=repo_id, revision=revision, local_dir=model_dir,
                          allow_patterns=patterns)
    except Exception as e:  # the hub client raises many types; all mean the same to the user
        raise CheckoutError("Could not download %s from the Hugging Face Hub into %s (%s): check "
                            "the network, or clone it yourself and set model.path." % (
                                repo_id, model_dir, type(e).__name__))


def _read_json(model_dir, name):
    path = os.path.join(model_dir, name)
    weights_check.require_regular(path, model_dir)
    if not os.path.isfile(path):
        raise CheckoutError("%s is missing from %s: the checkout is incomplete; clone the model "
                            "again." % (name, model_dir))
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except ValueError:
        weights_check.reject_lfs_pointer(path, model_dir)
        raise CheckoutError("%s in %s is not valid JSON: restore it from the model repository." % (
            name, model_dir))
    if not isinstance(data, dict):
        raise CheckoutError("%s in %s is a JSON %s, not an object of settings: restore it from the "
                            "model repository." % (name, model_dir, type(data).__name__))
    return data


def validate_config(model_dir):
    cfg = _read_json(model_dir, CONFIG)
    families.for_config(cfg, model_dir).check_config(cfg, model_dir)
    return _labels(cfg, model_dir)


def family(model_dir):
    """The model family (stages/host/families) of the checkout in model_dir."""
    return families.for_config(_read_json(model_dir, CONFIG), model_dir)


def _labels(cfg, model_dir):
    """id2label as a list: keys "0".."n-1" (all of them), names as strings, n == num_labels."""
    id2label = cfg.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise CheckoutError("config.json in %s has no id2label: add the class names." % model_dir)
    bad = [k for k in id2label if not (k.isdigit() and str(int(k)) == k)]
    if bad:
        raise CheckoutError("config.json in %s has id2label key %r, not a class index: its keys "
                            "must be \"0\", \"1\", ... (restore the file)." % (model_dir, bad[0]))
    ids = sorted(int(k) for k in id2label)
    if ids != list(range(len(ids))):
        raise CheckoutError("config.json in %s has id2label keys %s..%s with gaps: every class "
                            "index from 0 to %d needs a name." % (
                                model_dir, ids[0], ids[-1], ids[-1]))
    labels = [id2label[str(i)] for i in ids]
    if not all(isinstance(l, str) and l for l in labels):
        raise CheckoutError("config.json in %s has an id2label name that is not a string: give "
                            "every class a name." % model_dir)
    num = cfg.get("num_labels", len(labels))
    if num != len(labels):
        raise CheckoutError("config.json in %s says num_labels %r but id2label names %d classes: "
                            "make them agree." % (model_dir, num, len(labels)))
    if len(labels) > 256:
        raise CheckoutError("config.json in %s has %d labels; masks are uint8, so at most 256 are "
                            "supported." % (model_dir, len(labels)))
    return labels


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _input_size(pre, model_dir):
    size = pre.get("size") or {}
    if isinstance(size, int) and not isinstance(size, bool):
        size = {"height": size, "width": size}
    if not (isinstance(size, dict) and "height" in size and "width" in size):
        raise CheckoutError("preprocessor_config.json in %s must give size as height and width."
                            % model_dir)
    for key in ("height", "width"):
        v = size[key]
        if not (isinstance(v, int) and not isinstance(v, bool) and MIN_SIDE <= v <= MAX_SIDE):
            raise CheckoutError("preprocessor_config.json in %s gives size %s %r: it must be a "
                                "whole number of pixels from %d to %d." % (
                                    model_dir, key, v, MIN_SIDE, MAX_SIDE))
    return {"height": size["height"], "width": size["width"]}


def validate_preprocessor(model_dir):
    pre = _read_json(model_dir, PREPROCESSOR)
    size = _input_size(pre, model_dir)
    mean, std = pre.get("image_mean"), pre.get("image_std")
    for key, val in (("image_mean", mean), ("image_std", std)):
        if not (isinstance(val, list) and len(val) == 3 and all(_number(v) for v in val)):
            raise CheckoutError("preprocessor_config.json in %s must give %s as 3 numbers, not "
                                "%r." % (model_dir, key, val))
    if not all(v > 0 for v in std):
        raise CheckoutError("preprocessor_config.json in %s has an image_std of 0 or less: the "
                            "input would be divided by it; restore the file." % model_dir)
    resample = pre.get("resample", 2)
    if isinstance(resample, bool) or resample not in SUPPORTED_RESAMPLE:
        raise CheckoutError("preprocessor_config.json in %s asks for resample=%r; the pipeline "
                            "reproduces only bilinear (2), the SegFormer default." % (
                                model_dir, resample))
    if not (pre.get("do_resize", True) and pre.get("do_normalize", True)):
        raise CheckoutError("preprocessor_config.json in %s turns off resize or normalize; the "
                            "pipeline needs both on." % model_dir)
    scale = pre.get("rescale_factor", 1.0 / 255) if pre.get("do_rescale", True) else 1.0
    if not (_number(scale) and scale > 0):
        raise CheckoutError("preprocessor_config.json in %s has rescale_factor %r: it must be a "
                            "positive number (1/255 for 8-bit images)." % (model_dir, scale))
    return {"input": size, "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "rescale_factor": float(scale), "resample": SUPPORTED_RESAMPLE[resample]}


def validate(model_dir, allow_pickle):
    """Check the checkout and return its manifest (no absolute paths, so re-clones compare
    equal)."""
    labels = validate_config(model_dir)
    spec = validate_preprocessor(model_dir)
    fmt, weights = weights_check.weight_files(model_dir, allow_pickle, len(labels))
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
            if (n in keep or n.endswith((".safetensors", ".bin", ".safetensors.index.json")))
            and os.path.isfile(os.path.join(model_dir, n))]  # never a FIFO: doit would hash it


def load_model(model_dir, manifest, allow_pickle):
    """The checkout's model (its family's loader: eager attention, CPU), in eval mode: the only
    place its weights are loaded. A pickle is loaded only with model.allow_pickle, whatever the
    manifest says."""
    fmt = manifest["weights"]["format"]
    if fmt != "safetensors" and not allow_pickle:
        raise CheckoutError("The weights in %s are a pickle (%s), which can run code when loaded, "
                            "and model.allow_pickle is false: convert them to safetensors, or set "
                            "model.allow_pickle: true if you trust them." % (
                                model_dir, ", ".join(manifest["weights"]["files"])))
    gone = [n for n in manifest["weights"]["files"]
            if not os.path.isfile(os.path.join(model_dir, n))]
    if gone:
        raise CheckoutError("%s no longer has %s (the checkout changed since `doit checkout`): run "
                            "`doit checkout`." % (model_dir, gone[0]))
    _recheck(model_dir, manifest)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # "Loading weights: 0%|..." is not ours to print
    try:
        model, info = family(model_dir).load(model_dir, fmt == "safetensors")
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckoutError("transformers could not load the checkout in %s (%s: %s): run `doit "
                            "checkout` to validate it." % (
                                model_dir, type(e).__name__, str(e).splitlines()[0][:160]))
    if info.get("missing_keys"):
        raise CheckoutError("The weights in %s lack %s: the checkout does not match its "
                            "config.json; restore it and run `doit checkout`." % (
                                model_dir, sorted(info["missing_keys"])[0]))
    return model.eval()


def _recheck(model_dir, manifest):
    """The weight files must still be the ones `doit checkout` validated (a pickle swapped in
    later is never unpickled): their sha256 against the manifest, before any load."""
    recorded = manifest.get("sha256") if isinstance(manifest.get("sha256"), dict) else {}
    for name in manifest["weights"]["files"]:
        path = os.path.join(model_dir, name)
        weights_check.require_regular(path, model_dir)
        if recorded.get(name) != files.sha256_file(path):
            raise CheckoutError("%s changed since `doit checkout` validated it (its sha256 differs "
                                "from the one in the checkout manifest): run `doit checkout` to "
                                "validate it again." % path)


def load_processor(model_dir):
    """The checkout's image processor, as its family loads it (what golden files are made with)."""
    return family(model_dir).load_processor(model_dir)
