"""The one exception type the add-on turns into a user-facing report."""


class ImHeadError(Exception):
    """Something the user can cause or fix: the message is shown to them as it is."""


class ModelFileError(ImHeadError):
    """A model file that is missing, truncated, corrupt, of another version or configuration."""
