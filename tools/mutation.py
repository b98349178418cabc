"""Mutation testing of the decision points with mutmut (see docs/mutation.md).

    python tools/mutation.py --quick        # CI: a deterministic 1-in-10 sample of every module
    python tools/mutation.py                # the full run over every module
    python tools/mutation.py --module compare --sample 1
    python tools/mutation.py --show NAME    # the diff of one mutant (after a run)

Each module group is mutated in its own scratch copy of the project (default
/tmp/segformer-mutation/<group>), with a setup.cfg naming only its source files and the fast
test files that cover them, so a mutant never runs the whole suite. mutmut keeps its results
in that copy, so a rerun only tests new or changed mutants. Exit status 1 when the score is
below --min-score."""

import argparse
import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# test_precision.py's in-process tests (its `doit` runs take about a minute each)
PRECISION_IN_PROCESS = [
    "tests/test_precision.py::test_" + t
    for t in (
        "emulation_reproduces_numpy_float16_overflow_and_islands_repair_it",
        "mixed_model_types_follow_the_islands",
        "search_keeps_what_the_masks_need_and_drops_the_rest_in_few_previews",
        "keep_fp32_groups_are_seeds_dropped_only_when_a_preview_proves_them_unneeded",
        "no_island_set_is_the_cannot_verdict_and_a_budget_spent_early_has_no_set",
        "budget_refuses_a_step_that_would_not_fit_in_time_or_memory",
        "adjacent_islands_stay_fp32_between_them",
    )
]

# group -> (files to mutate, the test files that cover them)
GROUPS = {
    "compare": (
        ["stages/common/compare.py", "stages/device/verify.py"],
        ["tests/test_bite_compare.py", "tests/test_bite_verify.py", "tests/test_verify_limits.py"],
    ),
    "config": (
        ["stages/common/schema.py", "stages/common/config.py"],
        [
            "tests/test_bite_config.py",
            "tests/test_bite_config_values.py",
            "tests/test_bite_config_bounds.py",
            "tests/test_bite_limits.py",
            "tests/test_config.py",
            "tests/test_cli_schema.py",
            "--deselect",
            "tests/test_cli_schema.py::test_bad_variables_through_the_real_cli",
            "--deselect",
            "tests/test_cli_schema.py::test_two_pipeline_files_keep_their_own_doit_state",
        ],
    ),
    "uptodate": (
        [
            "stages/common/uptodate.py",
            "stages/device/settings.py",
            "runtime/device.py",
            "runtime/engine_folder.py",
        ],
        ["tests/test_bite_uptodate.py", "tests/test_bite_fingerprint.py",
         "tests/test_bite_integrity.py", "tests/test_bite_uptodate_words.py"],
    ),
    "checkout": (
        ["stages/host/checkout.py", "stages/host/checkout_weights.py"],
        ["tests/test_bite_checkout.py", "tests/test_bite_weights.py",
         "tests/test_bite_checkout_files.py", "tests/test_bite_limits.py",
         "tests/test_checkout.py"],
    ),
    "onnx": (
        ["stages/host/onnx_gate.py", "stages/host/onnx_export.py"],
        ["tests/test_bite_compare.py", "tests/test_bite_gate.py", "tests/test_bite_onnx_fold.py"],
    ),
    "reference": (
        ["runtime/reference.py"],
        [
            "tests/test_bite_reference.py",
            "tests/test_bite_early_out.py",
            "tests/test_postprocess_exact.py",
            "tests/test_bite_pictures.py",
            "tests/test_runtime_cpu.py::test_resize_is_bit_exact_with_this_pillow",
            "tests/test_runtime_cpu.py::test_blend",
            "tests/test_runtime_cpu.py::test_cv2_inter_linear_is_not_the_model_resize",
            "--deselect",
            "tests/test_postprocess_exact.py::test_golden_logits",
            "--deselect",
            "tests/test_postprocess_exact.py::test_4096x2160_output",
            "--deselect",
            "tests/test_postprocess_exact.py::test_odd_logit_shapes_and_scales[shape5]",
        ],
    ),
    "pictures": (
        ["runtime/palette.py", "runtime/images.py"],
        ["tests/test_bite_pictures.py", "tests/test_bite_images.py", "tests/test_bite_limits.py"],
    ),
    # round 2 (issue 25): the engine link's own checks, integrity, streams, the lock, the doctor
    "engine": (
        ["stages/device/engine.py", "stages/device/trt_builder.py"],
        ["tests/test_bite_engine.py", "tests/test_bite_engine_record.py"],
    ),
    # trt_precision.py on its own, against fast tests of its functions (no build): through
    # test_bite_engine.py every inspector mutant reran each build
    "inspector": (
        ["stages/device/trt_precision.py"],
        ["tests/test_bite_inspector.py", "tests/test_bite_inspector_readback.py"],
    ),
    "integrity": (
        ["runtime/files.py", "stages/common/intact.py"],
        ["tests/test_bite_integrity.py", "tests/test_bite_files.py",
         "tests/test_bite_stream_lock.py"],
    ),
    "stream": (
        ["runtime/stream.py", "stages/common/lock.py"],
        [
            "tests/test_bite_stream_lock.py",
            "tests/test_bite_lock_file.py",
            "tests/test_stream.py",
            "--deselect",
            "tests/test_stream.py::test_ctrl_c_leaves_only_complete_files",
        ],
    ),
    "doctor": (
        ["stages/device/doctor_checks.py", "stages/device/doctor.py"],
        # test_doctor.py is left out: 32 s a run (30 fake machines, a 256 MB model.onnx hashed
        # per test), too slow to repeat for each surviving mutant; the bite files cover every
        # row and doctor.py's decisions in process (about 1 s together)
        ["tests/test_bite_doctor.py", "tests/test_bite_doctor_rows.py",
         "tests/test_bite_doctor_machine.py", "tests/test_bite_doctor_report.py",
         "tests/test_bite_doctor_bench.py"],
    ),
    # round 2 (issue 25): the precision link, in two groups: its numerics (the fp16 emulation,
    # the scan, the search, the converter) and its orchestration (the link, the previews, the
    # budget, the verdict). test_precision.py's in-process tests only (its doit runs take about
    # a minute, too slow to repeat per mutant)
    "precision_link": (
        ["stages/host/precision_link.py", "stages/host/precision_preview.py",
         "stages/host/precision_budget.py", "stages/host/precision_verdict.py"],
        ["tests/test_bite_precision.py", "tests/test_bite_precision_link.py",
         "tests/test_bite_precision_link_steps.py", "tests/test_bite_precision_budget.py",
         "tests/test_bite_precision_verdict.py"]
        + PRECISION_IN_PROCESS,
    ),
    "precision": (
        ["stages/host/precision_scan.py", "stages/host/precision_search.py",
         "stages/host/fp16_switchboard.py", "stages/host/fp16_convert.py",
         "stages/host/fp16_emulate.py"],
        ["tests/test_bite_precision.py", "tests/test_bite_fp16.py",
         "tests/test_bite_fp16_search.py"] + PRECISION_IN_PROCESS,
    ),
}
# functions that only print, time or talk to torch/onnxruntime at export time: not decision points
DO_NOT_MUTATE_FUNCTIONS = (
    "print_table",
    "table_lines",  # verify's table for people (issue 27), and its up-to-date reprint
    "last_report",
    "_text",  # text drawn on the verify and evaluate pictures
    "_centered",
    "_summary",
    "_report",
    "export_graph",
    "check_and_simplify",
    "run_onnx",
    "write_sidecar",
    "probe_gpu",
    "probe_tensorrt",
    "picture",
    "load_model",
    "load_processor",
    # run only while stages.common.schema is imported, before mutmut switches
    # a mutant on: mutmut cannot test them (the schema table is tested as data)
    "_fraction",
    "_thresholds",
    "Key.__init__",
    "_umask",  # runtime.files: runs once at import (UMASK), before a mutant is switched on
)
COPY = ("stages", "runtime", "tests", "dodo.py", "pipeline.yaml", "pytest.ini", "README.md")
LINK = ("models", "examples")


def sampled(name, sample):
    """Deterministic 1-in-`sample` choice by the mutant's name (stable across runs and machines)."""
    return sample <= 1 or int(hashlib.sha1(name.encode()).hexdigest(), 16) % sample == 0


MESSAGE_CALLS = ("print", "say", "write", "warn", "fail_at_load", "fail", "refuse")
POSITION = ("lineno", "col_offset", "end_lineno", "end_col_offset", "name")


def _message_strings(func):
    """Walk indexes of the string constants that are only message text: inside a `raise`, or
    an argument of print/say/refuse/an ...Error(...) call."""
    nodes = list(ast.walk(func))
    index = dict((id(n), i) for i, n in enumerate(nodes))
    found = set()
    for n in nodes:
        callee = (
            n.func.id
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            else (
                n.func.attr if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) else ""
            )
        )
        if isinstance(n, ast.Raise) or callee in MESSAGE_CALLS or callee.endswith("Error"):
            found.update(
                index[id(c)]
                for c in ast.walk(n)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
    return found


def _differences(a, b):
    """Walk indexes where two functions differ, or None when their shapes differ."""
    na, nb = list(ast.walk(a)), list(ast.walk(b))
    if len(na) != len(nb):
        return None
    out = []
    for i, (x, y) in enumerate(zip(na, nb)):
        if type(x) is not type(y):
            return None
        for field, value in ast.iter_fields(x):
            if (
                field not in POSITION
                and not isinstance(value, (ast.AST, list))
                and value != getattr(y, field)
            ):
                out.append(i)
    return out


def message_only(workdir, names):
    """The mutants that only change message text (see docs/mutation.md): not run, not scored."""
    by_file, out = {}, set()
    for name in names:
        module, func = name.rsplit(".", 1)
        by_file.setdefault(module, []).append((name, func))
    for module, items in by_file.items():
        path = os.path.join(workdir, "mutants", *module.split(".")) + ".py"
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            defs = dict(
                (n.name, n) for n in ast.walk(ast.parse(f.read())) if isinstance(n, ast.FunctionDef)
            )
        for name, func in items:
            orig = defs.get(func.split("__mutmut_")[0] + "__mutmut_orig")
            if orig is None or func not in defs:
                continue
            diff = _differences(orig, defs[func])
            if diff and set(diff) <= _message_strings(orig):
                out.add(name)
    return out


def function_of(name):
    """'stages.device.verify.x_failures__mutmut_3' -> 'failures'; a method -> 'Class.method'."""
    last = name.rsplit(".", 1)[-1].split("__mutmut_")[0]
    if "\u01c1" in last:  # mutmut names methods x<U+01C1>Class<U+01C1>method
        return ".".join(last.split("\u01c1")[1:])
    return last[2:] if last.startswith("x_") else last


def prepare(group, workdir):
    sources, tests = GROUPS[group]
    if os.path.isdir(workdir):  # refresh the code, keep mutmut's cache in mutants/
        for name in COPY:
            target = os.path.join(workdir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
    os.makedirs(workdir, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "doubles_build")
    for name in COPY:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(workdir, name), ignore=ignore)
        elif os.path.exists(src):
            shutil.copy2(src, workdir)
    for name in LINK:
        if not os.path.exists(os.path.join(workdir, name)):
            os.symlink(os.path.join(ROOT, name), os.path.join(workdir, name))
    lines = ["[mutmut]", "source_paths ="] + ["    %s" % p for p in ("stages", "runtime")]
    lines += ["only_mutate ="] + ["    %s" % s for s in sources]
    lines += ["also_copy ="] + [
        "    %s" % p for p in ("dodo.py", "pipeline.yaml", "pytest.ini", "README.md") + LINK
    ]
    lines += ["pytest_add_cli_args_test_selection ="] + [
        "    %s" % t for t in tests
    ]  # files, node ids
    lines += ["pytest_add_cli_args =", "    -p", "    no:randomly", "    -q", "    -x"]
    lines += ["timeout_multiplier = 10.0", "use_git_change_detection = false", ""]
    with open(os.path.join(workdir, "setup.cfg"), "w") as f:
        f.write("\n".join(lines))


def mutmut(workdir, *args, quiet=True):
    cmd = [sys.executable, "-m", "mutmut"] + list(args)
    env = dict(os.environ, PYTHONPATH="", PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
    )
    if out.returncode != 0 and not quiet:
        sys.stdout.write(out.stdout[-4000:])
    return out


def results(workdir):
    """{mutant name: status} from `mutmut results --all true`."""
    out = mutmut(workdir, "results", "--all", "true").stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s+(\S+): (.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def run_group(group, workdir, sample, max_children, wanted=None):
    prepare(group, workdir)
    # first call: create the mutants and the test<->function stats, test nothing yet
    first = mutmut(workdir, "run", "--max-children", str(max_children), "no.such.mutant")
    if (
        "failed to collect stats" in first.stdout
    ):  # the unmutated tests fail: no score means anything
        sys.stdout.write(first.stdout[-3000:])
        raise SystemExit(
            "mutation: the tests of group %s fail on the unmutated code (above)." % group
        )
    names = sorted(results(workdir))
    messages = message_only(workdir, names)
    chosen = [
        n
        for n in names
        if sampled(n, sample)
        and function_of(n) not in DO_NOT_MUTATE_FUNCTIONS
        and n not in messages
        and (wanted is None or n in wanted)
    ]
    print(
        "%-10s %4d mutants generated: %d change only message text, %d in excluded functions, "
        "%d tested"
        % (
            group,
            len(names),
            len(messages),
            len([n for n in names if function_of(n) in DO_NOT_MUTATE_FUNCTIONS]),
            len(chosen),
        ),
        flush=True,
    )
    for i in range(0, len(chosen), 200):  # keep command lines short
        mutmut(
            workdir, "run", "--max-children", str(max_children), *chosen[i : i + 200], quiet=False
        )
    status = results(workdir)
    return dict((n, status.get(n, "not checked")) for n in chosen)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="CI mode: a 1-in-10 sample (same as --sample 10)"
    )
    p.add_argument("--sample", type=int, default=1, help="test 1 mutant in N (deterministic)")
    p.add_argument("--module", action="append", choices=sorted(GROUPS), help="only these groups")
    p.add_argument("--workdir", default=os.path.join("/tmp", "segformer-mutation"))
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2)))
    p.add_argument("--min-score", type=float, default=85.0)
    p.add_argument("--show", metavar="MUTANT", help="print one mutant's diff and exit")
    p.add_argument("--names-from", metavar="FILE",
                   help="only the mutants named in FILE (e.g. the survivors of an earlier run)")
    a = p.parse_args(argv)
    if a.show:
        group = next(
            g
            for g in GROUPS
            if os.path.isdir(os.path.join(a.workdir, g, "mutants"))
            and a.show in results(os.path.join(a.workdir, g))
        )
        sys.stdout.write(mutmut(os.path.join(a.workdir, group), "show", a.show).stdout)
        return 0
    sample = 10 if a.quick else a.sample
    killed = total = 0
    survivors = []
    groups = a.module or sorted(GROUPS)
    for group in groups:
        wanted = None
        if a.names_from:
            with open(a.names_from) as f:
                wanted = set(re.findall(r"[\w.\u01c1]+__mutmut_\d+", f.read()))
        status = run_group(group, os.path.join(a.workdir, group), sample, a.jobs, wanted)
        k = sum(1 for s in status.values() if s in ("killed", "timeout", "caught by type check"))
        bad = sorted(
            n for n, s in status.items() if s not in ("killed", "timeout", "caught by type check")
        )
        print(
            "%-10s %4d mutants, %4d killed, %3d survived (%.1f %%)"
            % (group, len(status), k, len(bad), 100.0 * k / max(1, len(status)))
        )
        killed, total = killed + k, total + len(status)
        survivors += ["%s (%s)" % (n, status[n]) for n in bad]
    score = 100.0 * killed / max(1, total)
    print("mutation score: %d of %d killed = %.1f %%" % (killed, total, score))
    for s in survivors:
        print("  survived: " + s)
    return 0 if score >= a.min_score else 1


if __name__ == "__main__":
    sys.exit(main())
