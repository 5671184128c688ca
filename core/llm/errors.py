"""The language model's errors, titled for the user.

They subclass ``MarketLabError`` so pages show ``e.title`` and ``e.msg`` and the CLI prints one
line. (Kept here while core/llm is new; they can move into ``core/errors.py`` unchanged.)
"""

from __future__ import annotations

from core.errors import MarketLabError


class ModelLoadError(MarketLabError):
    """The model named by MARKETLAB_MODEL is missing, incomplete or unreadable, or the device is wrong."""

    default_title = "The language model could not be loaded"


class GenerationError(MarketLabError):
    """The model was loaded but could not produce text (out of memory on every device, bad parameters)."""

    default_title = "The language model could not write copy"


class LLMServerError(MarketLabError):
    """The OpenAI-compatible server at MARKETLAB_LLM_URL did not answer, refused, or sent something unreadable."""

    default_title = "The language model server could not be used"
