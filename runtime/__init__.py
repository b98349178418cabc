"""Device-side runtime: image -> tensor -> logits -> mask -> overlay.

Imports nothing from torch or transformers and runs on Python 3.6 (Jetson Nano)."""
