"""Notebook widgets for dispatch-kernel: live runs, one run in detail, a function, a form.

    from dispatch_kernel.widgets import RunsTable
    RunsTable(client)            # the newest runs, live; pick one to inspect it

Importing this package imports ipywidgets (the `notebook` extra); `import dispatch_kernel`
does not. Every widget also displays as static HTML and text, so an executed notebook reads
well where widgets do not render.
"""

from ._function_card import FunctionCard
from ._invoke_form import InvokeForm
from ._run_inspector import RunInspector
from ._runs_table import RunsTable

__all__ = [
    "FunctionCard",
    "InvokeForm",
    "RunInspector",
    "RunsTable",
]
