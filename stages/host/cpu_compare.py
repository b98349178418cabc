"""Host-only part of `doit bench`: ONNX Runtime vs PyTorch eager on the CPU, same model, same
input, alternated runs. The model is loaded through the golden link's loader, so the checkout's
validated weights (and its pickle policy) are the only way in."""
from runtime.golden import load_case, read_index
from stages.common import files
from stages.device.bench import percentiles, timed
from stages.host.golden import load_reference


def cpu_backends(cfg, layout, n, warmup):
    import onnxruntime as ort
    import torch
    tensor = load_case(read_index(layout.golden_json)[0])[0]
    reference = load_reference(cfg["model"]["path"], files.read_json(layout.manifest),
                               cfg["model"]["allow_pickle"])
    sess = ort.InferenceSession(layout.onnx_model, providers=["CPUExecutionProvider"])
    x = torch.from_numpy(tensor)
    ort_ms, torch_ms = [], []
    with torch.no_grad():
        for i in range(warmup + n):
            a = timed(lambda: sess.run(None, {"pixel_values": tensor}), 1, 0)[0]
            b = timed(lambda: reference.logits(x), 1, 0)[0]
            if i >= warmup:
                ort_ms.append(a)
                torch_ms.append(b)
    r = {"onnxruntime_ms": percentiles(ort_ms), "torch_eager_ms": percentiles(torch_ms),
         "threads": torch.get_num_threads()}
    r["onnxruntime_vs_torch"] = r["torch_eager_ms"]["p50"] / r["onnxruntime_ms"]["p50"]
    return r
