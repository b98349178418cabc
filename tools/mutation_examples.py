"""Plant each example bug of issues 17 and 25 (docs/mutation.md; the table is
tools/mutation_plants.py), one at a time, in a scratch copy of the project, and run the bite
tests that must catch it. Prints KILLED or SURVIVED per bug, with the first test that failed; a
bug whose original code is missing or not unique in its file is NOT PLANTED (rewrite its row).

    python tools/mutation_examples.py [WORDS...]    # all bugs, or those one of WORDS selects
    python tools/mutation_examples.py --list [WORDS...]   # the selected bugs, nothing run
    python tools/mutation_examples.py --check [WORDS...]  # only whether each can be planted

A word selects the bugs of an issue (17, 25), of an area (engine, precision-link, ...), of
ISSUE:AREA (25:doctor), or whose description contains it (OOM). The exit status is 1 when a
selected bug survived or could not be planted.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mutation_plants import PLANTS  # noqa: E402

COPY_DIRS = ("stages", "runtime", "tests")
COPY_EXTS = (".py", ".yaml", ".ini", ".txt", ".md")  # the project's top-level files
LINK_DIRS = ("models", "examples")


def selects(plant, word):
    return word in (plant.issue, plant.area, "%s:%s" % (plant.issue, plant.area)) \
        or word.lower() in plant.bug.lower()


def selected(words):
    return [p for p in PLANTS if not words or any(selects(p, w) for w in words)]


def fresh(root, dest):
    """A scratch copy of the project's code and tests (models and examples linked)."""
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    for name in COPY_DIRS:
        shutil.copytree(os.path.join(root, name), os.path.join(dest, name),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "doubles_build"))
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isfile(path) and name.endswith(COPY_EXTS):
            shutil.copy2(path, dest)
    for name in LINK_DIRS:
        os.symlink(os.path.join(root, name), os.path.join(dest, name))


def planted_text(root, plant):
    """(the file's text with the bug planted, None) or (None, why it cannot be planted): the
    original missing or not unique in the file, or a test file missing."""
    gone = [t for t in plant.tests if not os.path.exists(os.path.join(root, t.split("::")[0]))]
    if gone:
        return None, "test file missing: %s" % ", ".join(gone)
    try:
        with open(os.path.join(root, plant.path)) as f:
            text = f.read()
    except OSError:
        return None, "no file %s" % plant.path
    n = text.count(plant.old)
    if n != 1:
        return None, "original text found %d times in %s" % (n, plant.path)
    return text.replace(plant.old, plant.new, 1), None


def run_tests(dest, tests):
    """(killed, the first failed test or pytest's last line) of pytest -x in the scratch copy."""
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider"]
        + list(tests),
        cwd=dest, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    failed = [l[len("FAILED "):].split(" - ")[0] for l in r.stdout.splitlines()
              if l.startswith("FAILED ")]
    if failed:
        return r.returncode == 1, failed[0]
    tail = r.stdout.strip().splitlines()
    return False, tail[-1] if tail else "rc %d" % r.returncode


def line(result, plant, detail=""):
    return "%-12s %-3s %-15s %s%s" % (result, plant.issue, plant.area, plant.bug,
                                      ("  " + detail) if detail else "")


def plant_one(root, dest, plant):
    """(killed, result line) of one bug: planted in a fresh copy, its tests run."""
    text, why = planted_text(root, plant)
    if text is None:
        return False, line("NOT PLANTED", plant, why)
    fresh(root, dest)
    with open(os.path.join(dest, plant.path), "w") as f:
        f.write(text)
    killed, first = run_tests(dest, plant.tests)
    return killed, line("KILLED" if killed else "SURVIVED", plant, first)


def check_one(root, plant):
    """(plantable, result line) without running anything."""
    text, why = planted_text(root, plant)
    return text is not None, line("ok" if text is not None else "NOT PLANTED", plant, why or "")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("words", nargs="*", help="issue, area, issue:area or words of a bug")
    ap.add_argument("--list", action="store_true", help="list the selected bugs, run nothing")
    ap.add_argument("--check", action="store_true", help="only check each bug can be planted")
    ap.add_argument("--root", default=ROOT, help="the project to copy (default: this one)")
    args = ap.parse_args(argv)
    plants = selected(args.words)
    if args.list:
        for p in plants:
            print("%-3s %-15s %-40s %s" % (p.issue, p.area, p.path, p.bug))
        print("%d bugs" % len(plants))
        return 0
    dest = os.path.join(tempfile.gettempdir(), "segformer-plant-%d" % os.getpid())
    bad, started = 0, time.time()
    try:
        for p in plants:
            ok, msg = check_one(args.root, p) if args.check else plant_one(args.root, dest, p)
            bad += not ok
            print(msg)
            sys.stdout.flush()
    finally:
        if os.path.isdir(dest):
            shutil.rmtree(dest)
    print("%d bugs, %d %s, %.0f s" % (len(plants), bad, "not plantable" if args.check else
                                      "not killed", time.time() - started))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
