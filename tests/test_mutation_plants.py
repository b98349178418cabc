"""The planted example bugs (tools/mutation_plants.py) stay plantable as the code moves: each one's
original text occurs exactly once in its file and its test files exist. The replay itself
(`python tools/mutation_examples.py`, about 5 minutes) is run by hand; this keeps its table from
rotting unseen between replays."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import mutation_examples  # noqa: E402
from mutation_plants import PLANTS  # noqa: E402


@pytest.mark.parametrize("plant", PLANTS, ids=["%s-%s-%d" % (p.issue, p.area, i)
                                               for i, p in enumerate(PLANTS)])
def test_each_planted_bug_can_still_be_planted(plant):
    text, why = mutation_examples.planted_text(ROOT, plant)
    assert text is not None, "%s: %s (rewrite its row in tools/mutation_plants.py)" % (
        plant.bug, why)
    assert plant.new != plant.old


def test_a_bug_whose_code_moved_is_reported_not_plantable(tmp_path):
    plant = PLANTS[0]
    os.makedirs(str(tmp_path / os.path.dirname(plant.path)))
    with open(str(tmp_path / plant.path), "w") as f:
        f.write("# the code moved\n")
    for t in plant.tests:
        path = tmp_path / t.split("::")[0]
        os.makedirs(str(path.parent), exist_ok=True)
        path.write_text("")
    text, why = mutation_examples.planted_text(str(tmp_path), plant)
    assert text is None and "found 0 times" in why
