"""The artifact writer and hashing for stages/: the runtime's (runtime/files.py), one place."""
from runtime.files import (  # noqa: F401
    atomic_path, read_json, sha256_bytes, sha256_file, write_bytes, write_json, write_text)
