"""What the local and container driver tests share: a crashing function and the pool lookup."""


def crash(kind):
    import ctypes
    import os
    import signal

    if kind == "exit":
        os._exit(3)
    if kind == "segv":
        ctypes.string_at(0)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def driver_pool(client, name):
    dispatch = client.dispatch
    function = dispatch.functions.get(name, dispatch.org(None))
    return dispatch.drivers.get(function.driver).pool(function)
