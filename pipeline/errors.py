"""The errors a user can act on; the CLI turns each into one line and an exit code."""

from __future__ import annotations


class PipelineError(Exception):
    """Base: a failure the user can act on. `str()` is the one line the CLI prints."""

    exit_code = 1


class InputError(PipelineError):
    """An input file cannot be read at all: missing, truncated, or not a session export."""

    exit_code = 2

    def __init__(self, path: object, problem: str, hint: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        message = f"{self.path}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


def unreadable(path: object, error: BaseException | None) -> BaseException:
    """What to raise for a file whose reading failed with `error`: a file read a moment ago
    that went away or broke under a pass of its own is the input's fault; anything else, as
    it came."""
    if isinstance(error, OSError):
        return InputError(path, f"cannot read: {error.strerror or error}")
    return error if error is not None else AssertionError(f"{path}: read, but no result")


class WarehouseError(PipelineError):
    """The warehouse cannot be read or written."""

    exit_code = 3


class RejectRateExceeded(PipelineError):
    """The ingest completed, but more rows were rejected than the caller allows."""

    exit_code = 4


class ApiError(PipelineError):
    """The sessions API could not be reached, or kept failing after the retries: worth trying
    again later, unlike a wrong setting (2). Nothing was committed."""

    exit_code = 5
