"""Execute a notebook headlessly and print what each code cell showed.

    python notebooks/run.py notebooks/quickstart.ipynb [--timeout SECONDS]

The notebook runs on a real `python3` kernel with its own folder as working directory. Unless
DISPATCH_HOME is already set, the kernel gets a fresh temporary home (removed afterwards), so a
demo never touches your own functions, runs or secrets. The notebook file is not modified.
Exits 1 with the failing cell and its error if any cell raises.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import nbformat
import zmq
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets.config import Config

HOME_ENV = "DISPATCH_HOME"
INDENT = "    "
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the colours of IPython tracebacks


def output_text(output: dict) -> str:
    """The text a reader would see for one output: stream, text/plain or an error's traceback."""
    kind = output.get("output_type")
    if kind == "stream":
        return output.get("text", "")
    if kind in ("execute_result", "display_data"):
        return output.get("data", {}).get("text/plain", "")
    if kind == "error":
        return ANSI_ESCAPE.sub("", "\n".join(output.get("traceback", [])))
    return ""


def report(nb: nbformat.NotebookNode, out: TextIO | None = None) -> None:
    """`[cell N] <first source line>` and the cell's output, indented, for each cell that showed any."""
    out = out or sys.stdout
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = "".join(output_text(o) for o in cell.get("outputs", []))
        if not text.strip():
            continue
        print(cell_label(nb, cell), file=out)
        for line in text.rstrip("\n").splitlines():
            print(f"{INDENT}{line}".rstrip(), file=out)


def cell_label(nb: nbformat.NotebookNode, cell: nbformat.NotebookNode) -> str:
    """`[cell N] <first line of source>`: N is the execution count (Jupyter's `In [N]`), else
    the cell's position among the code cells."""
    code_cells = (c for c in nb.cells if c.cell_type == "code")
    number = cell.get("execution_count") or next(n for n, c in enumerate(code_cells, 1) if c is cell)
    first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"[cell {number}] {first_line}"


def execute(nb: nbformat.NotebookNode, folder: Path, timeout: float,
            started: list[int] | None = None) -> None:
    """Run every cell of `nb` in place, on a python3 kernel whose working directory is `folder`.

    Raises CellExecutionError, CellTimeoutError or DeadKernelError on the first failure; the
    cells run until then keep their outputs. The index of each cell is appended to `started`
    as it starts, so the last one is the cell that failed.
    """

    def on_cell_start(cell: nbformat.NotebookNode, cell_index: int) -> None:
        if started is not None:
            started.append(cell_index)

    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
        config=kernel_config(),
        on_cell_start=on_cell_start,
    ).execute()


def kernel_config() -> Config:
    """Encrypt the kernel's channels where jupyter_client and pyzmq can (CurveZMQ).

    ipykernel 7 warns on stderr about every kernel that talks plain TCP; a newcomer running
    `make demo` should not be met by a warning about eavesdropping.
    """
    config = Config()
    if "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return config


@contextmanager
def dispatch_home() -> Iterator[str]:
    """DISPATCH_HOME as set, else a fresh temporary one for as long as the block runs.

    The kernel inherits this process's environment, so setting it here is enough.
    """
    if os.environ.get(HOME_ENV):
        yield os.environ[HOME_ENV]
        return
    with tempfile.TemporaryDirectory(prefix="dispatch-demo-", ignore_cleanup_errors=True) as home:
        os.environ[HOME_ENV] = home
        try:
            yield home
        finally:
            os.environ.pop(HOME_ENV, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute a notebook and print each cell's output.")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--timeout", type=float, default=120, help="seconds allowed per cell (default 120)")
    args = parser.parse_args(argv)
    path: Path = args.notebook.resolve()
    if not path.is_file():
        print(f"error: no notebook at {args.notebook}", file=sys.stderr)
        return 2
    nb = nbformat.read(path, as_version=4)

    failure = ""
    started: list[int] = []
    with dispatch_home() as home:
        print(f"Running {args.notebook} with {HOME_ENV}={home}\n", flush=True)
        try:
            execute(nb, path.parent, args.timeout, started)
        except CellTimeoutError:
            failure = f"ran longer than the {args.timeout:g} s allowed per cell (--timeout)"
        except CellExecutionError as exc:
            failure = f"raised {exc.ename}: {exc.evalue} (traceback above)"
        except DeadKernelError as exc:
            failure = f"killed the kernel ({exc})"
    report(nb)
    sys.stdout.flush()
    if failure:
        where = cell_label(nb, nb.cells[started[-1]]) if started else "[before the first cell]"
        print(f"\nFAILED: {args.notebook}: {where}\n{INDENT}{failure}", file=sys.stderr)
        return 1
    code_cells = sum(1 for cell in nb.cells if cell.cell_type == "code")
    print(f"\nOK: {args.notebook}: all {code_cells} code cells ran without error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
