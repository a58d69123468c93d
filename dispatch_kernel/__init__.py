"""dispatch-kernel: serverless functions from Jupyter.

    import dispatch_kernel as dk
    client = dk.connect()
    add = client.deploy(lambda x, y: x + y, name="add")
    add(1, 2)

Importing this package is cheap on purpose: it loads only the model and the clients (the
standard library's HTTP for the REST one), so a worker process (which imports
dispatch_kernel.runtime) pays for nothing else; the core is built only when `connect()` is
called without a server. The clients live in private modules, re-exported here: _client (the
Client protocol), _handles, _local (in-process) and _http (REST).
"""

from ._client import Client
from ._connect import connect
from ._handles import FunctionHandle, RunHandle
from ._http import HttpClient
from ._local import LocalClient
from .model import (
    Api,
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
    Organization,
    PayloadTooLargeError,
    Policy,
    Run,
    RunError,
    RunFailure,
    RunFunctionError,
    RunInputError,
    RunStatus,
    RunSystemError,
    Secret,
    ServiceAccount,
    StorageError,
    Subscription,
    UnauthorizedError,
)
from .runtime.context import Context
from .runtime.response import Response
from .version import __version__ as __version__



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
