"""The one error the command reports as itself: a problem worth one line to the user."""


class CliError(Exception):
    """A problem worth one line to the user."""


__all__ = ["CliError"]
