"""What infer and bench print: stage times in data-path order, a progress line that only a
terminal sees (a log gets no carriage returns, and every message starts on its own line),
OpenCV's own log lines silenced where we report the problem ourselves, and bench's summary
(one line per measurement, then what each part of the run cost)."""
import os
import sys

from stages.common.userpath import shown

# the data path, image -> tensor -> logits -> mask -> files; other stages follow, by name
STAGE_ORDER = ("read", "upload", "preprocess", "infer", "postprocess", "download", "overlay",
               "write", "total")


def in_data_path_order(names):
    rank = dict((n, i) for i, n in enumerate(STAGE_ORDER))
    return sorted(names, key=lambda n: (rank.get(n, len(STAGE_ORDER)), n))


def stage_times(timings, fmt="%s %.1f ms"):
    """'read 3.1 ms, preprocess 2.0 ms, ...' in data-path order."""
    return ", ".join(fmt % (k, timings[k]) for k in in_data_path_order(timings))


class Progress(object):
    """One line rewritten in place (carriage return) on a terminal; nothing when the output is
    a log or a pipe. end() closes the line, so whatever is printed next starts on its own."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = 0

    def update(self, text):
        if not self.tty:
            return
        self.stream.write("\r" + text + " " * max(0, self.width - len(text)))
        self.stream.flush()
        self.width = len(text)

    def end(self):
        if self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def quiet_opencv():
    """Silence OpenCV's own log lines (`[ WARN:0@0.243] global cap_v4l.cpp ...`) and FFmpeg's
    (`moov atom not found`): infer says in one sentence what could not be opened. The log level
    call differs by OpenCV version (4.1.1 on JetPack 4.6: cv2.setLogLevel, if any), so each is
    tried; the environment variables cover FFmpeg and an OpenCV not imported yet."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None and hasattr(logging, "setLogLevel"):
        logging.setLogLevel(getattr(logging, "LOG_LEVEL_SILENT", 0))
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(0)


def summary_lines(r):
    """The printed summary, one line per measurement, stages in data-path order."""
    p = r["pipeline"]
    lines = ["bench: %s, pre/post on the %s, %s, %d iterations after %d warm-up" % (
        r["runtime"]["backend"], r["runtime"]["pre_post"].upper(), shown(r["image"]),
        r["iterations"], r["warmup"])]
    lines += ["  %-12s p50 %8.2f  p90 %8.2f  p99 %8.2f ms" % (
        k, p[k]["p50"], p[k]["p90"], p[k]["p99"]) for k in in_data_path_order(
            [k for k in p if k != "fps"])]
    lines.append("  FPS (p50 of total): %.1f; loading the model (deserialize, buffers, kernels) "
                 "took %.0f ms" % (p["fps"], r["load_ms"]))
    lines += kernel_lines(r.get("kernels_vs_cpu")) + early_out_lines(r)
    st = r["stream"]
    lines.append("  stream (%d frames): sequential %.1f FPS, pipelined %.1f FPS (%.2fx), outputs "
                 "%s" % (st["pipelined"]["frames"], st["sequential"]["fps"],
                         st["pipelined"]["fps"], st["speedup"], same(st["identical"])))
    lines += trtexec_lines(r.get("trtexec"), p)
    lines.append(conditions_line(r["conditions"]))
    c = r.get("cpu_backends")
    if c:
        lines.append("  CPU: ONNX Runtime p50 %.1f ms vs PyTorch eager %.1f ms (%.2fx)" % (
            c["onnxruntime_ms"]["p50"], c["torch_eager_ms"]["p50"], c["onnxruntime_vs_torch"]))
    if r.get("fold"):
        lines.append("  " + r["fold"].get("summary", r["fold"].get("error", "")))
    if r.get("fold_engines"):
        lines.append("  " + r["fold_engines"].get("summary", r["fold_engines"].get("error", "")))
    return lines + [cost_line(r)]


def same(identical):
    return "identical" if identical else "DIFFER"


def kernel_lines(k):
    if not k:
        return []
    lines = ["  GPU vs CPU at %s, logits %s: preprocess %.1fx, postprocess %.1fx faster (with "
             "transfers)" % (k["image"], k["logits"], k["preprocess_speedup"],
                             k["postprocess_speedup"])]
    if "prepost_share_of_engine" in k:
        lines.append("  GPU pre+post kernels = %.1f%% of engine inference" % (
            100 * k["prepost_share_of_engine"]))
    return lines


def early_out_lines(r):
    k = r.get("kernels_vs_cpu") or {}
    cases = (("GPU", k.get("gpu_postprocess_early_vs_full")),
             ("GPU, golden logits at 128x128", k.get("gpu_postprocess_early_vs_full_realistic")),
             ("CPU", r.get("cpu_postprocess_early_vs_full")))
    return ["  post-processing on the %s, 1080p: full p50 %.3f ms, early-out %.3f ms (%.1fx), "
            "masks %s" % (where, e["full_ms"]["p50"], e["early_ms"]["p50"], e["speedup"],
                          same(e["identical"])) for where, e in cases if e]


def trtexec_lines(t, p):
    if t and "gpu_compute_median_ms" in t:
        return ["  trtexec --loadEngine (TensorRT's own timing): GPU compute median %.2f ms vs "
                "this runtime's infer p50 %.2f ms" % (t["gpu_compute_median_ms"],
                                                       p["infer"]["p50"])]
    return ["  trtexec cross-check failed: %s" % t.get("error")] if t else []


def conditions_line(cond):
    """Power mode, jetson_clocks and temperatures on a Jetson; elsewhere only that it is not."""
    if not cond.get("jetson"):
        return ("  conditions: not a Jetson (no power mode, jetson_clocks or board temperatures "
                "to record)")
    temps = cond.get("temperatures_c") or {}
    return "  conditions: %s, power mode %s, jetson_clocks %s, temperatures %s" % (
        cond.get("board") or "a Jetson", cond.get("power_mode") or "unknown",
        {True: "on", False: "off"}.get(cond.get("jetson_clocks"), "unknown"),
        ", ".join("%s %sC" % kv for kv in sorted(temps.items())) or "not readable")


COSTS = (("load", "loading the model"),
         ("pipeline", "stage times ({iterations} timed + {warmup} warm-up)"),
         ("kernels", "GPU vs CPU kernels"),
         ("cpu_post", "CPU post-processing ({cpu_post} timed + {cpu_post_warmup} warm-up)"),
         ("stream", "stream ({stream_frames} frames, sequential then pipelined)"),
         ("trtexec", "trtexec"),
         ("cpu_backends", "ONNX Runtime vs PyTorch ({cpu_compare} timed + {cpu_compare_warmup} "
                          "warm-up, loading PyTorch included)"),
         ("fold", "folded vs unfolded model ({fold} timed + {cpu_compare_warmup} warm-up)"),
         ("fold_engines", "folded vs unfolded engine ({fold} timed + {warmup} warm-up, a build "
                          "included when there was one)"))


def cost_line(r):
    """What each part of this run cost, so n= can be chosen (every part scales with n)."""
    plan, spent = r.get("plan", {}), r.get("seconds", {})
    return "  time spent: " + ", ".join("%s %.1f s" % (label.format(**plan), spent[name])
                                        for name, label in COSTS if name in spent and (
                                            name != "kernels" or r.get("kernels_vs_cpu")))
