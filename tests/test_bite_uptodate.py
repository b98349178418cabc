"""The doit links' up-to-date logic, table-driven: dodo.py's own task declarations (file_dep,
targets, uptodate) run through doit in-process, with each link's work replaced by a stub that
writes fresh bytes to its outputs. Each row changes one declared input or setting; exactly the
links that depend on it (directly or through an upstream link's new output) must rerun."""

import copy
import importlib.util
import itertools
import json
import os

import pytest

from conftest import ROOT

CHAIN = ("checkout", "golden", "onnx", "precision", "build_engine", "runtime_check", "verify")
ALL = set(CHAIN)
AFTER_ENGINE = {"build_engine", "runtime_check", "verify"}
FP = {
    "gpu": "NVIDIA Tegra X1",
    "compute_capability": "5.3",
    "cuda": "10.2",
    "tensorrt": "8.2.1.8",
    "l4t": "32.7.1",
    "memory_mb": 3956,
}
_TOKENS = itertools.count()


class Chain(object):
    """dodo.py loaded on a private config (model, images, artifacts and kernels in tmp)."""

    def __init__(self, tmp, monkeypatch):
        from runtime import device
        from stages.common import actions, config, doitcompat

        self.tmp, self.ran = tmp, []
        model = tmp / "model"
        model.mkdir()
        for name in ("config.json", "preprocessor_config.json", "model.safetensors"):
            (model / name).write_text(name)
        images = [tmp / "a.png", tmp / "b.png"]
        for p in images:
            p.write_bytes(b"image " + p.name.encode())
        (tmp / "kernels").mkdir()
        self.kernels = [str(tmp / "kernels" / (k + ".cu")) for k in ("preprocess", "postprocess")]
        for k in self.kernels:
            open(k, "w").write("// kernel")
        cfg = copy.deepcopy(config.load(os.path.join(ROOT, "pipeline.yaml")))
        cfg["artifacts"], cfg["model"]["path"] = str(tmp / "artifacts"), str(model)
        cfg["golden"]["images"] = [str(p) for p in images]
        cfg["verify"]["backend"] = "auto"
        self.fp = dict(FP)
        monkeypatch.setitem(device._CACHE, "fp", self.fp)
        monkeypatch.setattr(config, "load", lambda *a, **k: cfg)
        monkeypatch.setattr(doitcompat, "cmdline_vars", lambda *a, **k: {})
        # dodo.py's process-wide hooks (excepthook, artifacts lock) stay out of the test process
        monkeypatch.setattr(actions, "install_handlers", lambda: None, raising=False)
        monkeypatch.setattr(
            actions,
            "prepare_artifacts",
            lambda a, argv=None: os.makedirs(a, exist_ok=True),
            raising=False,
        )
        spec = importlib.util.spec_from_file_location(
            "dodo_under_test", os.path.join(ROOT, "dodo.py")
        )
        self.dodo = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.dodo)
        self.dodo.HOST = self.dodo.DEVICE = self.dodo.CUDA = True
        monkeypatch.setattr(self.dodo, "kernel_sources", lambda: list(self.kernels))
        self.cfg, self.layout = self.dodo.CFG, self.dodo.L

    def stub(self, name, targets):
        def action():
            self.ran.append(name)
            token = ("%s %d" % (name, next(_TOKENS))).encode()
            for t in targets:
                os.makedirs(os.path.dirname(t), exist_ok=True)
                with open(t, "wb") as f:
                    f.write(token)
            if name == "build_engine":
                self.write_engine(token)

        return action

    def write_engine(self, plan):
        from runtime.sidecar import FORMAT
        from stages.device import settings

        meta = {
            "format": FORMAT,
            "labels": [],
            "palette": [],
            "input": {},
            "output": {},
            "preprocess": {},
            "onnx_sha256": "-",
        }
        settings.engine_folder(self.layout).write(
            plan,
            meta,
            dict(self.cfg["engine"]),
            settings.identity(self.fp),
            {},
            1.0,
            self.fp["tensorrt"],
        )

    def namespace(self):
        ns = {
            "DOIT_CONFIG": {
                "backend": "json",
                "verbosity": 0,
                "dep_file": os.path.join(self.cfg["artifacts"], ".doit.json"),
            }
        }
        for name in CHAIN:

            def make(name=name):
                task = getattr(self.dodo, "task_" + name)()
                task["actions"] = [self.stub(name, task.get("targets", []))]
                return task

            ns["task_" + name] = make
        return ns

    def doit(self, links=CHAIN):
        """Run the links; return the set of links that ran."""
        from doit.cmd_base import ModuleTaskLoader
        from doit.doit_cmd import DoitMain

        self.ran = []
        code = DoitMain(ModuleTaskLoader(self.namespace()), extra_config={"GLOBAL": {}}).run(
            list(links)
        )
        assert code == 0
        return set(self.ran)

    def engine(self):
        from stages.device import settings

        return settings.engine_folder(self.layout)


def _append(path, text=b" changed"):
    with open(path, "ab") as f:
        f.write(text)


def _touch(path):
    st = os.stat(path)
    os.utime(path, (st.st_atime + 10, st.st_mtime + 10))


def _rewrite_recorded_sha(c):
    """The engine rebuilt by another doit run (its sidecar records another sha256)."""
    folder = c.engine()
    meta = json.load(open(folder.sidecar))
    meta["engine"]["sha256"] = "0" * 64
    open(folder.sidecar, "w").write(json.dumps(meta))


def _set(*path):
    def change(c):
        node = c.cfg
        for k in path[:-2]:
            node = node[k]
        node[path[-2]] = path[-1]

    return change


# (what changes, how, the links that must rerun)
ROWS = [
    ("a model file", lambda c: _append(os.path.join(c.cfg["model"]["path"], "config.json")), ALL),
    (
        "the weights",
        lambda c: _append(os.path.join(c.cfg["model"]["path"], "model.safetensors")),
        ALL,
    ),
    ("model config section", _set("model", "allow_pickle", True), ALL),
    ("a golden image", lambda c: _append(c.cfg["golden"]["images"][1]), ALL - {"checkout"}),
    ("golden config section", _set("golden", "overlay_alpha", 0.25), ALL - {"checkout"}),
    ("onnx config section", _set("onnx", "opset", 14), {"onnx", "precision"} | AFTER_ENGINE),
    ("onnx parity limit", _set("onnx", "max_abs", 0.5), {"onnx", "precision"} | AFTER_ENGINE),
    # a damaged or replaced output: its own link runs again (stages/common/intact.py)
    (
        "model.onnx replaced",
        lambda c: _append(c.layout.onnx_model),
        {"onnx", "precision"} | AFTER_ENGINE,
    ),
    (
        "onnx sidecar replaced",
        lambda c: _append(c.layout.onnx_sidecar),
        {"onnx", "precision"} | AFTER_ENGINE,
    ),
    ("a golden mask", lambda c: _append(c.layout.golden_targets()[3]), ALL - {"checkout"}),
    ("golden.json", lambda c: _append(c.layout.golden_json), ALL - {"checkout"}),
    ("the manifest", lambda c: _append(c.layout.manifest), ALL),
    ("the verify report", lambda c: _append(c.layout.verify_dir + "/report.json"), {"verify"}),
    ("precision margin", _set("precision", "margin", 8.0), {"precision"} | AFTER_ENGINE),
    ("verify fp16 limits", _set("verify", "fp16", "miou", 0.5), {"precision"} | AFTER_ENGINE),
    ("verify fp32 limits", _set("verify", "fp32", "miou", 0.5), {"verify"}),
    ("verify backend", _set("verify", "backend", "onnxruntime"), {"verify"}),
    ("engine workspace", _set("engine", "workspace_mb", 2048), AFTER_ENGINE),
    ("engine precision", _set("engine", "precision", "fp32"), {"precision"} | AFTER_ENGINE),
    ("device CUDA", lambda c: c.fp.update(cuda="11.4"), AFTER_ENGINE),
    ("device TensorRT", lambda c: c.fp.update(tensorrt="8.5.2"), AFTER_ENGINE),
    ("device GPU, same folder name", lambda c: c.fp.update(gpu="NVIDIA-Tegra-X1"), AFTER_ENGINE),
    ("engine file deleted", lambda c: os.remove(c.engine().engine), AFTER_ENGINE),
    ("engine rebuilt elsewhere", _rewrite_recorded_sha, {"runtime_check", "verify"}),
    ("a CUDA kernel source", lambda c: _append(c.kernels[1]), {"runtime_check"}),
    ("device memory (not identity)", lambda c: c.fp.update(memory_mb=1024), set()),
    (
        "model file touched, same bytes",
        lambda c: _touch(os.path.join(c.cfg["model"]["path"], "config.json")),
        set(),
    ),
    ("a golden image touched", lambda c: _touch(c.cfg["golden"]["images"][0]), set()),
]


@pytest.mark.parametrize("what,change,expected", ROWS, ids=[r[0] for r in ROWS])
def test_each_link_reruns_when_one_of_its_inputs_changes_and_only_then(
    tmp_path, monkeypatch, what, change, expected
):
    c = Chain(tmp_path, monkeypatch)
    assert c.doit() == ALL
    assert c.doit() == set()
    change(c)
    assert c.doit() == expected, what
    assert c.doit() == set(), what


def test_verify_on_onnxruntime_ignores_a_rebuilt_engine(tmp_path, monkeypatch):
    c = Chain(tmp_path, monkeypatch)
    c.cfg["verify"]["backend"] = "onnxruntime"
    assert c.doit() == ALL
    _rewrite_recorded_sha(c)
    assert c.doit() == {"runtime_check"}


def test_verify_on_tensorrt_follows_a_rebuilt_engine(tmp_path, monkeypatch):
    c = Chain(tmp_path, monkeypatch)
    c.cfg["verify"]["backend"] = "tensorrt"
    assert c.doit() == ALL
    _rewrite_recorded_sha(c)
    assert c.doit() == {"runtime_check", "verify"}
    open(c.engine().sidecar, "w").write("{not json")  # an unreadable sidecar is a change too
    assert c.doit() == {"runtime_check", "verify"}


DEVICE_LINKS = ("build_engine", "runtime_check", "verify")


@pytest.mark.parametrize(
    "what,change,expected",
    [
        ("model.onnx from a new bundle", lambda c: _append(c.layout.onnx_model), set(DEVICE_LINKS)),
        (
            "its sidecar from a new bundle",
            lambda c: _append(c.layout.onnx_sidecar),
            set(DEVICE_LINKS),
        ),
        (
            "golden.json from a new bundle",
            lambda c: _append(c.layout.golden_json),
            {"runtime_check", "verify"},
        ),
        ("a golden mask", lambda c: _append(c.layout.golden_targets()[3]), {"verify"}),
    ],
    ids=["model.onnx", "sidecar", "golden.json", "golden mask"],
)
def test_on_the_device_verify_follows_the_bundled_files(
    tmp_path, monkeypatch, what, change, expected
):
    """No host links on the device: the bundle's files change under the device links (verify on
    ONNX Runtime, so only its own file dependencies can make it rerun)."""
    c = Chain(tmp_path, monkeypatch)
    c.cfg["verify"]["backend"] = "onnxruntime"
    assert c.doit() == ALL
    c.dodo.HOST = False
    assert c.doit(DEVICE_LINKS) == set()
    change(c)
    assert c.doit(DEVICE_LINKS) == expected, what


def test_without_tensorrt_no_engine_counts_as_built(tmp_path, monkeypatch):
    from stages.device import settings

    c = Chain(tmp_path, monkeypatch)
    assert c.doit() == ALL
    assert settings.built_engine(c.layout) is not None
    c.fp.update(tensorrt=None)
    assert settings.built_engine(c.layout) is None
    assert settings.verify_settings(c.cfg, c.layout, "auto")["engine_sha256"] is None


def test_settings_say_why_a_link_reruns(tmp_path, monkeypatch):
    from stages.common.uptodate import settings_changed

    check = settings_changed("engine settings", lambda: {"workspace_mb": 1024, "precision": "fp16"})
    assert check(None, {}) is False  # never ran: not up to date
    assert (
        repr(check) == 'engine settings changed (now {"precision": "fp16", "workspace_mb": 1024})'
    )


def test_refusals_are_device_errors_naming_the_task():
    from stages.common.errors import DeviceError
    from stages.device import settings

    with pytest.raises(DeviceError) as e:
        settings.refuse("a sentence.")
    assert str(e.value) == "a sentence."
    with pytest.raises(DeviceError) as e:
        settings.refuse_cuda("runtime_check")
    assert str(e.value).startswith("'doit runtime_check' needs a CUDA GPU with pycuda")
    with pytest.raises(DeviceError) as e:
        settings.refuse_engine()
    assert "doit build_engine" in str(e.value) and "no TensorRT" in str(e.value)
