"""doctor.py's decisions, in process: what it makes of a machine (context: Jetson or not, role,
links, the next link), the project rows (model, engines, kernels), which FAILs block, the report
and the error `doit doctor` ends with, and the summary bench records. Fake machines
(tests/fixtures/jetson) and test_bite_doctor's small model.onnx."""
import json
import os

from runtime.kernels import KERNELS, cubin
from stages.common.files import sha256_file
from stages.device import doctor
from stages.device.doctor_checks import row
from test_bite_doctor import b4  # noqa: F401 (fixture)
from test_bite_doctor_rows import DESKTOP, HOST, NANO, ORIN, ctx_of, named, says, tree

check_onnx = named("model", doctor.check_onnx)
check_engines = named("engines", doctor.check_engines)
check_kernels = named("kernels", doctor.check_kernels)

NANO_SLUG = "nvidia-tegra-x1_sm53_cuda10.2_trt8.2.1.8_l4t32.7.1"
OLD_NANO_SLUG = "nvidia-tegra-x1_sm53_cuda10.2_trt8.0.1.6_l4t32.6.1"
ORIN_SLUG = "orin_sm87_cuda11.4_trt8.5.2.2_l4t35.3.1"


def engine_at(layout, slug, tensorrt=None):
    folder = layout.engine_dir(slug)
    os.makedirs(folder)
    open(os.path.join(folder, "model.engine"), "w").close()
    if tensorrt:
        with open(os.path.join(folder, "model.json"), "w") as f:
            json.dump({"engine": {"tensorrt": tensorrt}}, f)


def kernels_at(layout, sm, names=KERNELS):
    os.makedirs(layout.kernels_dir(sm), exist_ok=True)
    for name in names:
        open(cubin(layout.kernels_dir(sm), name), "w").close()


def test_a_jetson_is_known_by_its_l4t_or_by_its_board_name(tmp_path):
    nano = ctx_of(NANO)
    assert nano["jetson"] and nano["l4t"] == "32.7.1" and nano["jetpack"]["jetpack"] == "4.6.1"
    assert nano["board"] == "NVIDIA Jetson Nano Developer Kit" and nano["role"] == "device"
    assert nano["fp"] == {"gpu": "NVIDIA Tegra X1", "compute_capability": "5.3", "cuda": "10.2",
                          "tensorrt": "8.2.1.8", "l4t": "32.7.1"}
    assert nano["slug"] == NANO_SLUG and nano["sm"] == "sm_53"
    root = tree(NANO, tmp_path)
    os.remove(os.path.join(root, "etc", "nv_tegra_release"))
    ctx = ctx_of(NANO, root, gpu=None, tensorrt=None)  # the board's name alone
    assert ctx["jetson"] and ctx["l4t"] is None and ctx["jetpack"] is None
    assert ctx["sm"] == "sm_53" and ctx["role"] == "device"  # from the board's name
    with open(os.path.join(root, "proc", "device-tree", "model"), "w") as f:
        f.write("FriendlyElec NanoPi R4S")  # 'nano' in its name, but no Jetson and no GPU
    ctx = ctx_of(NANO, root, gpu=None, tensorrt=None)
    assert not ctx["jetson"] and ctx["sm"] is None and ctx["role"] == "host"


def test_without_an_env_the_context_probes_this_python(monkeypatch):
    env = ctx_of(HOST)["env"]
    monkeypatch.setattr(doctor, "probe_env", lambda: env)
    assert doctor.context(None, None, ctx_of(HOST)["root"])["env"] is env


def test_roles_and_the_links_each_runs():
    for name, env, role, links in [
            (NANO, {}, "device", ["build_engine", "runtime_check", "verify"]),
            (DESKTOP, {}, "device", ["build_engine", "runtime_check", "verify"]),
            (DESKTOP, {"tensorrt": None}, "gpu", ["runtime_check", "verify"]),
            (HOST, {}, "host", ["verify"]), (HOST, {"tensorrt": "10.3.0"}, "device",
                                             ["build_engine", "runtime_check", "verify"])]:
        ctx = ctx_of(name, **env)
        assert (ctx["role"], ctx["links"]) == (role, links), name
    assert ctx_of(DESKTOP)["sm"] == "sm_90" and ctx_of(HOST)["sm"] is None


def test_the_workspace_and_the_onnx_target_come_from_the_project(b4):  # noqa: F811
    root, env = ctx_of(NANO)["root"], ctx_of(NANO)["env"]
    assert doctor.context(None, None, root, env)["workspace_mb"] == 1024
    assert doctor.context(None, {}, root, env)["workspace_mb"] == 1024
    assert doctor.context(None, {"workspace_mb": 2048}, root, env)["workspace_mb"] == 2048
    assert ctx_of(NANO, layout=b4)["onnx_target"] is None  # no report.json yet
    report = os.path.join(b4.onnx_dir, "report.json")
    for text, target in [('{"gate": {"target_tensorrt": "8.2"}}', "8.2"), ("{", None),
                         ('{"gate": {}}', None), ('{"gate": null}', None), ("[]", None)]:
        with open(report, "w") as f:
            f.write(text)
        assert ctx_of(NANO, layout=b4)["onnx_target"] == target, text
        assert ctx_of(NANO)["onnx_target"] is None  # no project, nothing read


def test_the_next_link_on_the_device_follows_what_is_built(b4):  # noqa: F811
    ctx = ctx_of(NANO, layout=b4)
    assert (ctx["engine_here"], ctx["kernels_here"], ctx["next"]) == (False, False,
                                                                      "build_engine")
    kernels_at(b4, "sm_53", KERNELS[:-1])  # one kernel missing: not compiled
    assert not ctx_of(NANO, layout=b4)["kernels_here"]
    engine_at(b4, NANO_SLUG)
    ctx = ctx_of(NANO, layout=b4)
    assert (ctx["engine_here"], ctx["kernels_here"], ctx["next"]) == (True, False,
                                                                      "runtime_check")
    kernels_at(b4, "sm_53")
    ctx = ctx_of(NANO, layout=b4)
    assert (ctx["engine_here"], ctx["kernels_here"], ctx["next"]) == (True, True, "verify")
    assert not ctx_of(NANO, layout=b4, tensorrt=None)["engine_here"]  # no TensorRT to load it
    assert ctx_of(NANO)["next"] == "build_engine" and not ctx_of(NANO)["kernels_here"]


def test_the_next_link_on_a_gpu_and_on_the_host(b4):  # noqa: F811
    assert ctx_of(DESKTOP, layout=b4, tensorrt=None)["next"] == "runtime_check"
    kernels_at(b4, "sm_90")
    assert ctx_of(DESKTOP, layout=b4, tensorrt=None)["next"] == "verify"
    assert ctx_of(HOST, layout=b4)["next"] == "verify"  # model.onnx is there
    assert ctx_of(HOST, layout=b4, host=False)["next"] == "verify"
    os.remove(b4.onnx_model)
    assert ctx_of(HOST, layout=b4)["next"] == "onnx"
    assert ctx_of(HOST, layout=b4, host=False)["next"] == "verify"  # no torch: nothing to export
    assert ctx_of(HOST)["next"] == "onnx"


def test_the_model_row_checks_model_onnx_against_its_sidecar(b4):  # noqa: F811
    ctx = ctx_of(NANO, layout=b4)
    sha = sha256_file(b4.onnx_model)
    detail = "%s, 3.1 MB, sha256 %s" % (b4.onnx_model, sha[:16])
    says(check_onnx(ctx), "ok", detail + " (matches model.json)")
    fix = "copy model.onnx and model.json from the same doit onnx run (or bundle)"
    for sidecar in ['{"onnx_sha256": "%s"}' % sha[::-1], "{", "{}"]:
        with open(b4.onnx_sidecar, "w") as f:
            f.write(sidecar)
        says(check_onnx(ctx), "FAIL", detail + ", which %s does not record" %
             b4.onnx_sidecar, fix, ctx["links"])
    os.remove(b4.onnx_sidecar)
    assert check_onnx(ctx)["status"] == "FAIL"


def test_the_model_size_is_in_megabytes_of_a_million_bytes(b4):  # noqa: F811
    with open(b4.onnx_model, "wb") as f:
        f.truncate(1050000)
    with open(b4.onnx_sidecar, "w") as f:
        json.dump({"onnx_sha256": sha256_file(b4.onnx_model)}, f)
    assert ", 1.1 MB, sha256 " in check_onnx(ctx_of(NANO, layout=b4))["detail"]


def test_a_missing_model_is_made_on_the_host_and_fetched_on_the_device(b4):  # noqa: F811
    os.remove(b4.onnx_model)
    fix = ("on the host run doit && doit bundle, copy artifacts/bundle/segformer-device-bundle"
           ".tar.gz here and untar it")
    for name, env in [(NANO, {}), (HOST, {"host": False}), (DESKTOP, {"tensorrt": None})]:
        ctx = ctx_of(name, layout=b4, **env)
        says(check_onnx(ctx), "FAIL", "%s is missing" % b4.onnx_model, fix, ctx["links"])
    says(check_onnx(ctx_of(HOST, layout=b4)), "ok",
         "%s not exported yet: plain doit makes it" % b4.onnx_model)


def test_engines_of_other_devices_are_listed_with_their_tensorrt(b4):  # noqa: F811
    says(check_engines(ctx_of(NANO, layout=b4)), "ok",
         "this device (%s): none yet (doit build_engine); for other devices: none" % NANO_SLUG)
    engine_at(b4, ORIN_SLUG, "8.5.2.2")
    os.makedirs(b4.engine_dir("empty_folder"))  # no model.engine: not an engine
    says(check_engines(ctx_of(NANO, layout=b4)), "ok", "this device (%s): none yet (doit "
         "build_engine); for other devices: %s (TensorRT 8.5.2.2)" % (NANO_SLUG, ORIN_SLUG))
    says(check_engines(ctx_of(HOST, layout=b4)), "ok", "no TensorRT here to build or "
         "load one; present: %s (TensorRT 8.5.2.2)" % ORIN_SLUG)
    engine_at(b4, NANO_SLUG)
    says(check_engines(ctx_of(NANO, layout=b4)), "ok", "this device (%s): built; for "
         "other devices: %s (TensorRT 8.5.2.2)" % (NANO_SLUG, ORIN_SLUG))


def test_an_engine_of_this_gpu_from_before_an_upgrade_warns_until_one_is_built(b4):  # noqa: F811
    engine_at(b4, ORIN_SLUG, "8.5.2.2")
    engine_at(b4, OLD_NANO_SLUG)  # no sidecar: its TensorRT is unknown
    with open(os.path.join(b4.engine_dir(OLD_NANO_SLUG), "model.json"), "w") as f:
        f.write('{"engine": {}}')
    listed = "%s (TensorRT unknown), %s (TensorRT 8.5.2.2)" % (OLD_NANO_SLUG, ORIN_SLUG)
    says(check_engines(ctx_of(NANO, layout=b4)), "warn", "this device (%s): none yet "
         "(doit build_engine); for other devices: %s: built here before an upgrade, they will "
         "not load" % (NANO_SLUG, listed), "doit build_engine builds one for this TensorRT/L4T")
    engine_at(b4, NANO_SLUG)
    assert check_engines(ctx_of(NANO, layout=b4))["status"] == "ok"
    says(check_engines(ctx_of(HOST, layout=b4)), "ok", "no TensorRT here to build or load "
         "one; present: %s (TensorRT unknown), %s (TensorRT unknown), %s (TensorRT 8.5.2.2)"
         % (OLD_NANO_SLUG, NANO_SLUG, ORIN_SLUG))  # sorted by name


def test_the_kernels_row(b4):  # noqa: F811
    says(check_kernels(ctx_of(HOST, layout=b4)), "ok", "no GPU here, no kernels to compile")
    folder = b4.kernels_dir("sm_87")
    says(check_kernels(ctx_of(ORIN, layout=b4)), "ok",
         folder + ": not compiled yet (doit runtime_check compiles them)")
    kernels_at(b4, "sm_87")
    says(check_kernels(ctx_of(ORIN, layout=b4)), "ok",
         folder + ": preprocess, postprocess, overlay.cubin")


def test_the_rows_of_a_machine_and_of_a_project(b4):  # noqa: F811
    names = ["board", "tensorrt", "cuda", "python", "numpy", "doit", "opencv", "nvcc", "memory",
             "power", "clocks"]
    assert [r["name"] for r in doctor.examine(ctx_of(NANO))] == names
    assert [r["name"] for r in doctor.examine(ctx_of(NANO, layout=b4))] == names + [
        "model", "engines", "kernels"]


def test_only_a_fail_that_names_the_next_link_blocks():
    ctx = {"next": "runtime_check"}
    rows = [row("a", "FAIL", "x", "f", ["build_engine"]), row("b", "warn", "y", "g",
                                                              ["runtime_check"]),
            row("c", "FAIL", "z", "h", ["build_engine", "runtime_check"]), row("d", "ok", "w")]
    assert doctor.blockers(rows, ctx) == [rows[2]]
    assert doctor.blockers(rows, {"next": "verify"}) == []
