"""The XLA flag that keeps batched CPU linear algebra from deadlocking is set by
``import probejax``, kept when the user set it, and a program that hangs without it
runs to completion."""

import os
import subprocess
import sys

from probejax.io._xla_flags import FLAGS, set_xla_flags

# six independent batched solves, eighs and Choleskys in one program: with XLA's
# concurrency-optimised scheduler, jaxlib 0.10.2 on 2 cores hangs within 40 calls
PROGRAM = r"""
import probejax  # sets the flag before the first computation
import jax, jax.numpy as jnp

@jax.jit
def f(As, Bs):
    out = 0.0
    for A, B in zip(As, Bs):
        out = out + jnp.linalg.solve(A, B).sum() + jnp.linalg.eigh(A)[0].sum()
        out = out + jnp.linalg.cholesky(A).sum()
    return out

keys = jax.random.split(jax.random.key(0), 12)
As = [a @ jnp.swapaxes(a, 1, 2) + 96 * jnp.eye(96)
      for a in (jax.random.normal(k, (48, 96, 96)) for k in keys[:6])]
Bs = [jax.random.normal(k, (48, 96, 96)) for k in keys[6:]]
for i in range(40):
    f([A + i for A in As], Bs).block_until_ready()
print("done")
"""


def test_import_sets_the_flag_and_keeps_the_users(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    flags = set_xla_flags()
    assert "--xla_force_host_platform_device_count=2" in flags
    assert all(f"{k}={v}" in flags for k, v in FLAGS.items())
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_concurrency_optimized_scheduler=true")
    assert set_xla_flags() == "--xla_cpu_enable_concurrency_optimized_scheduler=true"


def test_batched_linear_algebra_does_not_deadlock():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and "done" in run.stdout, run.stderr[-2000:]
