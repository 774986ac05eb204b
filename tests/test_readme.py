"""The README stays one screen, its Python example runs as printed, its two commands
are the ones .ci/run and the docs use, and its headline block is the generator's."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"


def test_readme_is_one_screen_and_points_into_the_docs():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), link


def test_python_example_runs(capsys):
    text = README.read_text()
    section = text[text.index("## In Python") :]
    code = section[section.index("```python") + len("```python") : section.index("```\n", 10)]
    exec(compile(code, "README example", "exec"), {"__name__": "readme_example"})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("RAPTOR: C = ")
    assert float(lines[0].rsplit(" ", 1)[1]) > 0.9  # layer 2 carries a strong signal
    assert "'raptor'" in lines[-1] and "'lda'" in lines[-1]


def test_the_test_command_is_what_ci_runs():
    text = README.read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = [line for line in text.splitlines() if line.endswith("python -m pytest")]
    assert len(command) == 1
    install = command[0].split(" && .venv/bin/python -m pytest")[0]
    assert install.replace("python3 -m venv .venv && ", "") in ci


def test_headline_block_is_generated():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import docs_pages
    finally:
        sys.path.pop(0)
    assert docs_pages.readme_with_headline(README.read_text()) == README.read_text()
