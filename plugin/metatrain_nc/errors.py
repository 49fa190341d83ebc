"""Exceptions shared by every tool of metatrain-nc."""


class UserInputError(ValueError):
    """Bad input from the user: a message that names the problem and the fix.

    The ``mtt-nc`` command line prints it as ``mtt-nc <command>: error: <message>``
    and exits with code 2, without a traceback. Python API users get a ``ValueError``.
    """


class ModelError(UserInputError):
    """A model could not give what was asked on a structure: an ASE calculator
    raised, or the model returned non-finite values. The message is one line naming
    the model (its source) and the structure.

    A :class:`UserInputError`, so the command line reports it the same way (exit
    code 2, no traceback); the molecular dynamics turns it into a runaway instead
    (the run stops, its trajectory so far is kept).
    """


class NonFiniteError(ModelError):
    """A model returned NaN or infinite energies, forces or stress.

    :ivar quantities: what was not finite (``"energy"``, ``"conservative forces"``,
        ``"direct forces"``, ``"stress"``).
    """

    def __init__(self, message: str, quantities=()):
        super().__init__(message)
        self.quantities = list(quantities)
