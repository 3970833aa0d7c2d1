"""User-facing errors.

A `SalmonError` is something the user can fix (a bad file, a bad flag). The CLI prints
its message as one line and exits with code 2; anything else is a bug and shows a
traceback.
"""


class SalmonError(Exception):
    """An error caused by user input; its message says what is wrong and what to do."""

    exit_code = 2
