"""Every notebook in notebooks/ runs top to bottom on a real kernel and shows what it promises."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT = 60  # seconds; the quickstart needs a few in all


def _load_runner():
    spec = importlib.util.spec_from_file_location("notebook_runner", NOTEBOOKS / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def _execute(path: Path) -> nbformat.NotebookNode:
    """The notebook after running it; the kernel inherits DISPATCH_HOME from the `home` fixture."""
    nb = nbformat.read(path, as_version=4)
    runner.execute(nb, path.parent, CELL_TIMEOUT)  # raises CellExecutionError on a cell's error
    return nb


def _shown(nb: nbformat.NotebookNode, source_start: str, index: int | None = None) -> str:
    """What the code cell whose source starts with `source_start` showed (stream and text):
    the only such cell, or the `index`th of them."""
    cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start)]
    assert cells and (index is not None or len(cells) == 1), f"cells starting {source_start!r}: {len(cells)}"
    return "".join(runner.output_text(o) for o in cells[index or 0].outputs)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_runs_without_error(path: Path, home: Path) -> None:
    nb = _execute(path)

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert home.is_dir(), "the notebook should have used the DISPATCH_HOME it was given"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)

    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code has nothing to show"
    assert [c.outputs for c in code] == [[]] * len(code)
    assert {c.execution_count for c in code} == {None}


def test_quickstart_shows_each_step(home: Path) -> None:
    nb = _execute(NOTEBOOKS / "quickstart.ipynb")

    card = _shown(nb, "%%dispatch\ndef add(x, y):\n    return x + y")
    assert card.startswith("function add: READY") and "driver: local" in card
    assert _shown(nb, "add(1, 2)", index=0) == "3"
    assert _shown(nb, "add.local(1, 2)") == "3"
    assert _shown(nb, "list(add.map(") == "[3, 7, 11]"
    spawned = _shown(nb, "run = countdown.spawn(3)")
    assert "finished: SUCCEEDED output: 3" in spawned
    assert "3...\n2...\n1...\nliftoff!" in spawned  # the run's logs
    assert "secret greeting stored with keys: word" in _shown(nb, "%dispatch secret greeting")
    hello_card = _shown(nb, "%%dispatch hello")
    assert "secrets: greeting" in hello_card and "timeout: 5.00 s" in hello_card
    assert _shown(nb, 'hello({"name": "Ada"})') == "{'greeting': 'hello Ada, welcome'}"
    invoked = _shown(nb, "%dispatch invoke hello")
    assert "SUCCEEDED" in invoked and "hello Grace, welcome" in invoked
    assert _shown(nb, "try:\n    hello(").startswith("InputError - input invalid against schema at $.name")
    failed = _shown(nb, "try:\n    divide(1, 0)")
    assert failed.startswith("FunctionError - ZeroDivisionError: division by zero")
    assert "return a / b" in failed and "in divide" in failed  # the cell's own line
    runs = _shown(nb, "%dispatch runs")
    assert "2 failed" in runs and {"add", "countdown", "hello", "divide"} <= set(runs.split())
    assert _shown(nb, "add(1, 2)", index=-1) == "'1 + 2 = 3'"  # the redeployed code
    functions = _shown(nb, "%dispatch functions").splitlines()
    assert [line.split()[0] for line in functions[1:]] == ["add", "countdown", "divide", "hello"]


def test_runner_names_the_failing_cell(tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.ipynb"
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("print('before')"), nbformat.v4.new_code_cell("1 / 0"),
               nbformat.v4.new_code_cell("print('after')")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, path)

    assert runner.main([str(path)]) == 1

    out, err = capsys.readouterr()
    assert "[cell 1] print('before')\n    before\n" in out
    assert "ZeroDivisionError" in out and "after" not in out
    assert f"FAILED: {path}: [cell 2] 1 / 0\n    raised ZeroDivisionError: division by zero" in err
