"""Errors raised for files that cannot be read, each saying what is wrong and where."""

from __future__ import annotations


class CodecError(Exception):
    """Base class of every error about a `.lc` file or a coded payload.

    ``offset`` is the byte position in the file where the problem was found and ``chunk`` the
    number of the chunk (0 for ``HEAD``) when known; both are included in the message.
    """

    def __init__(self, message: str, *, offset: int | None = None, chunk: int | None = None,
                 source: str | None = None) -> None:
        self.reason = message
        self.offset = offset
        self.chunk = chunk
        self.source = source
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.chunk is not None:
            where.append(f"chunk {self.chunk}")
        if self.offset is not None:
            where.append(f"byte {self.offset}")
        text = self.reason + (f" (at {', '.join(where)})" if where else "")
        return f"{self.source}: {text}" if self.source else text

    def with_source(self, source: str) -> "CodecError":
        """Name the file the error is about (for messages shown to a user)."""
        self.source = source
        self.args = (self._compose(),)
        return self


class FormatError(CodecError):
    """The bytes do not follow SPEC.md: wrong signature, bad field, chunks out of order."""


class ChecksumError(FormatError):
    """A chunk's CRC-32 does not match its contents."""


class TruncatedError(FormatError):
    """The data ends inside a chunk or before the ``DONE`` chunk."""


class LimitError(FormatError):
    """A size or count read from the file exceeds a limit of SPEC.md Section 2."""


class UnsupportedVersionError(CodecError):
    """The file needs a format major version this decoder does not read."""


class ModelMismatchError(CodecError):
    """The file names a model, or a weights digest, that this installation does not have."""


class PayloadError(FormatError):
    """A coded payload is invalid: substream directory, tables, escapes or end state."""
