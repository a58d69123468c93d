"""The server's own credentials, which no process that runs functions may inherit.

Light on purpose (no imports beyond the standard library's core): the fork server is started
with an environment cleaned by it before the rest of the core is even imported.
"""

from __future__ import annotations

KEY_ENV = "DISPATCH_SECRET_KEY"
# What a process that runs functions must not inherit: the server's own credentials. (A
# worker still runs as the server's user; the container driver isolates it further.)
CREDENTIAL_ENV = ("DISPATCH_TOKEN", KEY_ENV, "JUPYTER_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_API_TOKEN")


def without_credentials(env: dict[str, str]) -> dict[str, str]:
    """`env` without the server's credentials (CREDENTIAL_ENV), for a process that runs
    functions: the secret key and the tokens stay with the server."""
    return {name: value for name, value in env.items() if name not in CREDENTIAL_ENV}


__all__ = ["CREDENTIAL_ENV", "KEY_ENV", "without_credentials"]
