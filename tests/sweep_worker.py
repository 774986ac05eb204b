"""A small sweep for tests/test_sweep.py, importable and runnable as a subprocess (the
device count and the multi-process set-up come from the environment, which must be set
before JAX is imported).

    python tests/sweep_worker.py sharded DIR OUT      # 4-device run and 1-device run
    python tests/sweep_worker.py killed DIR           # SIGKILLs itself after 2 chunks
    python tests/sweep_worker.py multihost DIR OUT    # one process of a multi-process run
"""

from __future__ import annotations

import os
import signal
import sys

import jax
import jax.numpy as jnp
import numpy as np

N_LAYERS, N_SEEDS, N, D = 5, 2, 24, 4
LAMS = np.array([0.1, 1.0, 10.0])


def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_LAYERS, N, D)).astype(np.float32)
    y = np.where(X[0, :, 0] + 0.5 * rng.standard_normal(N) > 0, 1.0, -1.0).astype(np.float32)
    return X, y


def cheap_fn(cell, data):
    """Gradient descent on ridge-logistic loss until the gradient is small: a
    data-dependent while loop per ridge value (the per-device loops differ)."""
    X = cell["layer"] * (1.0 + 0.5 * cell["seed"])
    y = data["y"]

    def one(lam):
        def grad(w):
            return X.T @ (-y * jax.nn.sigmoid(-y * (X @ w))) / N + lam * w

        def body(c):
            w, k = c
            return w - 0.5 / (1.0 + lam) * grad(w), k + 1

        cond = lambda c: (jnp.sqrt(jnp.sum(grad(c[0]) ** 2)) > 1e-5) & (c[1] < 500)
        w, k = jax.lax.while_loop(cond, body, (jnp.zeros(D, X.dtype), jnp.array(0)))
        return {"w": w, "iters": k}

    return jax.vmap(one)(cell["lam"])


def grid(lams=LAMS):
    from probejax.sweep import Axis, Grid

    X, _ = problem()
    return Grid(
        [Axis("layer", X), Axis("seed", np.arange(N_SEEDS)), Axis("lam", lams, kind="vmap")]
    )


def run(directory, lams=None, **kw):
    """``run_sweep`` of ``cheap_fn`` over ``grid(lams)``; ``kw`` are :class:`Execution`
    fields (cells of a device vectorised, silent, unless given)."""
    from probejax.sweep import Execution, run_sweep

    _, y = problem()
    execution = Execution(**({"progress": False, "cell_batching": "vmap"} | kw))
    g = grid() if lams is None else grid(lams)
    return run_sweep(cheap_fn, g, directory, data={"y": y}, execution=execution)


def main(mode: str, directory: str, out: str | None = None):
    if mode == "sharded":
        from jax.sharding import Mesh

        assert len(jax.devices()) == 4, jax.devices()
        a = run(os.path.join(directory, "four"), cells_per_device=1)
        one = Mesh(np.array(jax.devices()[:1]), ("cells",))
        b = run(os.path.join(directory, "one"), cells_per_device=3, mesh=one)
        np.savez(
            out,
            w4=a.values["w"],
            it4=a.values["iters"],
            w1=b.values["w"],
            it1=b.values["iters"],
            devices=np.array([a.devices, b.devices]),
            chunk=np.array([a.chunk_cells, b.chunk_cells]),
        )
    elif mode == "killed":

        def kill_after_two(event):
            if event.chunk == 1:
                os.kill(os.getpid(), signal.SIGKILL)

        run(directory, cells_per_device=1, progress=kill_after_two)
    elif mode == "multihost":
        from probejax.sweep import initialize_multihost

        pid, count = initialize_multihost(initialization_timeout=60)
        r = run(directory, cells_per_device=1)
        np.savez(out, w=r.values["w"], computed=r.cells_computed, pid=pid, count=count)
        jax.distributed.shutdown()
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
