"""Errors the command line turns into one line on stderr and an exit status."""


class QuantgateError(Exception):
    """An error a user can fix; its message is one line saying what and how."""

    exit_code = 2


class InputError(QuantgateError):
    """Bad input or usage (exit 2)."""

    exit_code = 2
