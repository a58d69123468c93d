"""The quickstart in a real browser: JupyterLab runs every cell, and the runs widget shows the runs.

This is what a newcomer sees: open the notebook in JupyterLab, Run > Run All Cells, scroll to
`%dispatch runs`. The test drives exactly that through the menus, waits (bounded) until the
kernel is idle with every cell executed, then checks the page: the runs cell shows a rendered
widget view (not its text/plain or text/html fallback) listing SUCCEEDED runs by id, and no cell
shows an error. A screenshot of the runs cell goes to tests/browser/artifacts/.

The `harness` case runs the same checks on a small notebook written here with the core API and
a plain ipywidgets.HTML table, so the browser plumbing is proven independently of the notebook.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .conftest import JupyterLab

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PAGE_TIMEOUT = 60  # seconds until the notebook is open with its kernel ready
RUN_TIMEOUT = 120  # seconds for Run All Cells to finish
RENDER_TIMEOUT = 30  # seconds for the runs widget to show finished runs
RUN_ID = re.compile(r"\b[0-9a-f]{26}\b")  # model.new_id(): 16 hex digits of time, 10 random


@dataclass(frozen=True)
class Case:
    name: str
    write: Callable[[Path], str]  # puts the notebook in the server's root; returns its file name
    runs_cell: str  # how the source of the cell that shows the runs table starts


def _copy_quickstart(root: Path) -> str:
    source = REPO / "notebooks" / "quickstart.ipynb"
    cells = [c for c in nbformat.read(source, as_version=4).cells if c.cell_type == "code"]
    if not any(c.source.startswith("%dispatch runs") for c in cells):
        pytest.fail(f"{source.relative_to(REPO)} has no code cell starting with `%dispatch runs`: "
                    "the tour should end by opening the runs widget")
    shutil.copy(source, root / source.name)
    return source.name


HARNESS_CELLS = [
    "import ipywidgets as widgets\nimport dispatch_kernel as dk\n\nclient = dk.connect()",
    "def add(x, y):\n    return x + y\n\nadd_fn = client.deploy(add)\n"
    "runs = [add_fn.spawn(i, i) for i in range(3)]\n"
    "print(*[run.wait().id for run in runs])",
    # The stand-in for `%dispatch runs`: a widget (not display data) holding a table of runs.
    "runs_table = widgets.HTML(\n"
    "    '<table><tr><th>id</th><th>function</th><th>status</th></tr>'\n"
    "    + ''.join(f'<tr><td>{r.id}</td><td>{r.function}</td><td>{r.status}</td></tr>'\n"
    "              for r in client.list_runs(limit=10))\n"
    "    + '</table>'\n"
    ")\nruns_table",
]


def _write_harness(root: Path) -> str:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in HARNESS_CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, root / "harness.ipynb")
    return "harness.ipynb"


CASES = [
    Case("harness", _write_harness, "runs_table = "),
    Case("quickstart", _copy_quickstart, "%dispatch runs"),
]

# What the page shows of the open notebook, read from JupyterLab's own objects (exposed as
# window.jupyterapp) and from the DOM it rendered. Returns null until the notebook is open.
NOTEBOOK_STATE_JS = """
const [path] = arguments;
const app = window.jupyterapp;
const panel = app && app.shell && app.shell.currentWidget;
if (!panel || !panel.content || !panel.sessionContext || !panel.context || panel.context.path !== path) {
  return null;
}
const session = panel.sessionContext.session;
const kernel = session && session.kernel;
const cells = [];
panel.content.widgets.forEach((cell, index) => {
  if (cell.model.type !== 'code') return;
  const prompt = cell.node.querySelector('.jp-InputArea-prompt');
  cells.push({
    index,
    source: cell.model.sharedModel.getSource(),
    prompt: prompt ? prompt.textContent.trim() : '',
    execution_count: cell.model.executionCount,
    outputs: cell.model.outputs.toJSON().map(o => ({
      output_type: o.output_type, name: o.name || null, ename: o.ename || null,
      evalue: o.evalue || null, text: typeof o.text === 'string' ? o.text : (o.text || []).join(''),
      mime: Object.keys(o.data || {}),
    })),
    rendered: Array.from(cell.node.querySelectorAll('.jp-OutputArea-output')).map(node => ({
      mime: node.getAttribute('data-mime-type'),
      widget: node.querySelector('.jupyter-widgets, .widget-html') !== null,
      text: node.innerText,
    })),
  });
});
return {
  ready: panel.context.isReady && panel.sessionContext.isReady && !!kernel,
  kernel: kernel ? kernel.status : null,
  cells,
};
"""


def _state(driver: Any, path: str) -> dict[str, Any] | None:
    return driver.execute_script(NOTEBOOK_STATE_JS, path)


def _wait_for(what: str, timeout: float, probe: Callable[[], Any], describe: Callable[[], str] = lambda: "",
              every: float = 0.5) -> Any:
    """Poll `probe` every `every` s until it returns something truthy; fail naming `what` after
    `timeout` s, with what `describe` says of the page."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except StaleElementReferenceException:  # the page changed under the probe: look again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{describe()}")
        time.sleep(every)


def _finished(state: dict[str, Any] | None) -> bool:
    """Every code cell ran (or Run All stopped at an error) and the kernel is idle."""
    if not state or state["kernel"] != "idle":
        return False
    cells = state["cells"]
    if any(c["prompt"] == "[*]:" for c in cells):
        return False
    failed = any(o["output_type"] == "error" for c in cells for o in c["outputs"])
    return failed or all(c["execution_count"] is not None for c in cells)


def _errors(state: dict[str, Any]) -> list[str]:
    """Each error a cell shows: an error output, or a traceback or widget failure on the page."""
    found = []
    for cell in state["cells"]:
        where = f"cell {cell['index'] + 1} ({cell['source'].splitlines()[0] if cell['source'] else ''!r})"
        for out in cell["outputs"]:
            if out["output_type"] == "error":
                found.append(f"{where}: {out['ename']}: {out['evalue']}")
            elif out["name"] == "stderr" and "Traceback" in out["text"]:
                found.append(f"{where}: traceback on stderr: {out['text'][-500:]}")
        for shown in cell["rendered"]:
            if shown["mime"] == "application/vnd.jupyter.stderr" and "Traceback" in shown["text"]:
                found.append(f"{where}: shows a traceback: {shown['text'][-500:]}")
            if "Error displaying widget" in shown["text"]:
                found.append(f"{where}: the widget failed to render: {shown['text'][:300]}")
    return found


def _summary(state: dict[str, Any] | None) -> str:
    """Each code cell as the page shows it: prompt, first line, rendered outputs (shortened)."""
    if not state:
        return "  (no notebook open)"
    lines = [f"  kernel: {state['kernel']}, ready: {state['ready']}"]
    for cell in state["cells"]:
        first = cell["source"].splitlines()[0] if cell["source"] else ""
        lines.append(f"  {cell['prompt'] or '[?]:'} {first}")
        for shown in cell["rendered"]:
            kind = "widget" if shown["widget"] else shown["mime"]
            text = " ".join(shown["text"].split())
            lines.append(f"      {kind}: {text[:300]}{' ...' if len(text) > 300 else ''}")
    return "\n".join(lines)


def _click_menu(driver: Any, menu: str, item: str) -> None:
    """Open `menu` in JupyterLab's menu bar and click `item`, as a user would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 20)
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][normalize-space()='{menu}']"))).click()
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//ul[contains(@class,'lm-Menu-content')]/li[contains(@class,'lm-Menu-item')]"
                   f"[.//div[contains(@class,'lm-Menu-itemLabel')][normalize-space()='{item}']]"))).click()


@pytest.mark.timeout(PAGE_TIMEOUT + RUN_TIMEOUT + RENDER_TIMEOUT + 120)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_run_all_shows_the_runs_widget(case: Case, jupyterlab: JupyterLab, browser: Any) -> None:
    path = case.write(jupyterlab.root)
    driver = browser
    state: dict[str, Any] | None = None

    def describe() -> str:
        return f"the page shows:\n{_summary(state)}\nserver log:\n{jupyterlab.log_tail()}"

    def probe() -> dict[str, Any] | None:
        nonlocal state
        state = _state(driver, path)
        return state

    driver.get(jupyterlab.page(path))
    _wait_for("the notebook to open with an idle kernel", PAGE_TIMEOUT,
              lambda: (s := probe()) and s["ready"] and s["kernel"] == "idle" and s["cells"], describe)

    _click_menu(driver, "Run", "Run All Cells")
    # Twice in a row: between two cells the kernel may be idle for a moment.
    _wait_for("Run All Cells to finish", RUN_TIMEOUT,
              lambda: _finished(probe()) and (time.sleep(1) or _finished(probe())), describe)

    runs_cells = [c for c in state["cells"] if c["source"].startswith(case.runs_cell)]
    assert len(runs_cells) == 1, f"expected one cell starting {case.runs_cell!r}\n{describe()}"
    index = runs_cells[0]["index"]

    def runs_shown() -> str | None:
        cells = (probe() or {"cells": []})["cells"]
        cell = next((c for c in cells if c["index"] == index), {"rendered": []})
        views = [r["text"] for r in cell["rendered"] if r["widget"]]
        return next((text for text in views if "SUCCEEDED" in text), None)

    try:
        shown = _wait_for("the runs widget to show SUCCEEDED runs", RENDER_TIMEOUT, runs_shown, describe)
    finally:
        # Whatever happened, keep a picture of the runs cell (and the cells above it).
        driver.execute_script(
            "const cell = window.jupyterapp.shell.currentWidget.content.widgets[arguments[0]];"
            "cell.node.scrollIntoView({block: 'end'});", index)
        time.sleep(0.5)  # let the scroll settle before the picture
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{case.name}.png"))

    assert _errors(state) == []
    assert all(c["execution_count"] is not None for c in state["cells"]), describe()
    assert jupyterlab.home.is_dir(), "the kernel should have used the server's DISPATCH_HOME"
    # A live widget view, listing runs by their ids (the fallbacks render no widget element).
    ids = RUN_ID.findall(shown)
    assert ids, f"the runs widget shows no run ids:\n{shown}"
    if case.name == "harness":  # the runs the notebook printed are the ones the table shows
        printed = "".join(o["text"] for o in state["cells"][1]["outputs"]).split()
        assert len(printed) == 3 and set(printed) <= set(ids), (printed, shown)
