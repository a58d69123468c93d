"""Source text made a package without running it here.

REST, the CLI and YAML documents deploy functions as text. The text is parsed to find the
handler, its calling convention and signature, and the modules it imports (pinned like a Python
function's requirements); it is first run in a worker. Before a deploy is accepted, the text is
loaded once in a throwaway interpreter (runtime/probe.py), so that a top level that fails is
refused with a clear error, as it was when the text ran in the server, while nothing the text
does happens in this process.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ..model import InvalidRequestError
from ..credentials import without_credentials
from .source import FunctionSource, _is_third_party, merge_requirements, requirements_for

PROBE_TIMEOUT = 60.0  # seconds the probe may spend on the text's top level (slow imports)


def package_text(code: str, handler: str | None = None, requirements: list[str] | None = None,
                 filename: str = "<source>", probe: bool = True) -> FunctionSource:
    """A package of source text whose function `handler` is the function.

    Without a handler, `handle` is taken (Dispatch's convention), else the only function the
    code defines. Imports at the top of the code must work in this environment (the probe
    checks them in a separate process); an import inside the handler runs in the function's
    own environment, where `requirements` are installed.
    """
    if not isinstance(code, str) or not code.strip():
        raise InvalidRequestError("the source code is empty")
    tree = _parse(code, filename)
    functions = {node.name: node for node in tree.body
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if handler is None:
        if "handle" in functions:
            handler = "handle"
        elif len(functions) == 1:
            handler = next(iter(functions))
        else:
            found = ", ".join(functions) or "none"
            raise InvalidRequestError(f"{filename}: name the handler (functions defined: {found})")
    if handler not in functions and handler not in _top_level_names(tree):
        raise InvalidRequestError(f"{filename} defines no {handler!r}")
    if probe:
        _probe(code, filename, handler)
    node = functions.get(handler)
    modules = sorted(m for m in _imported(tree) if _is_third_party(m))
    return FunctionSource(
        handler=handler,
        convention=_convention(node.args) if node is not None else "plain",
        requirements=merge_requirements(requirements_for(modules), requirements or []),
        modules=modules,
        signature=f"({ast.unparse(node.args)})" if node is not None else "(...)",
        sources={filename: [(1, code.splitlines(keepends=True))]},
        code=code,
        filename=filename,
    )


def _parse(code: str, filename: str) -> ast.Module:
    try:
        return ast.parse(code, filename)
    except SyntaxError as exc:
        where = f"{filename}, line {exc.lineno}" if exc.lineno else filename
        raise InvalidRequestError(f"{where}: SyntaxError: {exc.msg}") from None
    except ValueError as exc:  # null bytes in the text
        raise InvalidRequestError(f"{filename}: {exc}") from None


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names the module's top level binds other than by `def` (classes, assignments, imports)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
    return names


def _imported(tree: ast.Module) -> set[str]:
    """Top-level names of the modules imported anywhere in the code (absolute imports)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found


def _convention(args: ast.arguments) -> str:
    """What packaging.source.calling_convention says of the same signature, read from the text."""
    positional = [*args.posonlyargs, *args.args]
    every = [*positional, *([args.vararg] if args.vararg else []), *args.kwonlyargs,
             *([args.kwarg] if args.kwarg else [])]
    if len(every) == 2 and len(positional) == 2 and positional[0].arg in ("ctx", "context"):
        return "dispatch"
    return "plain"


def _probe(code: str, filename: str, handler: str) -> None:
    """Load the text in a throwaway interpreter, as a worker would: without the server's
    credentials in its environment, in a session of its own that is killed, with anything it
    started, once it has answered. InvalidRequestError when the text's top level fails."""
    with tempfile.TemporaryDirectory(prefix="dispatch-probe-") as where:
        request, answer_path, log_path = (Path(where) / name for name in ("request.json", "answer.json", "log"))
        request.write_text(json.dumps({"code": code, "filename": filename, "handler": handler}))
        # Files, not pipes: a process the text starts would hold a pipe open after the probe ends.
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "dispatch_kernel.runtime.probe", str(request), str(answer_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=where, start_new_session=True,
                env={**without_credentials(dict(os.environ)), "PYTHONUNBUFFERED": "1"})
            try:
                process.wait(PROBE_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise InvalidRequestError(
                    f"{filename}: loading the code took longer than {PROBE_TIMEOUT:g}s") from None
            finally:
                _end_session(process)
        try:
            answer = json.loads(answer_path.read_text())
        except (OSError, ValueError):
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise InvalidRequestError(f"{filename}: loading the code failed: {' '.join(tail) or 'no answer'}") from None
    if answer.get("ok"):
        return
    message = answer.get("message", "")
    if answer.get("error") == "import":
        raise InvalidRequestError(
            f"{filename}: {message} (an import at the top of the code runs where it is deployed; "
            "import inside the handler instead, so that it runs in the function's environment "
            "with its requirements)")
    if answer.get("error") == "handler":
        raise InvalidRequestError(message)
    raise InvalidRequestError(f"{filename}: running the code failed: {message}")


def _end_session(process: subprocess.Popen) -> None:
    """Kill the probe's session: whatever its text left running ends with it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


__all__ = ["package_text"]
