"""Plumbing shared by both wings: config schema, layout, files, actions, doit compat.
Python 3.6, no torch: the device imports all of it."""
