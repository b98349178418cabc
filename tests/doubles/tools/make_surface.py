"""Regenerates ../tensorrt_double/surface.json from parse_bindings.py's output.
Usage: python make_surface.py WORKDIR (holding parsed.json and behaviour.json; the result is
written there as trt_surface.json). TRT_MIRROR: a git mirror of NVIDIA/TensorRT."""
import json
import os
import sys
WORK = sys.argv[1] if len(sys.argv) > 1 else "."
P = json.load(open(os.path.join(WORK, "parsed.json")))
T = os.environ.get("TRT_MIRROR", "TensorRT.git")
COMMITS = {"8.0.1": "eb5de99b523c76c2f3ae997855ad86d3a1e86a31",
           "8.2.1": "6f38570b74066ef464744bc789f8512191f1cbc0",
           "8.4.3": "87f3394404ff9f9ec92c906cd4c39b5562aea42e",
           "8.5.1": "1d6bf36034bb07fc88d924ebf5d34d358298e545",
           "8.5.3": "b0c259a749aab1486ed3b4458e7176555b003497",
           "v8.6.1": "a25ca8bba2a164179046afc2f5d7f478e280f8c0",
           "v10.0.0": "28733f0fdccde2967fed395b06ca491af3a561a9",
           "v10.16": "52399f555c2f80cb690a4a558b604e1a5f227e7c",
           "v11.0": "771d8efdf7f9d7b1eeb0864eb05d4dd8a7755bb5",
           "v11.1": "82d1dca801c8318a5605399d5240780d0679e4e1"}

# fact name -> (parsed class, member or None for the class itself)
F = []
def add(cls, *members, alias=None):
    for m in members:
        F.append(((alias or cls) + ("." + m if m else ""), cls, m))
add("<module>", "nptype", "__version__", "float32", "float16", "bfloat16", "int8", "int32", "int64",
    "bool", "uint8", "fp8", "int4", "fp4", "e8m0", "get_plugin_registry", "init_libnvinfer_plugins",
    alias="trt")
add("ILogger", None, "log", "INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")
add("ILogger.Severity", None)
add("Logger", None, "log", "min_severity", "INTERNAL_ERROR", "WARNING")
add("Logger.Severity", None)
add("Builder", None, "create_network", "create_builder_config", "build_serialized_network",
    "build_engine", "max_batch_size", "platform_has_fast_fp16", "platform_has_fast_int8",
    "platform_has_tf32", "is_network_supported")
add("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH", "EXPLICIT_PRECISION", "STRONGLY_TYPED")
add("IBuilderConfig", "max_workspace_size", "set_memory_pool_limit", "get_memory_pool_limit",
    "set_flag", "get_flag", "clear_flag", "flags",
    "create_timing_cache", "set_timing_cache", "get_timing_cache", "progress_monitor",
    "profiling_verbosity", "builder_optimization_level", "hardware_compatibility_level",
    "set_preview_feature")
add("MemoryPoolType", None, "WORKSPACE")
add("BuilderFlag", "FP16", "BF16", "INT8", "TF32", "STRICT_TYPES", "OBEY_PRECISION_CONSTRAINTS",
    "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS", "DISABLE_TIMING_CACHE",
    "ERROR_ON_TIMING_CACHE_MISS", "EDITABLE_TIMING_CACHE", "VERSION_COMPATIBLE")
add("ITimingCache", None, "serialize", "combine", "reset")
add("INetworkDefinition", "num_layers", "get_layer", "num_inputs", "get_input", "num_outputs",
    "get_output", "has_implicit_batch_dimension", "flags", "get_flag", "has_explicit_precision")
add("ILayer", "name", "type", "precision", "precision_is_set", "reset_precision", "set_output_type",
    "get_output_type", "output_type_is_set", "reset_output_type", "num_outputs", "get_output",
    "num_inputs", "get_input")
add("ITensor", "name", "shape", "dtype")
add("LayerType", "CONVOLUTION", "MATRIX_MULTIPLY", "ELEMENTWISE", "REDUCE", "UNARY", "SOFTMAX",
    "SHUFFLE", "RESIZE", "NORMALIZATION", "CAST", "CONSTANT")
add("OnnxParser", None, "parse", "parse_from_file", "num_errors", "get_error", "clear_errors",
    "supports_model", "supports_operator")
add("ParserError", "desc", "node", "code", "node_name", "node_operator", "file", "line", "func")
add("Runtime", None, "deserialize_cuda_engine")
add("ICudaEngine", "num_bindings", "get_binding_name", "binding_is_input", "get_binding_dtype",
    "get_binding_shape", "get_binding_index",
    "num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype", "get_tensor_shape",
    "create_execution_context",
    "create_engine_inspector", "serialize", "max_batch_size", "has_implicit_batch_dimension",
    "num_layers", "profiling_verbosity")
add("TensorIOMode", None, "NONE", "INPUT", "OUTPUT")
add("IExecutionContext", "execute_async_v2", "execute_async_v3", "execute_v2", "execute_async",
    "set_tensor_address", "get_tensor_address", "set_input_shape", "set_binding_shape",
    "get_tensor_shape", "get_binding_shape")
add("IProgressMonitor", None, "phase_start", "step_complete", "phase_finish")
add("EngineInspector", None, "get_layer_information", "get_engine_information", "execution_context")
add("LayerInformationFormat", None, "ONELINE", "JSON")
add("ProfilingVerbosity", "DETAILED", "LAYER_NAMES_ONLY", "NONE", "DEFAULT", "VERBOSE")
add("DataType", "FLOAT", "HALF", "BF16", "INT8", "INT32", "INT64", "BOOL", "UINT8", "FP8", "INT4",
    "FP4", "E8M0")

def fact(tag, cls, mem):
    c = P[tag].get(cls, {})
    e = c.get(mem if mem else "__decl__")
    if e is None:
        return {"present": False, "tag": tag}
    out = {"present": True, "path": e["loc"], "tag": tag}
    if e.get("warns"):
        out["deprecation_warning_on_call"] = True
    if e.get("doc_deprecated"):
        out["doc"] = e["doc_deprecated"]
    if cls.startswith("Logger") and mem in ("INTERNAL_ERROR", "WARNING") and tag != "8.0.1":
        pass
    return out

def facts(tag):
    r = {}
    for name, cls, mem in F:
        f = fact(tag, cls, mem)
        # inherited: Logger.X from ILogger.X (8.2+)
        if (not f["present"] and cls == "Logger" and mem in ("INTERNAL_ERROR", "WARNING")
            and P[tag]["ILogger"].get(mem)):
            f = {"present": True, "path": P[tag]["ILogger"][mem]["loc"], "tag": tag,
                 "note": "inherited from ILogger (Logger derives from ILogger)"}
        if not f["present"] and cls == "Logger.Severity" and P[tag].get("ILogger.Severity"):
            f = {"present": True, "path": P[tag]["ILogger.Severity"]["__decl__"]["loc"], "tag": tag,
                 "note": "inherited: trt.Logger.Severity resolves to ILogger.Severity"}
        r[name] = f
    return r

def diff(base, other):
    a, b = facts(base), facts(other)
    d = {"only_in_%s" % other: sorted(k for k in a if b[k]["present"] and not a[k]["present"]),
         "missing_in_%s" % other: sorted(k for k in a if a[k]["present"] and not b[k]["present"]),
         "call_warns_in_%s" % other: sorted(k for k in a if b[k].get("deprecation_warning_on_call")
                                            and not a[k].get("deprecation_warning_on_call")),
         "doc_deprecated_in_%s" % other: sorted(k for k in a
                                                if b[k].get("doc") and not a[k].get("doc"))}
    return {k: v for k, v in d.items() if v}

def init_info(tag):
    i = P[tag]["<init>"]
    return {"file": i["__file__"]["loc"], "nptype_bool": i["np_bool_line"]["value"],
            "nptype_bool_at": i["np_bool_line"]["loc"]}

gens = {}
def gen(key, rep, others, note):
    g = {"tag": rep, "commit": COMMITS[rep], "note": note, "init_py": init_info(rep),
         "facts": facts(rep)}
    if others:
        g["other_tags"] = {o: dict(commit=COMMITS[o], init_py=init_info(o), **diff(rep, o))
                           for o in others}
    gens[key] = g

gen("8.0", "8.0.1", [], "JetPack 4.6 (L4T 32.6.1). Logger.Severity lives on Logger, not ILogger: "
                        "trt.ILogger.WARNING etc. do not exist (pyCore.cpp: "
                        "py::enum_<ILogger::Severity>(loggerBinding, \"Severity\") "
                        ".export_values() into Logger).")
gen("8.2", "8.2.1", [], "JetPack 4.6.1-4.6.x (L4T 32.7.x): the Jetson Nano's last TensorRT.")
gen("8.4-8.6", "v8.6.1", ["8.4.3", "8.5.1", "8.5.3"], "8.6.1 representative; other_tags lists what "
                                                      "differs from 8.6.1 (only_in_X = present in "
                                                      "X but not 8.6.1; missing_in_X = present in "
                                                      "8.6.1 but not X). JetPack 5.1.x ships 8.5.2 "
                                                      "(between 8.5.1 and 8.5.3 here; nptype "
                                                      "np.bool like 8.5.1, see "
                                                      "python/packaging/tensorrt/__init__.py at "
                                                      "tag 8.5.2).")
gen("10", "v10.0.0", ["v10.16"], "10.0.0 representative; other_tags v10.16 is the newest 10.x tag "
                                 "in NVIDIA/TensorRT (2026-03-25). Weak-typing API "
                                 "(BuilderFlag.FP16/INT8/BF16, OBEY/PREFER_PRECISION_CONSTRAINTS, "
                                 "ILayer.precision setter, set_output_type, ITensor.dtype setter) "
                                 "is documented deprecated 'in TensorRT 10.12. Superseded by "
                                 "strong typing.'")
gen("11", "v11.1", ["v11.0"], "TensorRT 11 exists (tags v11.0 2026-06-02, v11.1 2026-06-24). Weak "
                              "typing removed from the Python bindings: no "
                              "BuilderFlag.FP16/INT8/BF16/OBEY_PRECISION_CONSTRAINTS/STRICT_TYPES, "
                              "no ILayer.precision/set_output_type, no "
                              "Builder.platform_has_fast_fp16, no "
                              "NetworkDefinitionCreationFlag.EXPLICIT_BATCH; STRONGLY_TYPED kept "
                              "but documented '[DEPRECATED] Deprecated in TensorRT 11.0. Strongly "
                              "typed mode is always enabled. This flag is retained for API "
                              "compatibility but is ignored.' "
                              "(python/docstrings/infer/pyCoreDoc.h).")

out = {"source": "https://github.com/NVIDIA/TensorRT (git mirror); presence = a pybind11 binding "
                 "(.def/.def_property/.value/py::class_/py::enum_/m.attr) in python/src at the "
                 "tag, or a def in the packaged tensorrt/__init__.py. Paths are path:line at the "
                 "tag. Python class names: IBuilder is bound as 'Builder', IRuntime as 'Runtime', "
                 "IParser as 'OnnxParser', IEngineInspector as 'EngineInspector' (there is no "
                 "trt.IEngineInspector). 'kDETAILED' is the C++ enumerator; Python has "
                 "ProfilingVerbosity.DETAILED. deprecation_warning_on_call = the binding wraps the "
                 "function in utils::deprecate/deprecateMember (emits DeprecationWarning 'Use X "
                 "instead.').",
       "generator": "/tmp/research/tools/parse_bindings.py + make_surface.py",  # as recorded
       "generations": gens,
       "behaviour": json.load(open(os.path.join(WORK, "behaviour.json")))}

def compact(o, ind=0):
    sp = " " * ind
    if isinstance(o, dict) and o and all(isinstance(v, dict) and "present" in v
                                         for v in o.values()):
        return ("{\n"
                + ",\n".join(sp + " " + json.dumps(k) + ": " + json.dumps(v) for k, v in o.items())
                + "\n" + sp + "}")
    if isinstance(o, dict):
        return ("{\n"
                + ",\n".join(sp + " " + json.dumps(k) + ": " + compact(v, ind + 1)
                             for k, v in o.items())
                + "\n" + sp + "}")
    return json.dumps(o)
open(os.path.join(WORK, "trt_surface.json"), "w").write(compact(out) + "\n")
