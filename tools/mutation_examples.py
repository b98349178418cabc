"""Plant each example bug of issue 17 (docs/mutation.md), one at a time, in a scratch copy of the
project, and run the bite tests that must catch it. Prints KILLED or SURVIVED per bug; a bug whose
code has since changed is reported as NOT PLANTED (update its line here).

    python tools/mutation_examples.py [WORDS...]   # only the bugs whose name has one of WORDS
"""

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (bug, file, original code, planted code, test files)
PLANTS = [
    (
        "verify: mIoU dropped from the checked layers",
        "stages/device/verify.py",
        '          ("c", "miou", "end-to-end mask vs golden mask"))',
        '          )',
        "tests/test_bite_compare.py",
    ),
    (
        "mIoU as the max IoU",
        "stages/common/compare.py",
        'float(np.mean(list(ious.values())))',
        'float(np.max(list(ious.values())))',
        "tests/test_bite_compare.py",
    ),
    (
        "max_abs computed as the mean",
        "stages/common/compare.py",
        '"max_abs": float(d.max())',
        '"max_abs": float(d.mean())',
        "tests/test_bite_compare.py",
    ),
    (
        "agreement over the width axis",
        "stages/common/compare.py",
        'axis=-3) == np.argmax(golden_logits, axis=-3)',
        'axis=-1) == np.argmax(golden_logits, axis=-1)',
        "tests/test_bite_compare.py",
    ),
    (
        "parity ignoring onnx.max_abs",
        "stages/host/onnx_export.py",
        'if worst_abs["max_abs"] > limits["max_abs"] or worst',
        'if worst',
        "tests/test_bite_compare.py",
    ),
    (
        "parity on the best image",
        "stages/host/onnx_export.py",
        'worst = min(rows, key=lambda r: r["mask_agreement"])',
        'worst = max(rows, key=lambda r: r["mask_agreement"])',
        "tests/test_bite_compare.py",
    ),
    (
        "ORT judged with the fp16 limits",
        "stages/device/verify.py",
        'limits = cfg["verify"][precision]',
        'limits = cfg["verify"]["fp16"]',
        "tests/test_bite_compare.py",
    ),
    (
        "golden not depending on the images",
        "dodo.py",
        '"file_dep": [L.manifest] + L.images',
        '"file_dep": [L.manifest]',
        "tests/test_bite_uptodate.py",
    ),
    (
        "verify not depending on model.onnx",
        "dodo.py",
        '"file_dep": L.golden_targets() + [L.onnx_model, L.onnx_sidecar]',
        '"file_dep": L.golden_targets() + [L.onnx_sidecar]',
        "tests/test_bite_uptodate.py",
    ),
    (
        "checkout ignoring its config section",
        "dodo.py",
        'config_changed(slice_of(CFG, "model")), ',
        '',
        "tests/test_bite_uptodate.py",
    ),
    (
        "build_engine ignoring a missing engine",
        "dodo.py",
        ',\n                         device.engine_present(L)]',
        ']',
        "tests/test_bite_uptodate.py",
    ),
    (
        "engine settings without the device identity",
        "stages/device/settings.py",
        'return {"engine": engine_cfg, "device": identity(fingerprint())}',
        'return {"engine": engine_cfg}',
        "tests/test_bite_uptodate.py",
    ),
    (
        "verify(auto) ignoring a rebuilt engine",
        "runtime/backends/__init__.py",
        'return name == AUTO or entry(name).needs_engine',
        'return entry(name).needs_engine',
        "tests/test_bite_uptodate.py",
    ),
    (
        "check_compatible not comparing CUDA",
        "runtime/engine_folder.py",
        'diff = [k for k in IDENTITY_KEYS if built.get(k) != current.get(k)]',
        'diff = [k for k in IDENTITY_KEYS if k != "cuda" and built.get(k) != current.get(k)]',
        "tests/test_bite_fingerprint.py",
    ),
    (
        "builder: workspace in KiB",
        "stages/device/trt_builder.py",
        'mb << 20',
        'mb << 10',
        "tests/test_bite_builder.py",
    ),
    (
        "builder: fp32 pin without set_output_type",
        "stages/device/trt_precision.py",
        '        layer.set_output_type(j, trt.float32)',
        '        pass',
        "tests/test_bite_builder.py",
    ),
    (
        "builder: deprecated workspace API preferred",
        "stages/device/trt_builder.py",
        'if hasattr(config, "set_memory_pool_limit"):',
        'if not hasattr(config, "max_workspace_size"):',
        "tests/test_bite_builder.py",
    ),
    (
        "overlay alpha on the wrong side",
        "runtime/reference.py",
        'image_bgr.astype(np.float32) * (1.0 - alpha) + color * alpha',
        'image_bgr.astype(np.float32) * alpha + color * (1.0 - alpha)',
        "tests/test_bite_pictures.py",
    ),
    (
        "palette without its RGB->BGR flip",
        "runtime/palette.py",
        'np.asarray(palette, np.uint8)[:, ::-1]',
        'np.asarray(palette, np.uint8)',
        "tests/test_bite_pictures.py",
    ),
    (
        "legend order reversed",
        "runtime/palette.py",
        'np.argsort(-counts[ids], kind="stable")',
        'np.argsort(counts[ids], kind="stable")',
        "tests/test_bite_pictures.py",
    ),
    (
        "infer ignoring the megapixel limit",
        "stages/device/infer.py",
        'read_image(path, opts["max_mp"])',
        'read_image(path)',
        "tests/test_bite_limits.py",
    ),
    (
        "infer n= off by one (folder)",
        "stages/device/infer.py",
        'paths[:opts["limit"] or None]',
        'paths[:opts["limit"] + 1 if opts["limit"] else None]',
        "tests/test_bite_limits.py",
    ),
    (
        "infer n= off by one (stream)",
        "stages/device/infer.py",
        'n=opts["limit"] or None',
        'n=opts["limit"] + 1 if opts["limit"] else None',
        "tests/test_bite_limits.py",
    ),
    (
        "bench dropping one timed iteration",
        "stages/device/bench.py",
        '    for _ in range(n):',
        '    for _ in range(n - 1):',
        "tests/test_bite_limits.py",
    ),
    (
        "bench pipeline dropping one iteration",
        "stages/device/bench.py",
        'if i >= warmup:',
        'if i > warmup:',
        "tests/test_bite_limits.py",
    ),
    (
        "artifacts: . accepted",
        "stages/common/config.py",
        ' or rel == "."',
        '',
        "tests/test_bite_limits.py",
    ),
    (
        "safetensors trailing garbage accepted",
        "stages/host/checkout_weights.py",
        '    if data_bytes > end:',
        '    if False:',
        "tests/test_bite_limits.py tests/test_bite_checkout.py",
    ),
    (
        "no LFS check on pytorch_model.bin",
        "stages/host/checkout_weights.py",
        '    for n in pickles:\n'
        '        reject_lfs_pointer(os.path.join(model_dir, n), model_dir)\n',
        '',
        "tests/test_bite_limits.py tests/test_bite_checkout.py",
    ),
]


def fresh(dest):
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    for name in ("stages", "runtime", "tests"):
        shutil.copytree(
            os.path.join(ROOT, name),
            os.path.join(dest, name),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    for name in ("dodo.py", "pipeline.yaml", "pytest.ini", "README.md"):
        shutil.copy2(os.path.join(ROOT, name), dest)
    for name in ("models", "examples"):
        os.symlink(os.path.join(ROOT, name), os.path.join(dest, name))


def main(only):
    dest = os.path.join(tempfile.gettempdir(), "segformer-plant")
    survived = 0
    for what, path, old, new, tests in PLANTS:
        if only and not any(o in what for o in only):
            continue
        fresh(dest)
        target = os.path.join(dest, path)
        with open(target) as f:
            text = f.read()
        if old not in text:
            print("NOT PLANTED (the code changed): %s" % what)
            survived += 1
            continue
        with open(target, "w") as f:
            f.write(text.replace(old, new, 1))
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly"] + tests.split(),
            cwd=dest,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
        )
        failed = [l.split(" ")[1] for l in r.stdout.splitlines() if l.startswith("FAILED")]
        killed = r.returncode == 1 and failed
        survived += not killed
        print(
            "%-9s %-46s %s"
            % ("KILLED" if killed else "SURVIVED", what, failed[0] if failed else "")
        )
        sys.stdout.flush()
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
