"""tools/nano_install_check.py's reading of requirements-device.txt for the Nano (offline; the
download itself runs in .ci/run)."""
import importlib.util
import os

from conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "nano_install_check", os.path.join(ROOT, "tools", "nano_install_check.py"))
nic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nic)


def test_requirements_are_read_for_python_3_6_on_aarch64(tmp_path):
    keep, pycuda = nic.split_requirements(os.path.join(ROOT, "requirements-device.txt"))
    assert pycuda == "pycuda<=2022.1"
    assert "numpy==1.19.4" in keep and "doit==0.34.2" in keep and "pillow<=8.4.0" in keep
    assert not any(k.startswith("pycuda") for k in keep)
    assert len([k for k in keep if k.startswith("numpy")]) == 1
    req = tmp_path / "r.txt"
    req.write_text('numpy>=1.24; python_version >= "3.8"\npycuda==2021.1; python_version < "3.8"\n'
                   'pyyaml  # any\n')
    assert nic.split_requirements(str(req)) == (["pyyaml"], "pycuda==2021.1")


def test_wheel_tags():
    assert nic.wheel_tags("numpy-1.19.4-cp36-cp36m-manylinux2014_aarch64.whl") == \
        "cp36-cp36m-manylinux2014_aarch64"
    assert nic.wheel_tags("doit-0.34.2-py3-none-any.whl").endswith("-none-any")
