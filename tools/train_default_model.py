"""Train the embedded default model: a tiny SegFormer on generated street scenes.

Deterministic (fixed seeds, fixed thread count, deterministic torch algorithms), offline,
CPU-only. Writes an HF checkout (config.json, preprocessor_config.json, model.safetensors)
and reports pixel accuracy on held-out generated scenes.

    python tools/train_default_model.py --out models/segformer-tiny-sidewalk
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scenes import render_scene  # noqa: E402

ID2LABEL = [
    "unlabeled", "flat-road", "flat-sidewalk", "flat-crosswalk", "flat-cyclinglane",
    "flat-parkingdriveway", "flat-railtrack", "flat-curb", "human-person", "human-rider",
    "vehicle-car", "vehicle-truck", "vehicle-bus", "vehicle-tramtrain", "vehicle-motorcycle",
    "vehicle-bicycle", "vehicle-caravan", "vehicle-cartrailer", "construction-building",
    "construction-door", "construction-wall", "construction-fence", "construction-bridge",
    "construction-tunnel", "construction-stairs", "object-pole", "object-trafficsign",
    "object-trafficlight", "nature-vegetation", "nature-terrain", "sky", "void-ground",
    "void-dynamic", "void-static", "void-unclear",
]
SIZE = 256
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
MEAN = np.array(IMAGENET_MEAN, np.float32)
STD = np.array(IMAGENET_STD, np.float32)


def sample(seed):
    """One training pair at model resolution, resized the way the image processor does."""
    rng = np.random.default_rng(10_000 + seed)
    w = int(rng.integers(200, 1000))
    h = int(np.clip(w * rng.uniform(0.45, 1.8), 160, 1200))
    bgr, lab = render_scene(seed, w, h)
    rgb = Image.fromarray(bgr[..., ::-1].copy()).resize((SIZE, SIZE), Image.BILINEAR)
    x = ((np.asarray(rgb, np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    y = np.asarray(Image.fromarray(lab).resize((SIZE, SIZE), Image.NEAREST), np.int64)
    return x, y


def dataset(seeds):
    xs, ys = zip(*(sample(s) for s in seeds))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def build_model():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    cfg = SegformerConfig(
        num_encoder_blocks=4, depths=[1, 1, 2, 1], sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[24, 48, 96, 160], num_attention_heads=[1, 2, 4, 8],
        decoder_hidden_size=128, num_labels=len(ID2LABEL),
        id2label={i: n for i, n in enumerate(ID2LABEL)},
        label2id={n: i for i, n in enumerate(ID2LABEL)},
        semantic_loss_ignore_index=255,
    )
    return SegformerForSemanticSegmentation(cfg)


def pixel_accuracy(model, x, y, batch=16):
    model.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(pixel_values=x[i:i + batch]).logits
            up = torch.nn.functional.interpolate(logits, size=y.shape[-2:], mode="bilinear",
                                                 align_corners=False)
            hits += (up.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return hits / y.numel()


def train(model, x, y, steps, batch, lr):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(0)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        xb, yb = x[idx], y[idx]
        if step % 2:
            xb, yb = xb.flip(-1), yb.flip(-1)
        loss = model(pixel_values=xb, labels=yb).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print("step %5d  loss %.4f  %.0fs" % (step, loss.item(), time.time() - t0), flush=True)


def save(model, out):
    from transformers import SegformerImageProcessor
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    proc = SegformerImageProcessor(size={"height": SIZE, "width": SIZE}, image_mean=IMAGENET_MEAN,
                                   image_std=IMAGENET_STD, resample=2, do_reduce_labels=False)
    proc.save_pretrained(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="models/segformer-tiny-sidewalk")
    ap.add_argument("--train-scenes", type=int, default=1500)
    ap.add_argument("--eval-scenes", type=int, default=100)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    x, y = dataset(range(args.train_scenes))
    xe, ye = dataset(range(1_000_000, 1_000_000 + args.eval_scenes))  # held out: disjoint seeds
    model = build_model()
    print("parameters: %d" % sum(p.numel() for p in model.parameters()), flush=True)
    train(model, x, y, args.steps, args.batch, args.lr)
    acc = pixel_accuracy(model, xe, ye)
    print("held-out pixel accuracy on %d generated scenes: %.2f %%" % (args.eval_scenes, 100 * acc))
    save(model, args.out)
    with open(os.path.join(args.out, "training_report.json"), "w") as f:
        json.dump({"heldout_pixel_accuracy": acc, "eval_scenes": args.eval_scenes,
                   "train_scenes": args.train_scenes, "steps": args.steps, "batch": args.batch,
                   "torch": torch.__version__}, f, indent=2)


if __name__ == "__main__":
    main()
