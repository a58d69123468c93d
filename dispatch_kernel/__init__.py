"""dispatch-kernel: serverless functions from Jupyter.

    import dispatch_kernel as dk
    client = dk.connect()
    add = client.deploy(lambda x, y: x + y, name="add")
    add(1, 2)

Importing this package is cheap on purpose: each public name is imported when first used, so
a worker process (which imports dispatch_kernel.runtime) pays for nothing else, the HTTP stack
is loaded only for the REST client, and the core is built only when `connect()` is called
without a server. The clients live in private modules, re-exported here: _client (the Client
protocol), _handles, _local (in-process) and _http (REST).
"""

from __future__ import annotations

from .version import __version__ as __version__

# Not typing's: connect() starts the fork server before anything heavier than the process and
# socket modules is imported, and typing alone would delay it by ~3 ms. Type checkers read
# this name as typing.TYPE_CHECKING.
TYPE_CHECKING = False

# Where each public name lives. They are imported on first use (PEP 562): `import
# dispatch_kernel` then costs almost nothing, and a fork server or worker (which imports
# dispatch_kernel.runtime) pays for neither the model, the clients nor the HTTP stack.
_MODEL_NAMES = (
    "BaseImage", "ConflictError", "DeployError", "DispatchError", "ErrorType", "ForbiddenError", "Function",
    "FunctionStatus", "Image", "InvalidRequestError", "NotFoundError", "PayloadTooLargeError", "Run", "RunError",
    "RunFailure", "RunFunctionError", "RunInputError", "RunStatus", "RunSystemError", "Secret", "StorageError",
    "UnauthorizedError",
)
_ENTITY_NAMES = ("Api", "EventSource", "Organization", "Policy", "ServiceAccount", "Subscription")
_HOMES: dict[str, str] = {
    "Client": "._client",
    "connect": "._connect",
    "FunctionHandle": "._handles",
    "RunHandle": "._handles",
    "HttpClient": "._http",
    "LocalClient": "._local",
    "Context": ".runtime.context",
    "Response": ".runtime.response",
    **dict.fromkeys(_MODEL_NAMES, ".model"),
    **dict.fromkeys(_ENTITY_NAMES, ".entities"),
}

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from typing import Any

    from ._client import Client
    from ._connect import connect
    from ._handles import FunctionHandle, RunHandle
    from ._http import HttpClient
    from ._local import LocalClient
    from .entities import Api, EventSource, Organization, Policy, ServiceAccount, Subscription
    from .model import (
        BaseImage,
        ConflictError,
        DeployError,
        DispatchError,
        ErrorType,
        ForbiddenError,
        Function,
        FunctionStatus,
        Image,
        InvalidRequestError,
        NotFoundError,
        PayloadTooLargeError,
        Run,
        RunError,
        RunFailure,
        RunFunctionError,
        RunInputError,
        RunStatus,
        RunSystemError,
        Secret,
        StorageError,
        UnauthorizedError,
    )
    from .runtime.context import Context
    from .runtime.response import Response


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(home, __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_ipython_extension(ip) -> None:
    """`%load_ext dispatch_kernel`: register `%%dispatch` and `%dispatch` in the shell."""
    from .magics import load  # IPython is imported only here, when a shell asks for it

    load(ip)


def unload_ipython_extension(ip) -> None:
    """`%unload_ext dispatch_kernel`: release the kernel's client and its workers."""
    magics = ip.magics_manager.registry.pop("DispatchMagics", None)
    if magics is not None:
        magics.close()

__all__ = [
    "Api",
    "BaseImage",
    "Client",
    "ConflictError",
    "Context",
    "DeployError",
    "DispatchError",
    "ErrorType",
    "EventSource",
    "ForbiddenError",
    "Function",
    "FunctionHandle",
    "FunctionStatus",
    "HttpClient",
    "Image",
    "InvalidRequestError",
    "LocalClient",
    "NotFoundError",
    "Organization",
    "PayloadTooLargeError",
    "Policy",
    "Response",
    "Run",
    "RunError",
    "RunFailure",
    "RunFunctionError",
    "RunHandle",
    "RunInputError",
    "RunStatus",
    "RunSystemError",
    "Secret",
    "ServiceAccount",
    "StorageError",
    "Subscription",
    "UnauthorizedError",
    "connect",
]
