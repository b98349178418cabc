"""TEST DOUBLE: pycuda.autoprimaryctx (nothing to set up)."""
