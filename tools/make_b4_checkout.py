"""Write a SegFormer-B4-size checkout with random weights, to try the chain at real size offline.

    python tools/make_b4_checkout.py DEST [--size 512] [--labels 35] [--seed 0] [--variant b4|b0]

It has the architecture of nickmuchi/segformer-b4-finetuned-segments-sidewalk (depths 3/8/27/3,
hidden sizes 64/128/320/512, decoder 768, 35 labels, 512x512) or of SegFormer-B0 (2/2/2/2,
32/64/160/256, decoder 256), the embedded model's labels and preprocessor settings, and weights
drawn by transformers' own initialisation with a fixed seed. Its logits are small and nearly tied:
a fair adversary for the precision link, not a segmenter."""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMBEDDED = os.path.join(ROOT, "models", "segformer-tiny-sidewalk")
VARIANTS = {
    "b4": dict(depths=[3, 8, 27, 3], hidden_sizes=[64, 128, 320, 512], decoder_hidden_size=768,
               num_attention_heads=[1, 2, 5, 8]),
    "b0": dict(depths=[2, 2, 2, 2], hidden_sizes=[32, 64, 160, 256], decoder_hidden_size=256,
               num_attention_heads=[1, 2, 5, 8]),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dest")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--labels", type=int, default=35)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", choices=sorted(VARIANTS), default="b4")
    a = p.parse_args(argv)
    if os.path.exists(a.dest):
        sys.exit("%s exists: give a new folder" % a.dest)
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    with open(os.path.join(EMBEDDED, "config.json")) as f:
        labels = json.load(f)["id2label"]
    id2label = {i: labels.get(str(i), "class-%d" % i) for i in range(a.labels)}
    cfg = SegformerConfig(num_labels=a.labels, id2label=id2label,
                          label2id={v: k for k, v in id2label.items()}, **VARIANTS[a.variant])
    torch.manual_seed(a.seed)
    SegformerForSemanticSegmentation(cfg).eval().save_pretrained(a.dest)
    with open(os.path.join(EMBEDDED, "preprocessor_config.json")) as f:
        pre = json.load(f)
    pre["size"] = {"height": a.size, "width": a.size}
    with open(os.path.join(a.dest, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    print("wrote %s (%s, %dx%d, %d labels, seed %d)" % (a.dest, a.variant.upper(), a.size, a.size,
                                                         a.labels, a.seed))


if __name__ == "__main__":
    main()
