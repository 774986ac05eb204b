"""Infrastructure at the bottom of the package: atomic writes and results hashing that
includes the code version. Nothing here imports the rest of probejax."""

from ._atomic import atomic_write as atomic_write, write_npz_atomic as write_npz_atomic
from ._results import (
    code_version as code_version,
    config_hash as config_hash,
    jsonable as jsonable,
    read_results as read_results,
    write_json_atomic as write_json_atomic,
)
