"""Pipeline stages: each is a plain function from input paths plus its config slice to output paths."""
