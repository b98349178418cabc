"""The example bugs of issues 17 and 25 (docs/mutation.md), as data for tools/mutation_examples.py.

Each plant: the issue, its area, the bug in words, the file, the exact original text (it must
occur exactly once in the file, or the runner reports NOT PLANTED), the planted text, and the
bite test files that must catch it (fast in-process files only: none runs `doit` in a
subprocess). When the code moves, rewrite the original and planted text against today's code.
"""
import collections

Plant = collections.namedtuple("Plant", "issue area bug path old new tests")
PLANTS = []


def area(issue, name, tests, *rows):
    """Add `rows` (bug, file, original, planted[, tests]) under issue/area; `tests` (a string of
    test files) unless a row names its own."""
    for row in rows:
        bug, path, old, new = row[:4]
        PLANTS.append(Plant(issue, name, bug, path, old, new, tuple((row[4] if len(row) > 4
                                                                     else tests).split())))


# ---------------------------------------------------------------- issue 17 (round 1)

area("17", "compare", "tests/test_bite_compare.py",
     ("verify: mIoU dropped from the checked layers", "stages/device/verify.py",
      '          ("c", "miou", "end-to-end mask vs golden mask"))', '          )'),
     ("mIoU as the max IoU", "stages/common/compare.py",
      'float(np.mean(list(ious.values())))', 'float(np.max(list(ious.values())))'),
     ("max_abs computed as the mean", "stages/common/compare.py",
      '"max_abs": float(d.max())', '"max_abs": float(d.mean())'),
     ("agreement over the width axis", "stages/common/compare.py",
      'axis=-3) == np.argmax(golden_logits, axis=-3)',
      'axis=-1) == np.argmax(golden_logits, axis=-1)'),
     ("parity ignoring onnx.max_abs", "stages/host/onnx_export.py",
      '(worst_abs["max_abs"] > limits["max_abs"]\n        or worst["mask_agreement"]',
      '(worst["mask_agreement"]'),
     ("parity on the best image", "stages/host/onnx_export.py",
      'worst = min(rows, key=lambda r: r["mask_agreement"])',
      'worst = max(rows, key=lambda r: r["mask_agreement"])'),
     ("ORT judged with the fp16 limits", "stages/device/verify.py",
      'resolve(cfg, layout, precision)', 'resolve(cfg, layout, "fp16")'),
     )

area("17", "uptodate", "tests/test_bite_uptodate.py",
     ("golden not depending on the images", "dodo.py",
      '"file_dep": [L.manifest] + L.images', '"file_dep": [L.manifest]'),
     ("verify not depending on model.onnx", "dodo.py",
      '"file_dep": L.golden_targets() + [L.onnx_model, L.onnx_sidecar]',
      '"file_dep": L.golden_targets() + [L.onnx_sidecar]'),
     ("checkout ignoring its config section", "dodo.py",
      'config_changed(slice_of(CFG, "model")), ', ''),
     ("build_engine ignoring a missing engine", "dodo.py",
      ',\n                         device.engine_present(L)]', ']'),
     ("engine settings without the device identity", "stages/device/settings.py",
      'return {"engine": engine_cfg, "device": identity(fingerprint())}',
      'return {"engine": engine_cfg}'),
     ("verify(auto) ignoring a rebuilt engine", "runtime/backends/__init__.py",
      'return name == AUTO or entry(name).needs_engine', 'return entry(name).needs_engine'),
     )

area("17", "fingerprint", "tests/test_bite_fingerprint.py",
     ("check_compatible not comparing CUDA", "runtime/engine_folder.py",
      'diff = [k for k in IDENTITY_KEYS if built.get(k) != current.get(k)]',
      'diff = [k for k in IDENTITY_KEYS if k != "cuda" and built.get(k) != current.get(k)]'),
     )

area("17", "builder", "tests/test_bite_builder.py",
     ("builder: workspace in KiB", "stages/device/trt_builder.py", 'mb << 20', 'mb << 10'),
     ("builder: fp32 pin without set_output_type", "stages/device/trt_precision.py",
      '        layer.set_output_type(j, trt.float32)', '        pass'),
     ("builder: deprecated workspace API preferred", "stages/device/trt_builder.py",
      'if hasattr(config, "set_memory_pool_limit"):',
      'if not hasattr(config, "max_workspace_size"):'),
     )

area("17", "pictures", "tests/test_bite_pictures.py",
     ("overlay alpha on the wrong side", "runtime/reference.py",
      'image_bgr.astype(np.float32) * (1.0 - alpha) + color * alpha',
      'image_bgr.astype(np.float32) * alpha + color * (1.0 - alpha)'),
     ("palette without its RGB->BGR flip", "runtime/palette.py",
      'np.asarray(palette, np.uint8)[:, ::-1]', 'np.asarray(palette, np.uint8)'),
     ("legend order reversed", "runtime/palette.py",
      'np.argsort(-counts[ids], kind="stable")', 'np.argsort(counts[ids], kind="stable")'),
     )

area("17", "limits", "tests/test_bite_limits.py",
     ("infer ignoring the megapixel limit", "stages/device/infer.py",
      'read_image(path, opts["max_mp"])', 'read_image(path)'),
     ("infer n= off by one (folder)", "stages/device/infer.py",
      'paths[:opts["limit"] or None]', 'paths[:opts["limit"] + 1 if opts["limit"] else None]'),
     ("infer n= off by one (stream)", "stages/device/infer.py",
      'n=opts["limit"] or None', 'n=opts["limit"] + 1 if opts["limit"] else None'),
     ("bench dropping one timed iteration", "stages/device/bench.py",
      '    for _ in range(n):', '    for _ in range(n - 1):'),
     ("bench pipeline dropping one iteration", "stages/device/bench.py",
      'if i >= warmup:', 'if i > warmup:'),
     ("artifacts: . accepted", "stages/common/config.py", ' or rel == "."', ''),
     ("safetensors trailing garbage accepted", "stages/host/checkout_weights.py",
      '    if data_bytes > end:', '    if False:',
      "tests/test_bite_limits.py tests/test_bite_checkout.py"),
     ("no LFS check on pytorch_model.bin", "stages/host/checkout_weights.py",
      '    for n in pickles:\n        reject_lfs_pointer(os.path.join(model_dir, n), model_dir)\n',
      '', "tests/test_bite_limits.py tests/test_bite_checkout.py"),
     )

# ---------------------------------------------------------------- issue 25 (round 2)

area("25", "early-out", "tests/test_bite_early_out.py",
     ("early-out: `uniform &= big_cell < SAFE_MAX` dropped", "runtime/reference.py",
      '    uniform &= big_cell < SAFE_MAX\n', ''),
     ("early-out: `big_cell <= SAFE_MAX`", "runtime/reference.py",
      'uniform &= big_cell < SAFE_MAX', 'uniform &= big_cell <= SAFE_MAX'),
     ("early-out: candidates `big > SAFE_MAX`", "runtime/reference.py",
      '(big >= SAFE_MAX)[:, None]', '(big > SAFE_MAX)[:, None]'),
     ("early-out: near-tie threshold `SAFE_REL = 2**-30`", "runtime/reference.py",
      'SAFE_REL = 2.0 ** -19', 'SAFE_REL = 2.0 ** -30'),
     ("early-out: near-tie threshold `SAFE_REL = 3**-19`", "runtime/reference.py",
      'SAFE_REL = 2.0 ** -19', 'SAFE_REL = 3.0 ** -19'),
     ("oracle: ties to the highest class (`>=` in first_max)", "runtime/reference.py",
      'better = scores[..., k] > best', 'better = scores[..., k] >= best'),
     )

ENGINE = "stages/device/engine.py"
BUILDER = "stages/device/trt_builder.py"
area("25", "engine", "tests/test_bite_engine.py",
     ("engine: precision.json's onnx_sha256 not checked", ENGINE,
      '    if report is not None and not same:', '    if False:'),
     ("engine: model.mixed.onnx's sha256 not checked", ENGINE,
      '    if files.sha256_bytes(data) != report.get("mixed_sha256"):', '    if False:'),
     ("engine: timing cache read when switched off", ENGINE,
      'cache = folder.read_timing_cache() if engine_cfg["timing_cache"] else None',
      'cache = folder.read_timing_cache()'),
     ("engine: out-of-memory match case-sensitive (no `.lower()`)", BUILDER,
      'text = "\\n".join(lines).lower()', 'text = "\\n".join(lines)'),
     ("engine: OOM retry bound `mb > 32`", BUILDER,
      'mb >= 32 and out_of_memory', 'mb > 32 and out_of_memory'),
     ("engine: OOM retry bound `mb >= 31`", BUILDER,
      'mb >= 32 and out_of_memory', 'mb >= 31 and out_of_memory'),
     ("pins: every producer above an island pinned (`!= CONSTANT`)",
      "stages/device/trt_precision.py",
      'layers[p].type == trt.LayerType.CONSTANT', 'layers[p].type != trt.LayerType.CONSTANT'),
     ("engine: a pin the build ignored not checked (`pins = None`)", BUILDER,
      'pins = info["precision"] if precisions.recipe(source["typing"]).pins else None',
      'pins = None'),
     ("timing cache: one from another TensorRT accepted (`ignore_mismatch=True`)", BUILDER,
      'if cache is not None and not config.set_timing_cache(cache, False):',
      'if cache is not None and not config.set_timing_cache(cache, True):'),
     )

INSPECT = "stages/device/trt_precision.py"
area("25", "inspector", "tests/test_bite_engine.py",
     ("inspector: reformatting layers counted as offenders", INSPECT,
      '        if name.startswith("Reformatting CopyNode"):\n            continue\n', ''),
     ("inspector: match by name only (island tensor ignored)", INSPECT,
      'if (parts & names or tensors.intersection(outputs)) and', 'if (parts & names) and'),
     ("inspector: match by island tensor only (name ignored)", INSPECT,
      'if (parts & names or tensors.intersection(outputs)) and',
      'if (tensors.intersection(outputs)) and'),
     ("inspector: substring name match (`soft` in `softer`)", INSPECT,
      'if (parts & names or tensors.intersection(outputs)) and',
      'if (any(n in name for n in names) or tensors.intersection(outputs)) and'),
     ("inspector: UInt8 outputs counted as int8 (the fix of issue 25 reverted)", INSPECT,
      '("INT64", "int64"), ("UInt8", "uint8"),', '("INT64", "int64"),'),
     )

FILES = "runtime/files.py"
INTACT = "stages/common/intact.py"
area("25", "integrity", "tests/test_bite_integrity.py",
     ("engine folder: identity field missing from the sidecar skipped (`k in built and ...`)",
      "runtime/engine_folder.py",
      'diff = [k for k in IDENTITY_KEYS if built.get(k) != current.get(k)]',
      'diff = [k for k in IDENTITY_KEYS if k in built and built.get(k) != current.get(k)]'),
     ("integrity: large file trusted on size alone (`size > HASH_ALWAYS or same mtime`)", INTACT,
      'if st.st_size > HASH_ALWAYS and st.st_mtime_ns == last[1]:',
      'if st.st_size > HASH_ALWAYS or st.st_mtime_ns == last[1]:'),
     ("integrity: large file trusted without its mtime (`size > HASH_ALWAYS`)", INTACT,
      'if st.st_size > HASH_ALWAYS and st.st_mtime_ns == last[1]:',
      'if st.st_size > HASH_ALWAYS:'),
     ("integrity: a task with no record trusted", INTACT,
      '            return False  # never vouch', '            return True  # never vouch'),
     ("files: write straight to the final path", FILES,
      '        yield tmp\n        if os.path.exists(tmp):\n'
      '            os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; an artifact is for every user\n'
      '        os.replace(tmp, path)\n',
      '        yield path\n'),
     ("files: temp renamed onto the path even when the write failed", FILES,
      '        os.replace(tmp, path)\n    finally:\n',
      '        pass\n    finally:\n        if os.path.exists(tmp):\n'
      '            os.replace(tmp, path)\n'),
     ("files: final path rewritten by a copy instead of a rename", FILES,
      '        os.replace(tmp, path)\n', '        shutil.copyfile(tmp, path)\n'),
     ("backend: default precision fp16 (ONNX Runtime judged by the fp16 limits)",
      "runtime/backends/base.py",
      'precision = "fp32"  # the limits', 'precision = "fp16"  # the limits'),
     )

LOCK = "stages/common/lock.py"
area("25", "lock", "tests/test_bite_stream_lock.py",
     ("lock: `doit info` takes the lock (\"info\" not read-only)", LOCK,
      '("list", "info", "help",', '("list", "help",'),
     ("lock: `clean`/`forget` counted read-only", LOCK,
      '"dumpdb", "tabcompletion")', '"dumpdb", "tabcompletion", "clean", "forget")'),
     ("lock: every command takes it", LOCK,
      'return doit_command(argv) not in READ_ONLY_COMMANDS', 'return True'),
     ("lock: a `key=value` argument read as the command", LOCK,
      'if arg.startswith("-") or "=" in arg:', 'if arg.startswith("-"):'),
     ("lock: the waiting message reads the holder's pid from offset 1", LOCK,
      '        f.seek(0)\n        holder', '        f.seek(1)\n        holder'),
     )

STREAM = "runtime/stream.py"
area("25", "stream", "tests/test_bite_stream_lock.py",
     ("stream: sequential=1 writes a frame before its side work", STREAM,
      '        if side is not None:\n            side(item, result)\n        write(item, result)\n',
      '        write(item, result)\n        if side is not None:\n'
      '            side(item, result)\n'),
     ("stream: pipelined writer writes before the side work is done", STREAM,
      '            if side is not None:\n                side.result()\n'
      '            write(item, result)\n',
      '            write(item, result)\n            if side is not None:\n'
      '                side.result()\n'),
     ("stream: two empty streams counted identical", STREAM,
      ' and seq["frames"] > 0', ''),
     ("stream: one-frame streams never identical (`frames > 1`)", STREAM,
      'seq["frames"] > 0', 'seq["frames"] > 1'),
     ("stream: a `_get` that gives up after one poll", STREAM,
      '        except queue.Empty:\n            continue\n\n\ndef _reader',
      '        except queue.Empty:\n            return _END\n\n\ndef _reader'),
     ("stream: a `_put` that never looks at the stop flag", STREAM,
      '    while not stop.is_set():\n        try:\n            q.put(item, timeout=POLL_S)',
      '    while True:\n        try:\n            q.put(item, timeout=POLL_S)'),
     ("stream: the writer stops draining after an error", STREAM,
      '            continue  # drain without writing after a failure',
      '            return  # drain without writing after a failure'),
     ("stream: side work not awaited on shutdown", STREAM,
      'pool.shutdown(wait=True)', 'pool.shutdown(wait=False)'),
     )

CHECKS = "stages/device/doctor_checks.py"
DOCTOR = "stages/device/doctor.py"
DOCTOR_TESTS = ("tests/test_bite_doctor.py tests/test_bite_doctor_rows.py "
                "tests/test_bite_doctor_machine.py tests/test_bite_doctor_report.py "
                "tests/test_bite_doctor_bench.py")
area("25", "doctor", DOCTOR_TESTS,
     ("doctor: memory ok only when need < usable (guard passes at need == usable)", CHECKS,
      '    if need <= usable:', '    if need < usable:'),
     ("build guard: refuses at need == usable (doctor says ok)", DOCTOR,
      '    if need > usable:', '    if need >= usable:'),
     ("doctor: swap advice rounded down", CHECKS,
      'gb = max(4, -(-int(short_mb) // 1024))', 'gb = max(4, int(short_mb) // 1024)'),
     ("doctor: swap advice rounded to nearest", CHECKS,
      'gb = max(4, -(-int(short_mb) // 1024))', 'gb = max(4, int(round(short_mb / 1024.0)))'),
     # helper doctor2 (/tmp/mut-doctor/plant/plant.py)
     ("TensorRT compared in full, not major.minor (a Nano's 8.2.1.8 vs JetPack's 8.2.1)", CHECKS,
      'version_tuple(trt)[:2] != version_tuple(jp["tensorrt"])[:2]',
      'version_tuple(trt) != version_tuple(jp["tensorrt"])'),
     ("model gated for a newer TensorRT: <= instead of <", CHECKS,
      'version_tuple(trt)[:2] < version_tuple(target)[:2]',
      'version_tuple(trt)[:2] <= version_tuple(target)[:2]'),
     ("np.bool range ends before 8.5.2 (`t < (8, 5, 2)`)", CHECKS,
      "t <= (8, 5, 2)", "t < (8, 5, 2)"),
     ("pycuda missing blocks every link of the machine (ctx links, not device_links)", CHECKS,
      'device_links(ctx, "build_engine", "runtime_check"))\n    if not gpu:',
      'ctx["links"])\n    if not gpu:'),
     ("Python compared as text (`version[:3] != jp['python']`)", CHECKS,
      'version_tuple(version)[:2] != version_tuple(jp["python"])', 'version[:3] != jp["python"]'),
     ("OpenCV without GStreamer warns off a Jetson too", CHECKS,
      'if ctx["jetson"] and not (cv2["gstreamer"]', 'if not (cv2["gstreamer"]'),
     ("power: MAXN matched case-sensitively", CHECKS,
      '"MAXN" not in mode["name"].upper()', '"MAXN" not in mode["name"]'),
     ("power: the Nano's fix offered to every board", CHECKS,
      'nano = jetson.board_sm(ctx["board"]) == "5.3"', 'nano = True'),
     ("clocks: unknown jetson_clocks counted as on", CHECKS,
      "    if active:\n        return row(\"clocks\"",
      "    if active is not False:\n        return row(\"clocks\""),
     ("nvcc: compiled kernels ignored (FAIL without nvcc even when compiled)", CHECKS,
      'if ctx["kernels_here"]:', 'if False:'),
     ("memory: a shortfall FAILs even once the engine is built", CHECKS,
      'status = "FAIL" if "build_engine" == ctx["next"] else "warn"', 'status = "FAIL"'),
     ("next link: runtime_check tried before build_engine", DOCTOR,
      'for link in ("build_engine", "runtime_check"):',
      'for link in ("runtime_check", "build_engine"):'),
     ("a Jetson known only by its L4T file (board name ignored)", DOCTOR,
      'is_jetson = bool(release or "jetson" in (model or "").lower())',
      'is_jetson = bool(release)'),
     ("engines: every other device's engine called stale", DOCTOR,
      'o.split("_")[0] == gpu and ctx["role"] == "device"', 'ctx["role"] == "device"'),
     ("blockers: every FAIL blocks, whatever the next link", DOCTOR,
      'r["status"] == "FAIL" and ctx["next"] in r["blocks"]', 'r["status"] == "FAIL"'),
     ("model row: a missing sidecar record trusted (`recorded and recorded != sha`)", DOCTOR,
      "    if recorded != sha:", "    if recorded and recorded != sha:"),
     ("report: the fix printed on ok rows too", DOCTOR,
      'if r["fix"] and r["status"] != "ok":', 'if r["fix"]:'),
     ("trtexec: the first summary taken, not the last", DOCTOR,
      "float(found[-1][0]), float(found[-1][1])", "float(found[0][0]), float(found[0][1])"),
     ("clocks warning: jetson_clocks unknown not warned", DOCTOR,
      "    if not on_jetson or active:", "    if not on_jetson or active is not False:"),
     )

SCHEMA = "stages/common/schema.py"
area("25", "schema", "tests/test_bite_doctor.py",
     ("schema: precision.margin minimum 0 (0 accepted)", SCHEMA,
      '"margin": Key("float", 4.0, minimum=1, maximum=1000)',
      '"margin": Key("float", 4.0, minimum=0, maximum=1000)'),
     ("schema: precision.margin without a minimum", SCHEMA,
      '"margin": Key("float", 4.0, minimum=1, maximum=1000)',
      '"margin": Key("float", 4.0, maximum=1000)'),
     )

SCAN = "stages/host/precision_scan.py"
SEARCH = "stages/host/precision_search.py"
CONVERT = "stages/host/fp16_convert.py"
BOARD = "stages/host/fp16_switchboard.py"
area("25", "precision", "tests/test_bite_precision.py",
     ("range: `max_abs >= 65504` counts 65504 itself as overflow", SCAN,
      'for r in ranges if r["max_abs"] > FP16_MAX]',
      'for r in ranges if r["max_abs"] >= FP16_MAX]'),
     ("range: `FP16_MAX = 65505` (65504.004, the next float32 above 65504, passes)", CONVERT,
      'FP16_MAX = 65504.0', 'FP16_MAX = 65505.0'),
     ("near range: `>= 65504 / 16`", SEARCH,
      'and r["max_abs"] > FP16_MAX / NEAR]', 'and r["max_abs"] >= FP16_MAX / NEAR]'),
     ("fused op: LayerNormalization's intermediates not scanned", SCAN,
      '    if node.op_type == "LayerNormalization":\n', '    if False:\n'),
     ("fused op: LayerNormalization's mean over every axis, not from `axis` on", SCAN,
      'axes = tuple(range(axis % x.ndim, x.ndim))', 'axes = tuple(range(x.ndim))'),
     ("fused op: ReduceL2 not judged by its sum of squares", SCAN,
      'SQUARES = ("ReduceSumSquare", "ReduceL2")', 'SQUARES = ("ReduceSumSquare",)'),
     ("margin: `* margin` in mask_goal (loosens the goal)", SEARCH,
      '1 - (1 - limits["mask_agreement"]) / margin,\n            "miou": 1 - (1 - limits["miou"]) '
      '/ margin}',
      '1 - (1 - limits["mask_agreement"]) * margin,\n            "miou": 1 - (1 - limits["miou"]) '
      '* margin}'),
     ("goal: `>` instead of `>=` for mask agreement", SEARCH,
      'w["mask_agreement"] >= goal["mask_agreement"]',
      'w["mask_agreement"] > goal["mask_agreement"]'),
     ("order: units riskiest first (`reverse=True`)", SEARCH,
      'sorted(units, key=risk)', 'sorted(units, key=risk, reverse=True)'),
     ("order: the second half of a split group tried first", SEARCH,
      'queue[:0] = [units[:half], units[half:]]', 'queue[:0] = [units[half:], units[:half]]'),
     ("Inf: `meets` ignores Inf", SEARCH,
      'w["nan"] == 0 and w["inf"] == 0 and', 'w["nan"] == 0 and'),
     ("join_islands: the graph-output guard dropped", CONVERT,
      'first is not None and n.output[0] not in outputs \\', 'first is not None \\'),
     ("join_islands: the fp32-source guard dropped", CONVERT,
      'and _cast_to(first) == TensorProto.FLOAT16 and first.input[0] in fp32:',
      'and _cast_to(first) == TensorProto.FLOAT16:'),
     ("join_islands: the second Cast need not go to fp32", CONVERT,
      'if _cast_to(n) == TensorProto.FLOAT and first is not None',
      'if n.op_type == "Cast" and first is not None'),
     ("join_islands: the first Cast need not go to fp16", CONVERT,
      'and _cast_to(first) == TensorProto.FLOAT16 and first.input[0] in fp32:',
      'and first.op_type == "Cast" and first.input[0] in fp32:'),
     ("unshare_initializers: a twin for every initializer an island reads", CONVERT,
      'if v == {True, False}]', 'if True in v]'),
     ("unshare_initializers not called", CONVERT,
      '    unshare_initializers(copy, islands)\n', ''),
     ("fp32_outputs not called (the fix of issue 25 reverted)", CONVERT,
      'return fp32_outputs(join_islands(mixed))', 'return join_islands(mixed)'),
     ("switchboard: an initializer rounded without the +-65504 clamp", BOARD,
      'a = np.clip(a, -FP16_MAX, FP16_MAX).astype(np.float16)', 'a = a.astype(np.float16)'),
     ("switchboard: two islands in a row read the rounded value", BOARD,
      '        if not own and consumer is not None:', '        if consumer is not None:'),
     ("switchboard: an always-fp16 producer read unrounded", BOARD,
      'return self.rounded(t)  # always fp16', 'return self.raw(t)  # always fp16'),
     ("switchboard: `Or` for `And` of the two flags", BOARD,
      '"And", flags,', '"Or", flags,'),
     ("search: no memory of previewed sets", SEARCH,
      '        if key not in self.seen:', '        if True:'),
     ("search: best set is the largest", SEARCH,
      'len(key) < len(self.best)', 'len(key) > len(self.best)'),
     )

LINK = "stages/host/precision_link.py"
PREVIEW = "stages/host/precision_preview.py"
BUDGET = "stages/host/precision_budget.py"
VERDICT = "stages/host/precision_verdict.py"
LINK_TESTS = ("tests/test_bite_precision.py tests/test_bite_precision_link.py "
              "tests/test_bite_precision_link_steps.py tests/test_bite_precision_budget.py "
              "tests/test_bite_precision_verdict.py")
area("25", "precision-link", LINK_TESTS,
     ("Inf: a preview row counts no Inf", PREVIEW,
      '"inf": int(np.isinf(logits).sum())}', '"inf": 0}'),
     ("Inf: the link's final check (`_misses`) ignores Inf", LINK,
      '    if row["nan"] or row["inf"]:', '    if row["nan"]:'),
     ("limits: from the first row, not the worst", PREVIEW,
      '    w = worst(rows)\n    max_abs, mean_abs',
      '    w = worst(rows[:1])\n    max_abs, mean_abs'),
     ("limits: logits errors not times the margin", PREVIEW,
      'max_abs, mean_abs = margin * w["logits_max_abs"], margin * w["logits_mean_abs"]',
      'max_abs, mean_abs = w["logits_max_abs"], w["logits_mean_abs"]'),
     ("link: `_failure` looks at the first image only", LINK,
      '    for r in rows:\n        miss = _misses(r, limits)',
      '    for r in rows[:1]:\n        miss = _misses(r, limits)'),
     ("link: keep_fp32 groups compared without case", LINK,
      'unknown = [g for g in keep_fp32 if g not in ps.GROUPS]',
      'unknown = [g for g in keep_fp32 if g.lower() not in [x.lower() for x in ps.GROUPS]]'),
     ("search: a preview without the budget check", BUDGET,
      '        self.afford(kind, reserve)\n',
      '        kind == "preview" or self.afford(kind, reserve)\n'),
     # helper plink (/tmp/mut-plink/plant/plant.py)
     ("limits from the naive rows (not the mixed model's)", LINK,
      '"limits": pp.derive_limits(mixed_rows, cases',
      '"limits": pp.derive_limits(search.seen[frozenset()], cases'),
     ("limits from the first mixed row only", LINK,
      '"limits": pp.derive_limits(mixed_rows, cases',
      '"limits": pp.derive_limits(mixed_rows[:1], cases'),
     ("islands name the converter's renamed outputs", LINK,
      '"outputs": info[name]["outputs"] if name in info else list(in_mixed[name])',
      '"outputs": list(in_mixed[name])'),
     ("model.mixed.onnx written before the limits check", LINK,
      '    failure = _failure(mixed_rows, fp16_limits, os.path.basename(layout.precision_model))\n',
      '    files.write_bytes(layout.precision_model, data)\n'
      '    failure = _failure(mixed_rows, fp16_limits, '
      'os.path.basename(layout.precision_model))\n'),
     ("a missed limit only printed (a warning)", LINK,
      '        raise PrecisionError(failure)', '        print("precision: warning: " + failure)'),
     ("cannot: the naive preview's rows in the sentence", LINK,
      'rows = search.seen.get(frozenset(switchable)) or search.seen[frozenset()]',
      'rows = search.seen[frozenset()]'),
     ("no reserve kept for the rewrite", LINK,
      'reserve = 5 + os.path.getsize(layout.onnx_model) / 1e7',
      'reserve = os.path.getsize(layout.onnx_model) / 1e7'),
     ("fp32 skip records no onnx_sha256", LINK,
      '"format": FORMAT, "onnx_sha256": files.sha256_file(layout.onnx_model), "islands": [],',
      '"format": FORMAT, "islands": [],'),
     ("note for every stricter limit, set or not", LINK,
      'stricter = [k for k in stricter if "verify.fp16." + k in explicit]',
      'stricter = list(stricter)'),
     ("budget: memory refused at the budget itself", BUDGET,
      'if now + grew > self.mb:', 'if now + grew >= self.mb:'),
     ("budget: VmHWM read as MB, not kB", BUDGET,
      'return int(line.split()[1]) / 1e3 * 1.024', 'return int(line.split()[1])'),
     ("budget: no fallback without /proc (peak)", BUDGET,
      '    except (OSError, ValueError):\n        pass\n    return rss_mb()',
      '    except ValueError:\n        pass\n    return rss_mb()'),
     ("clock: truncated, not rounded", BUDGET,
      'seconds = max(0, int(round(seconds)))', 'seconds = max(0, int(seconds))'),
     ("margins: mean error replaced by the max", VERDICT,
      'error = pp.worst(rows)["logits_mean_abs"]', 'error = pp.worst(rows)["logits_max_abs"]'),
     ("margins: first image only", VERDICT,
      'gaps, rounding = np.concatenate(gaps), np.concatenate(rounding)',
      'gaps, rounding = gaps[0], rounding[0]'),
     ("flip bound: <= at twice the error", PREVIEW,
      'flipped = np.where(gap < 2 * error, second, best)',
      'flipped = np.where(gap <= 2 * error, second, best)'),
     )

# helper mut-r1 (/tmp/mut-r1/plant.py)
VERIFY = "stages/device/verify.py"
GATE = "stages/host/onnx_gate.py"
EXPORT = "stages/host/onnx_export.py"
R1_TESTS = "tests/test_bite_verify.py tests/test_bite_onnx_fold.py"
area("25", "verify", R1_TESTS,
     ("verify: logits compared before (without) the finite check", VERIFY,
      '    compare.require_finite(logits, "The %s backend',
      '    (lambda *a: None)(logits, "The %s backend'),
     ("verify: the backend name read from the segmenter, not its backend", VERIFY,
      'getattr(seg.backend, "name", "runtime")', 'getattr(seg, "name", "runtime")'),
     ("verify: the command line's backend ignored for verify.backend", VERIFY,
      'backend = backend or cfg["verify"]["backend"]',
      'backend = cfg["verify"].get("backend", backend)'),
     ("compare: only the compared side checked for NaN/inf", "stages/common/compare.py",
      '(("compared", actual), ("reference", expected))', '(("compared", actual),)'),
     )

area("25", "onnx", R1_TESTS,
     ("onnx_gate: an opset of exactly 17 re-derived from the parser table", GATE,
      'opset >= LAYER_NORM_OPSET:\n        return opset',
      'opset > LAYER_NORM_OPSET:\n        return opset'),
     ("onnx_gate: auto refused like native where the parser lacks LayerNormalization", GATE,
      '    if mode == "native":\n        raise', '    if mode != "decomposed":\n        raise'),
     ("onnx_gate: parses_layer_norm without the opset clause", GATE,
      '("LayerNormalization" in table["supported"]\n            and table["opset_max"] >= '
      'LAYER_NORM_OPSET)',
      '("LayerNormalization" in table["supported"])'),
     ("onnx_gate: native on a parser without LayerNormalization silently decomposed", GATE,
      '    if mode == "native":\n        raise',
      '    if mode == "native" and False:\n        raise'),
     ("onnx_export: the fold line's counts swapped for an unfolded head", EXPORT,
      'this, other = ("folded", "unfolded") if head["folded"] else ("unfolded", "folded")',
      'this, other = ("folded", "unfolded")'),
     ("onnx_export: GMAC divided by 2**30", EXPORT,
      'head["macs"][this] / 1e9', 'head["macs"][this] / 2.0 ** 30'),
     ("onnx_export: parity without its finite check", EXPORT,
      '        compare.require_finite(logits, DAMAGED',
      '        (lambda *a: None)(logits, DAMAGED'),
     )

# helper mut-r3 (/tmp/mut-r3/plant.py)
WEIGHTS = "stages/host/checkout_weights.py"
area("25", "checkout", "tests/test_bite_weights.py tests/test_bite_checkout_files.py",
     ("scan ignores the header (offsets from the file start)", WEIGHTS,
      "_float_chunks(raw[start + begin:start + end], dtype)",
      "_float_chunks(raw[begin:end], dtype)"),
     ("scan reads only the first chunk", WEIGHTS,
      "part = block[at:at + step]", "part = block[:step]"),
     ("BF16 read as fp16", WEIGHTS, 'FLOAT_VIEWS = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}',
      'FLOAT_VIEWS = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<f2"}'),
     ("E4M3 negative NaN missed", WEIGHTS, "(part & 0x7F) == 0x7F", "part == 0x7F"),
     ("E4M3 read as E5M2", WEIGHTS,
      'elif dtype == "F8_E5M2":', 'elif dtype in ("F8_E5M2", "F8_E4M3"):'),
     ("fp8 not scanned", WEIGHTS, 'elif dtype == "F8_E5M2":', 'elif False:'),
     ("pickle scan only fp32", WEIGHTS, "if tensor.is_floating_point() else None",
      "if tensor.dtype == torch.float32 else None"),
     ("scan in name order", WEIGHTS, "sorted(spans.items(), key=lambda kv: kv[1][0])",
      "sorted(spans.items())"),
     ("memmap opened read-write", WEIGHTS, 'mode="r")', 'mode="r+")'),
     ("torch.load without weights_only", WEIGHTS, 'map_location="cpu", weights_only=True',
      'map_location="cpu"'),
     ("recheck trusts a manifest without sha256", "stages/host/checkout.py",
      'recorded = manifest.get("sha256") if isinstance(manifest.get("sha256"), dict) else {}',
      'recorded = manifest["sha256"]'),
     ("scan skipped for sharded files (no spans check inverted)", WEIGHTS,
      "if not spans:", "if len(spans) > 1:"),
     ("safetensors header cap raised to 256 MiB (`1 << 28`)", WEIGHTS,
      "min(size - 8, 1 << 27)", "min(size - 8, 1 << 28)"),
     )

# helper mut-r4 (/tmp/mut-r4/plant.py, plant2.py)
IMAGES = "runtime/images.py"
area("25", "pictures", "tests/test_bite_images.py"
                       " tests/test_bite_pictures.py tests/test_bite_limits.py",
     ("every RGB/L file decoded by OpenCV", IMAGES, 'img.format in ("JPEG", "MPO") and ', ''),
     ("'truncated' reason lost", IMAGES, '"it is truncated" if "truncated" in str(e)',
      '"it is truncated" if "Truncated" in str(e)'),
     ("MPO decoded by Pillow", IMAGES, 'img.format in ("JPEG", "MPO")', 'img.format == "JPEG"'),
     ("grey JPEG decoded by Pillow", IMAGES, 'img.mode in ("RGB", "L")', 'img.mode in ("RGB",)'),
     ("OpenCV applies orientation too", IMAGES, "cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION",
      "cv2.IMREAD_COLOR"),
     ("no Pillow check of the file", IMAGES, "            img.load()\n", ""),
     ("megapixel limit is >=", IMAGES, "mp > max_megapixels", "mp >= max_megapixels"),
     ("orientations 6 and 8 swapped", IMAGES, "6: lambda a: np.rot90(a, -1)",
      "6: lambda a: np.rot90(a, 1)"),
     ("orientation 5 is 7", IMAGES, "5: lambda a: a.transpose(1, 0, 2),",
      "5: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],"),
     ("no exif_transpose for non-JPEG", IMAGES, "img = ImageOps.exif_transpose(img)", "pass"),
     ("no contiguous copy after the turn", IMAGES,
      "np.ascontiguousarray(turn(bgr) if turn else bgr)", "turn(bgr) if turn else bgr"),
     ("OpenCV gives RGB not BGR", IMAGES, "    return bgr\n", "    return bgr[:, :, ::-1]\n"),
     ("size checked after decode as h x w", IMAGES, "w, h = size", "h, w = size"),
     )

# helper mut-r2 (docs/mutation.md's config round; planted by hand, written here against today's
# code): stages/common/config.py, and schema.py's bounds (a table mutmut cannot mutate)
CONFIG = "stages/common/config.py"
CONFIG_TESTS = ("tests/test_bite_config.py tests/test_bite_config_values.py "
                "tests/test_bite_config_bounds.py")
area("25", "config", CONFIG_TESTS,
     ("explicit keys recorded as from \"pipeline.yaml\", not the file given", CONFIG,
      'explicit = dict((dotted, path) for dotted in given)',
      'explicit = dict((dotted, "pipeline.yaml") for dotted in given)'),
     ("a variable overrides only its first key (`VARIABLES[name][1][:1]`)", CONFIG,
      'for dotted in VARIABLES[name][1]:', 'for dotted in VARIABLES[name][1][:1]:'),
     ("an unknown key named without its section (`quote(str(unknown[0]))`)", CONFIG,
      'quote(prefix + str(unknown[0]), 60)', 'quote(str(unknown[0]), 60)'),
     ("evaluate.data outside the project resolved against the cwd (`abspath(rel)`)", CONFIG,
      'return os.path.abspath(os.path.join(ROOT, rel)) if rel.startswith("..") else rel',
      'return os.path.abspath(rel) if rel.startswith("..") else rel'),
     ("infer.image classified from the cwd, not the pipeline file's folder", CONFIG,
      'kind = classify(value, os.path.join(ROOT, _relative(value, base)))',
      'kind = classify(value)'),
     ("a minimum refuses its own value (`value <= spec.minimum`)", CONFIG,
      'value < spec.minimum:', 'value <= spec.minimum:'),
     ("a minimum of 0 skipped (`if spec.minimum and ...`)", CONFIG,
      'if spec.minimum is not None and value < spec.minimum:',
      'if spec.minimum and value < spec.minimum:'),
     ("schema: engine.workspace_mb maximum `(1 << 18) + 1`", SCHEMA,
      'minimum=16, maximum=1 << 18)', 'minimum=16, maximum=(1 << 18) + 1)'),
     ("schema: onnx.opset minimum 6", SCHEMA,
      '"opset": Key("int", 13, minimum=7,', '"opset": Key("int", 13, minimum=6,'),
     ("schema: evaluate.worst without a maximum", SCHEMA,
      '"worst": Key("int", 3, minimum=0, maximum=50)', '"worst": Key("int", 3, minimum=0)'),
     ("schema: precision.budget_minutes minimum 0", SCHEMA,
      '"budget_minutes": Key("float", 10.0, minimum=0.1,',
      '"budget_minutes": Key("float", 10.0, minimum=0,'),
     ("schema: infer.n minimum 0", SCHEMA,
      '"n": Key("int", None, optional=True, minimum=1,',
      '"n": Key("int", None, optional=True, minimum=0,'),
     ("schema: every fraction's maximum 1.01", SCHEMA,
      'return Key("float", default, minimum=0, maximum=1)',
      'return Key("float", default, minimum=0, maximum=1.01)'),
     ("schema: the abs-error limits' bound ABS_LIMIT 1e4", SCHEMA,
      'ABS_LIMIT = 1000 ', 'ABS_LIMIT = 10000 '),
     ("schema: precision.budget_mb a float", SCHEMA,
      '"budget_mb": Key("int", 6000,', '"budget_mb": Key("float", 6000,'),
     ("schema: precision.margin minimum 0 (bounds test)", SCHEMA,
      '"margin": Key("float", 4.0, minimum=1, maximum=1000)',
      '"margin": Key("float", 4.0, minimum=0, maximum=1000)'),
     ("schema: precision.margin without a minimum (bounds test)", SCHEMA,
      '"margin": Key("float", 4.0, minimum=1, maximum=1000)',
      '"margin": Key("float", 4.0, maximum=1000)'),
     )
