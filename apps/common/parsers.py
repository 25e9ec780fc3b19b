"""Request parsing that fails cleanly on hostile bodies."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 20


def _depth(value, limit: int, level: int = 1) -> None:
    if level > limit:
        raise ParseError("JSON nested too deeply.")
    if isinstance(value, dict):
        for item in value.values():
            _depth(item, limit, level + 1)
    elif isinstance(value, list):
        for item in value:
            _depth(item, limit, level + 1)


class SafeJSONParser(JSONParser):
    """JSON with a nesting limit: deep bodies are a 400, never a RecursionError 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON nested too deeply.") from None
        _depth(data, MAX_DEPTH)
        return data
