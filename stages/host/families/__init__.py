"""Model families on the host: one module per family (segformer.py) owns what the chain must
know about it: recognising a checkout from its config.json, loading it, the forward pass golden
uses, export specifics, graph rewrites, the layer groups an fp16 engine keeps in fp32, and its
sidecar fields. The links ask this registry and never name a family (tests/test_structure.py).

A new family is one module here (the names and functions segformer.py defines) and its line in
FAMILIES; the checkout gate's generic checks (labels, pre-processing, weight headers) apply to
every family."""
import importlib

from stages.common.errors import CheckoutError

FAMILIES = ("stages.host.families.segformer",)  # the family modules, asked in this order


def _modules():
    return [importlib.import_module(name) for name in FAMILIES]


def titles():
    """The families' names for sentences, e.g. "SegFormer"."""
    return " or ".join(m.TITLE for m in _modules())


def for_config(config, model_dir):
    """The family whose checkouts look like this config.json, or CheckoutError naming its
    model_type."""
    for family in _modules():
        if family.recognises(config):
            return family
    raise CheckoutError("config.json in %s describes a %r model, not a %s: point model.path at "
                        "a %s checkout." % (model_dir, config.get("model_type"), titles(),
                                            titles()))
