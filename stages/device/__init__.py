"""The device wing: links that run on the device (and on a host): engine, runtime_check,
verify, infer, bench. Python 3.6, no torch; imports nothing from stages.host."""
