"""The one exception type that means "the user gave us something wrong"."""


class UserError(Exception):
    """Bad input or a bad request: the CLI prints ``error: <message>`` on one line and exits 2.

    The message names the file or value, what is wrong, and how to fix it.
    """
