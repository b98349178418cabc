"""doit bench with bench.compare_fold (issue 22): the folded and the unfolded graph as two engines,
built by the project's builder and timed side by side, through the TensorRT test double
(tests/doubles). This exercises our use of the documented API; it is not a test of TensorRT."""
import json
import os
import tarfile

import pytest

from conftest import PYCUDA_DOUBLE, TRT_DOUBLE, doit

pytestmark = pytest.mark.host
DOUBLES = (TRT_DOUBLE, PYCUDA_DOUBLE)
ENV = {"TRT_DOUBLE_API": "10"}  # strongly typed: the other graph's mixed fp16 version is built


def bench(project, *args):
    code, out = doit(project, "bench", "n=1", "cpu=0", "backend=tensorrt", *args, env=ENV,
                     doubles=DOUBLES)
    assert code == 0, out
    folder = os.path.join(project, "artifacts", "bench")
    name = [f for f in os.listdir(folder) if f.endswith(".json")][0]
    with open(os.path.join(folder, name)) as f:
        return json.load(f), out


def test_compare_fold_times_both_engines_and_says_what_is_missing(project):
    code, out = doit(project, "build_engine", env=ENV, doubles=DOUBLES)
    assert code == 0, out
    main = os.path.join(project, "artifacts", "engine")
    main = os.path.join(main, os.listdir(main)[0], "model.engine")
    stamp = os.path.getmtime(main)
    code, out = doit(project, "bundle", "compare_fold=1")
    assert code == 0, out
    fold = os.path.join(project, "artifacts", "bench", "fold")
    shipped = ["model.unfolded.onnx", "model.unfolded.json", "model.unfolded.mixed.onnx"]
    bundle = os.path.join(project, "artifacts", "bundle")
    with tarfile.open(os.path.join(bundle, os.listdir(bundle)[0])) as tar:
        names = tar.getnames()
    for name in shipped:
        assert "segformer-trt/artifacts/bench/fold/" + name in names, names
    r, out = bench(project)
    assert "fold_engines" not in r  # off by default
    r, out = bench(project, "compare_fold=1")
    e = r["fold_engines"]
    assert sorted(e["engines"]) == ["folded", "unfolded"] and e["model_onnx_is"] == "folded"
    assert all(row["infer_ms"]["n"] == 5 for row in e["engines"].values())
    assert e["mac_ratio"] >= 1.9 and e["macs"]["unfolded"] > e["macs"]["folded"]
    assert e["speedup"] > 0 and "Double GPU" in e["device"] and "TensorRT" in e["device"]
    assert "bench/fold/engine-" in e["engines"]["unfolded"]["engine"]
    assert "decode-head fold on Double GPU" in out
    assert os.path.getmtime(main) == stamp  # the main engine is never rebuilt or overwritten
    other = os.path.join(project, e["engines"]["unfolded"]["engine"])
    other_stamp = os.path.getmtime(other)
    r, out = bench(project, "compare_fold=1")
    assert os.path.getmtime(other) == other_stamp and "fold_engines" in r  # built once
    assert "bench: building the unfolded engine" not in out
    os.remove(os.path.join(fold, "model.unfolded.mixed.onnx"))
    r, out = bench(project, "compare_fold=1")
    error = r["fold_engines"]["error"]
    assert error.count(". ") == 0 and error.endswith(".")
    assert "model.unfolded.mixed.onnx is missing" in error and "doit bundle" in error
    assert error in out and "Traceback" not in out
