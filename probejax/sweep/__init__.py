"""Sweeps over grids, sharded over devices and hosts, memory-bounded and resumable:
the infrastructure every layer, seed and theory sweep runs on.

Declare the grid (:class:`Axis`, :class:`Grid`), write the function for one cell, and
:func:`run_sweep` runs it in chunks sharded over the local devices, each chunk written
to a results store (:class:`SweepStore`) keyed by the config hash (grid, data, config,
precision; the config carries the computation's explicit version, bumped by hand when
the function changes, and no source text enters the hash), so an interrupted sweep
resumes where it stopped, also after a docstring edit, and a changed config or version
never reuses old results. Ready-made sweeps live above this
package: :func:`probejax.protocol.probe_sweep` (any estimator over layers x seeds),
:func:`probejax.protocol.path_sweep` and :func:`probejax.theory.theory_sweep`;
:func:`initialize_multihost` joins several processes. Example::

    def fn(cell, data):  # one (layer, seed); the whole ridge grid inside the program
        key = jax.random.key(cell["seed"])
        ...
        return {"acc": acc_per_lam, "w": w_per_lam}

    grid = Grid([Axis("layer", X_layers), Axis("seed", [0, 1, 2]),
                 Axis("lam", lams, kind="vmap")])
    res = run_sweep(fn, grid, "results/my_sweep", data={"y": y},
                    config={"sweep": "my_sweep/1", "solver": "lbfgs"},
                    execution=Execution(memory_budget_bytes=8 * 2**30))
    res.values["acc"].shape  # (layers, 3, len(lams))
"""

from ._distributed import initialize_multihost as initialize_multihost
from ._execution import Execution as Execution
from ._grid import Axis as Axis, Grid as Grid
from ._memory import ChunkPlan as ChunkPlan
from ._runner import (
    ChunkDone as ChunkDone,
    SweepResult as SweepResult,
    load_sweep as load_sweep,
    run_sweep as run_sweep,
)
from ._store import StoreMismatchError as StoreMismatchError, SweepStore as SweepStore
