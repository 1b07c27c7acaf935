"""The exceptions mixq raises: one class per kind of problem, with the message and exit code
that the `mixq` command line gives for the same input (`code`, as in docs/cli.md)."""


class Error(Exception):
    """Base class of mixq's errors. `code` is the CLI's exit code for the same problem."""

    code = 1

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgumentError(Error, ValueError):
    """An option, its value or a plan's contents are wrong (CLI exit code 2)."""

    code = 2


class InvalidModelError(Error):
    """The model is unreadable, corrupt or ill-formed (exit code 3)."""

    code = 3


class UnsupportedError(Error):
    """Valid ONNX that mixq cannot run or write (an operator, opset or dtype) (exit code 4)."""

    code = 4


class InvalidDataError(Error, ValueError):
    """The data is missing, empty, or of the wrong shape / dtype for the model (exit code 5)."""

    code = 5


class ExecutionError(Error):
    """An operator failed while running, e.g. a shape mismatch found at run time (exit code 6)."""

    code = 6


class FileError(Error, OSError):
    """A file cannot be read or written (exit code 7)."""

    code = 7


class InternalError(Error):
    """A bug in mixq (exit code 70): please report it with the message."""

    code = 70


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the job at a safe point; nothing was written. What was finished
    is in the job's resume files (the sensitivity table, the reconstruction checkpoint), so the same
    call resumes there. `code` is 130 (SIGINT) or 143 (SIGTERM), as the CLI exits."""

    def __init__(self, message, code=130):
        super().__init__(message)
        self.message = message
        self.code = code


_BY_CODE = {c.code: c for c in (InvalidArgumentError, InvalidModelError, UnsupportedError, InvalidDataError,
                                ExecutionError, FileError, InternalError)}


def from_code(code, message):
    """The exception for a CLI exit code (used by the extension)."""
    return _BY_CODE.get(code, Error)(message, code)


def interrupted(code, message):
    return Interrupted(message, code)
