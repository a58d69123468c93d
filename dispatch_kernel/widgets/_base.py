"""What every dispatch widget shares: display data that reads well without a live kernel, and
closing the whole tree of widgets it is made of.

ipywidgets 8 displays a widget as `application/vnd.jupyter.widget-view+json` plus a short
`text/plain` repr. A notebook executed headlessly (nbclient) or viewed where widgets do not
render (GitHub, nbconvert without widget state) would show only that repr. Each of our widgets
adds a static `text/html` summary and a fuller `text/plain` to the same bundle, so a frontend
that can render the widget does, and every other one shows the summary.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets


class DispatchWidget:
    """Mixin placed before an ipywidgets Box: adds the static fallback and a deep close().

    Subclasses implement `_static_text()` and `_static_html()`.
    """

    def _static_text(self) -> str:
        raise NotImplementedError

    def _static_html(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # After close() ipywidgets sets the instance attribute `_repr_mimebundle_` to None, which
        # shadows this method: a closed widget then displays as its plain repr, as ipywidgets intends.
        bundle = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        bundle["text/plain"] = self._static_text()
        bundle["text/html"] = self._static_html()
        return bundle

    def close(self) -> None:
        """Close this widget and every widget it is made of (ipywidgets closes only the one)."""
        for child in getattr(self, "children", ()):
            close_tree(child)
        super().close()  # type: ignore[misc]


def close_tree(widget: widgets.Widget) -> None:
    """Close `widget` and, depth first, every child it holds."""
    if isinstance(widget, DispatchWidget):
        widget.close()  # it may hold more than its children: threads, subscriptions
        return
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()
