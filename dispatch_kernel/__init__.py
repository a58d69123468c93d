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
    ConflictError,
    DeployError,
    DispatchError,
    ErrorType,
    Function,
    FunctionStatus,
    InvalidRequestError,
    NotFoundError,
    Run,
    RunError,
    RunFailure,
    RunFunctionError,
    RunInputError,
    RunStatus,
    RunSystemError,
    Secret,
)
from .runtime.context import Context

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConflictError",
    "Context",
    "DeployError",
    "DispatchError",
    "ErrorType",
    "Function",
    "FunctionHandle",
    "FunctionStatus",
    "InvalidRequestError",
    "LocalClient",
    "NotFoundError",
    "Run",
    "RunError",
    "RunFailure",
    "RunFunctionError",
    "RunHandle",
    "RunInputError",
    "RunStatus",
    "RunSystemError",
    "Secret",
    "connect",
]
