"""The README's "Add your own estimator" example runs as printed."""

from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_add_your_own_estimator_example_runs(tmp_path, capsys):
    text = README.read_text()
    section = text[text.index("### Add your own estimator") :]
    code = section[section.index("```python") + len("```python") : section.index("```\n", 10)]
    code = code.replace('"/tmp/shrunk-sweep"', repr(str(tmp_path / "sweep")))
    exec(compile(code, "README example", "exec"), {"__name__": "readme_example"})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].endswith("(3, 2)")
    stability = float(lines[-1].split()[0])
    assert 0.5 < stability <= 1.0
