"""Infrastructure at the bottom of the package: atomic writes, results identities (a
hash of the config and an explicit computation version, never of the source; the code
version is recorded for provenance only), the user cache folder and the persistent cache
of compiled programs. Nothing here imports the rest of probejax."""

from ._activations import (
    ClassLabels as ClassLabels,
    Labels as Labels,
    LayerStack as LayerStack,
    open_activations as open_activations,
    read_class_labels as read_class_labels,
    read_labels as read_labels,
    write_activations as write_activations,
)
from ._atomic import atomic_write as atomic_write, write_npz_atomic as write_npz_atomic
from ._compile_cache import (
    cache_root as cache_root,
    default_compile_cache_dir as default_compile_cache_dir,
    enable_compile_cache as enable_compile_cache,
)
from ._results import (
    code_version as code_version,
    config_hash as config_hash,
    jsonable as jsonable,
    read_results as read_results,
    write_json_atomic as write_json_atomic,
)
