"""Errors that are the user's to fix: the command line and the add-on show their text, never a traceback."""


class UserError(Exception):
    """A mistake in an input or a setting; the message names it and says what is wrong."""


class InputFileError(UserError):
    """A file that cannot be used as given: the message starts with its path."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


SplatFileError = InputFileError  # the name the splat readers use for it
