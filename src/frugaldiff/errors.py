"""The harness's error tree.

Every message names the file, the key, what was expected and what was found, so a user can fix
the input without reading a traceback. The CLI turns these into exit code 2 and one line.
"""


class FrugaldiffError(Exception):
    """Base of every error the harness raises on purpose."""


class ConfigError(FrugaldiffError):
    """A config file or value is wrong: unknown key, wrong type, out of range."""


class DataError(FrugaldiffError):
    """A dataset archive, sample set or array is missing, corrupt or of the wrong shape."""


class CheckpointError(FrugaldiffError):
    """A checkpoint or resumable state is missing, unreadable or does not fit the model."""


class NumericsError(FrugaldiffError):
    """A loss or tensor became NaN or infinite."""
