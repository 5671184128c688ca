"""One exception family, titled for the user.

Library errors are wrapped once, where they happen, so that pages can show ``e.title`` and
``e.msg`` and the CLI can print one clear line without a traceback.
"""

from __future__ import annotations


class MarketLabError(Exception):
    """An error a user can act on: ``title`` says what failed, ``msg`` says why and what to do."""

    default_title = "Something went wrong"

    def __init__(self, msg: str, title: str | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.title = title or self.default_title

    def __str__(self) -> str:
        return f"{self.title}: {self.msg}"


class ConfigError(MarketLabError):
    default_title = "Invalid setting"


class StoreError(MarketLabError):
    default_title = "The database could not be used"


class UploadError(MarketLabError):
    """The file as a whole cannot be read (empty, binary, too large, undecodable, unknown format)."""

    default_title = "This file cannot be imported"


class MappingError(MarketLabError):
    """The column mapping is incomplete or contradictory."""

    default_title = "The column mapping needs attention"


class QueryError(MarketLabError):
    default_title = "The query could not run"


class ModelLoadError(MarketLabError):
    """The model named by MARKETLAB_MODEL is missing, incomplete or unreadable, or the device is wrong."""

    default_title = "The language model could not be loaded"


class GenerationError(MarketLabError):
    """The model was loaded but could not produce text (out of memory on every device, bad parameters)."""

    default_title = "The language model could not write copy"


class LLMServerError(MarketLabError):
    """The OpenAI-compatible server at MARKETLAB_LLM_URL did not answer, refused, or sent something unreadable."""

    default_title = "The language model server could not be used"


class InvalidRequestError(MarketLabError):
    """What was asked cannot be done as asked: an unknown choice, a value out of range, nothing chosen, a refused action."""

    default_title = "Check what was asked"


class NotFoundError(InvalidRequestError):
    """An id that names nothing stored: a product, a variant, a segmentation run or segment, a job."""

    default_title = "Not found"


class NoDataError(MarketLabError):
    """The data holds too little for what was asked: no events, too few users or purchases, nobody at a step."""

    default_title = "Not enough data"


class UnavailableError(MarketLabError):
    """An optional part is not installed (UMAP, the sentence-embedding model's files)."""

    default_title = "This feature is unavailable"
