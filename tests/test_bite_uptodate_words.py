"""What `doit info TASK` says about an up-to-date check, and a build time the sidecar lacks.

doit prints each uptodate entry with str() when it is false: these are the sentences a user reads
to learn why a task reruns (issue 25: the uptodate group's `__str__` had no test)."""
import json

import pytest

from runtime.engine_folder import EngineFolder
from tests.test_bite_fingerprint import HERE, built_folder


def _checks():
    # imported here, not at the top: importing doit binds its default output stream to the
    # sys.stdout of that moment, and under mutmut a later pytest session would write to a
    # closed capture (test_bite_uptodate runs doit in this process)
    from stages.common import uptodate

    return uptodate.config_changed, uptodate.Check


def test_config_changed_names_the_settings_it_watches_in_order():
    config_changed, _ = _checks()
    check = config_changed({"onnx": {"opset": 17}, "checkout": {"model": "m"}})
    words = ("its settings (checkout, onnx) changed since its last successful run, "
             "or it has not run yet")
    assert str(check) == words
    assert repr(check) == words


def test_config_changed_over_text_names_the_text():
    config_changed, _ = _checks()
    assert str(config_changed("opset=17")) == (
        "its settings (opset=17) changed since its last successful run, or it has not run yet")


def test_a_check_says_its_reason_as_given_or_as_computed_when_printed():
    _, Check = _checks()
    asked = []

    def reason():
        asked.append(1)
        return "the engine was built for another GPU"

    fixed, computed = Check("it runs every time"), Check(reason, test=lambda: 1)
    assert str(fixed) == repr(fixed) == "it runs every time"
    assert asked == []  # computed only when printed
    assert str(computed) == "the engine was built for another GPU" and asked == [1]
    assert fixed() is False and computed() is True


@pytest.mark.parametrize("recorded", [None, "12.5", [3], {"s": 1}])
def test_a_build_time_that_is_not_a_number_is_no_estimate(tmp_path, recorded):
    folder = built_folder(tmp_path, HERE)
    with open(folder.sidecar) as f:
        meta = json.load(f)
    meta["engine"]["build_seconds"] = recorded
    with open(folder.sidecar, "w") as f:
        json.dump(meta, f)
    assert EngineFolder(folder.path).previous_build_seconds() is None
