"""The documentation site: generated pages up to date, `mkdocs build --strict` clean,
every public name in the API reference, and the how-to guides run as written."""

import importlib
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import docs_pages  # noqa: E402

sys.path.pop(0)

mkdocs = pytest.importorskip("mkdocs", reason="the docs extra is not installed")


def test_generated_pages_are_up_to_date():
    for path, text in docs_pages.generated_pages().items():
        assert path.read_text() == text, f"{path} is stale: run python scripts/docs_pages.py"


def test_api_pages_list_every_public_name_that_imports():
    for _, module in docs_pages.API_MODULES:
        mod = importlib.import_module(module)
        for name in docs_pages.public_names(module):
            assert hasattr(mod, name), f"{module}.{name} is listed but does not exist"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return out


def _inventory(site: Path) -> set[str]:
    raw = (site / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line}


def test_site_builds_strict_with_every_public_name(site):
    names = _inventory(site)
    missing = [
        f"{module}.{name}"
        for _, module in docs_pages.API_MODULES
        for name in docs_pages.public_names(module)
        if f"{module}.{name}" not in names
    ]
    assert not missing, missing
    assert (site / "theory" / "fixed_point" / "index.html").exists()


HOWTOS = sorted((ROOT / "docs" / "how-to").glob("*.md"))
SLOW = {"language-model.md"}  # loads a model and runs two sweeps


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW else p for p in HOWTOS],
    ids=[p.name for p in HOWTOS],
)
def test_howto_runs_as_written(page, tmp_path, monkeypatch):
    from mktestdocs import check_md_file

    monkeypatch.chdir(tmp_path)
    # the commands the page shows are this environment's (the venv's probejax)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    check_md_file(page, memory=True)  # the Python blocks, in order, sharing one namespace
    check_md_file(page, lang="bash")  # then the shell blocks, on the files those wrote
