"""Exceptions shared by every tool of metatrain-nc."""


class UserInputError(ValueError):
    """Bad input from the user: a message that names the problem and the fix.

    The ``mtt-nc`` command line prints it as ``mtt-nc <command>: error: <message>``
    and exits with code 2, without a traceback. Python API users get a ``ValueError``.
    """
