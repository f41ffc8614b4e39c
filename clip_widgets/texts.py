"""Lists of texts as the public functions take them: labels, class prompts, vocabularies and
prompt templates.

A bare string is one text, never its characters: ``labels="a cat"`` means ``["a cat"]`` and
``templates="a photo of a {}."`` one template, everywhere a list of texts is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def text_list(texts: str | Iterable[Any], what: str = "labels") -> list[Any]:
    """``texts`` as a list; a bare string is a list of one. ``what`` names the argument in the
    error for something that is neither a string nor an iterable."""
    if isinstance(texts, str):
        return [texts]
    if texts is None or not isinstance(texts, Iterable):
        raise TypeError(f"{what} must be a string or a list of strings, not {type(texts).__name__}")
    return list(texts)


def template_list(templates: str | Iterable[str] | None) -> list[str] | None:
    """Prompt templates as a list (a bare string is one template); ``None`` stays ``None``."""
    return None if templates is None else text_list(templates, "templates")
