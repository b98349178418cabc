"""Inference backends behind one small interface (runtime.backends.base.Backend)."""
