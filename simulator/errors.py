"""Errors that shopgym reports to its users.

Every error says what is wrong and where (file, line, column, field or option), so
the command-line interface can print it as one line instead of a traceback.
"""


class ShopgymError(Exception):
    """Base class of the errors shopgym raises on bad input."""


class DataError(ShopgymError, ValueError):
    """A data file is missing or malformed (the message names the file and the place)."""


class ConfigError(ShopgymError, ValueError):
    """An option or configuration value is invalid (the message names the option)."""


class SlateError(ShopgymError, ValueError):
    """An action is not a valid slate: wrong shape, out of range, or repeated items."""
