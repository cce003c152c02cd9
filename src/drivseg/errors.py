"""User-facing errors: raised for bad input, printed by the entry points as one line."""


class DrivsegError(Exception):
    """Bad input a user can fix (paths, flags, data). Entry points print it without a traceback."""


class DataError(DrivsegError):
    """A dataset on disk is missing, incomplete or inconsistent with its label spec."""


class ConfigError(DrivsegError):
    """A flag or config file value is invalid."""
