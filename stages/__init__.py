"""Pipeline stages: each is a plain function from input paths plus its config slice to output paths.

stages/host/    needs torch + transformers (checkout, golden, onnx, precision); host only.
stages/device/  Python 3.6, no torch (engine, runtime_check, verify, infer, bench).
stages/common/  plumbing both wings import (config, layout, files, actions, doit compat)."""
