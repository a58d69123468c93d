"""dispatch-kernel: serverless functions from Jupyter.

    import dispatch_kernel as dk
    client = dk.connect()
    add = client.deploy(lambda x, y: x + y, name="add")
    add(1, 2)

Importing this package is cheap on purpose: it loads only the model and the client, so a
worker process (which imports dispatch_kernel.runtime) pays for nothing else.
"""

from .client import Client, FunctionHandle, LocalClient, RunHandle, connect
from .model import (
    BaseImage,
    ConflictError,
    DeployError,
    DispatchError,
    ErrorType,
    EventSource,
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
    Subscription,
)
from .runtime.context import Context

__version__ = "0.1.0"


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
    "Image",
    "InvalidRequestError",
    "LocalClient",
    "NotFoundError",
    "PayloadTooLargeError",
    "Run",
    "RunError",
    "RunFailure",
    "RunFunctionError",
    "RunHandle",
    "RunInputError",
    "RunStatus",
    "RunSystemError",
    "Secret",
    "Subscription",
    "connect",
]
