"""The artifact writer and hashing for stages/: the runtime's (runtime/files.py), one place."""
from runtime.files import (  # noqa: F401
    EXEC_MODE, FILE_MODE, atomic_path, check_owned, confine, own, read_json, remove_stale_temps,
    replace_dir, rerun_hint, scratch_path, sha256_bytes, sha256_file, staged_dir, write_bytes,
    write_json, write_text)
