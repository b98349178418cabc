"""TEST DOUBLE of pycuda for machines without a GPU (not CUDA). See tests/doubles/README.md."""
__double__ = True
VERSION = (2022, 1)
