"""The one exception a user can cause; the CLI prints it as a single line."""


class ZenserveError(Exception):
    """A problem the user can fix (a bad file, a bad option); shown without a traceback."""
