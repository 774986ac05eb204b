"""The persistent cache of compiled programs: a second process loads what the first
compiled instead of compiling it; the opt-outs, a folder the user gave JAX and an
unusable folder are respected. Each case runs in a fresh interpreter, since JAX
decides about the cache once per process."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from probejax.io import default_compile_cache_dir
from probejax.io._compile_cache import machine_tag

SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp
from jax import monitoring

events = []
monitoring.register_event_listener(lambda name, **kw: events.append(name))

@jax.jit
def before(x):
    return (x * 2.0).sum()

before(jnp.ones(3)).block_until_ready()  # a program compiled before the cache is on
import probejax

folder = probejax.enable_compile_cache(*sys.argv[1:], min_compile_seconds=0.0)

@jax.jit
def f(x):
    return jnp.linalg.cholesky(x @ x.T + 3.0 * jnp.eye(x.shape[0])).sum()

value = float(f(jnp.arange(35.0).reshape(7, 5) / 10))
print(json.dumps({
    "folder": None if folder is None else str(folder),
    "jax_dir": jax.config.jax_compilation_cache_dir,
    "hits": events.count("/jax/compilation_cache/cache_hits"),
    "value": value,
}))
"""


def _run(env_extra: dict, *args: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JAX_COMPILATION_CACHE_DIR", "PROBEJAX_COMPILE_CACHE")
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        env=env | env_extra,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_compiled_program(tmp_path):
    env = {"PROBEJAX_CACHE": str(tmp_path / "root")}
    first = _run(env)
    folder = first["folder"]
    assert folder == first["jax_dir"]
    assert folder.startswith(str(tmp_path / "root" / "xla" / "jax-"))
    assert folder.endswith(machine_tag())
    entries = [p for p in os.listdir(folder) if p.endswith("-cache")]
    assert entries and first["hits"] == 0
    second = _run(env)
    assert second["folder"] == folder and second["hits"] >= 1
    assert second["value"] == first["value"]
    # an explicit folder wins over the default
    mine = _run(env, str(tmp_path / "mine"))
    assert mine["folder"] == str(tmp_path / "mine") and mine["hits"] == 0


SWITCH = r"""
import os, sys
import jax, jax.numpy as jnp
import probejax

first, second = sys.argv[1:3]
probejax.enable_compile_cache(first, min_compile_seconds=0.0)
jax.jit(lambda x: jnp.linalg.cholesky(x @ x.T + 3.0 * jnp.eye(4)).sum())(jnp.ones((4, 3)))
probejax.enable_compile_cache(second, min_compile_seconds=0.0)
jax.jit(lambda x: jnp.linalg.eigh(x @ x.T)[0].sum())(jnp.ones((5, 3))).block_until_ready()
print(*(sum(p.endswith("-cache") for p in os.listdir(f)) for f in (first, second)))
"""


def test_a_new_folder_takes_effect_after_programs_were_compiled(tmp_path):
    """JAX settles on its cache at the first compilation; enabling again moves it."""
    env = {k: v for k, v in os.environ.items() if k != "PROBEJAX_COMPILE_CACHE"}
    first, second = tmp_path / "first", tmp_path / "second"
    out = subprocess.run(
        [sys.executable, "-c", SWITCH, str(first), str(second)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    n_first, n_second = map(int, out.stdout.split())
    assert n_first >= 1 and n_second >= 1


def test_opt_outs_and_a_folder_given_to_jax(tmp_path):
    root = {"PROBEJAX_CACHE": str(tmp_path / "root")}
    off = _run(root | {"PROBEJAX_COMPILE_CACHE": "off"})
    assert off["folder"] is None and off["jax_dir"] is None
    assert not (tmp_path / "root").exists()
    chosen = _run(root | {"PROBEJAX_COMPILE_CACHE": str(tmp_path / "env-dir")})
    assert chosen["folder"] == str(tmp_path / "env-dir") == chosen["jax_dir"]
    theirs = _run(root | {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-dir")})
    assert theirs["folder"] == str(tmp_path / "jax-dir") == theirs["jax_dir"]
    assert not (tmp_path / "root").exists()


def test_an_unusable_folder_warns_and_leaves_the_cache_off(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    from probejax.io import enable_compile_cache

    with pytest.warns(UserWarning, match=r"compilation cache stays off: cannot create .*a-file"):
        assert enable_compile_cache(blocker / "xla") is None
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        enable_compile_cache(tmp_path / "x", max_bytes=0)


def test_machine_tag_and_default_folder(monkeypatch, tmp_path):
    tag = machine_tag()
    assert len(tag) == 16 and int(tag, 16) >= 0 and tag == machine_tag()
    monkeypatch.setenv("PROBEJAX_CACHE", str(tmp_path))
    assert default_compile_cache_dir().parent == tmp_path / "xla"


def test_the_command_line_enables_it_unless_told_not_to(monkeypatch):
    from probejax.cli import app

    calls = []
    monkeypatch.setattr("probejax.io.enable_compile_cache", lambda: calls.append(1))
    # the top-level callback runs before the command parses its own (here bad) options
    args = ["demo", "--n", "not-a-number"]
    assert CliRunner().invoke(app, args).exit_code == 2 and calls == [1]
    assert CliRunner().invoke(app, ["--no-compile-cache", *args]).exit_code == 2
    assert calls == [1]
