"""The notebook face: how long a `%%dispatch` cell takes, against a plain `def` cell."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from . import Result, p50

_MS = 1e3


def cell_to_ready(quick: bool = False) -> list[Result]:
    """Executing a `%%dispatch` cell until its function is READY, in a real IPython shell:
    a new function (environment cached) and an unchanged cell, against a plain `def` cell."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    iterations = 10 if quick else 60
    home = tempfile.mkdtemp(prefix="dk-bench-nb-")
    previous_home = os.environ.get("DISPATCH_HOME")
    os.environ["DISPATCH_HOME"] = home
    shell = InteractiveShell.instance()
    try:
        with capture_output():
            shell.run_line_magic("load_ext", "dispatch_kernel")
            shell.run_cell("%%dispatch warmup\ndef warmup(x):\n    return x\n")  # env + fork server

            def timed(cell: str) -> float:
                with capture_output():
                    start = time.perf_counter()
                    result = shell.run_cell(cell)
                    elapsed = time.perf_counter() - start
                if not result.success:
                    raise RuntimeError(f"cell failed: {result.error_in_exec!r}")
                return elapsed

            plain = [timed(f"def plain_{i}(x):\n    return x + {i}\n") for i in range(iterations)]
            new = [timed(f"%%dispatch\ndef fresh_{i}(x):\n    return x + {i}\n") for i in range(iterations)]
            unchanged_cell = "%%dispatch\ndef same(x):\n    return x + 1\n"
            timed(unchanged_cell)
            unchanged = [timed(unchanged_cell) for _ in range(iterations)]
            client = shell.magics_manager.registry["DispatchMagics"].client
            ready = sum(client.get_function(f"fresh_{i}").status == "READY" for i in range(iterations))
            shell.run_line_magic("unload_ext", "dispatch_kernel")
    finally:
        shell.reset(new_session=False)
        if previous_home is None:
            os.environ.pop("DISPATCH_HOME", None)
        else:
            os.environ["DISPATCH_HOME"] = previous_home
        shutil.rmtree(home, ignore_errors=True)
    baseline = p50(plain) * _MS
    return [
        Result("cell", "new fn p50 ms", p50(new) * _MS, "plain def cell", baseline,
               "<= 300 ms", p50(new) * _MS <= 300,
               f"{iterations} new functions, {ready} READY; the environment and fork server were warm"),
        Result("cell", "unchanged p50 ms", p50(unchanged) * _MS, "plain def cell", baseline,
               "<= 20 ms", p50(unchanged) * _MS <= 20),
    ]


BENCHMARKS = {"cell": cell_to_ready}
