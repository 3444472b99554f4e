"""`response_format` as the async-streams API takes it, for `bind_tools(..., response_format=)`
(LangChain's `ProviderStrategy`, as `create_agent(..., response_format=ProviderStrategy(S))`
binds it) and for `bind(response_format=...)`.

The API's formats are `text`, `json_schema` and `tool_call`; a combination it cannot honour is
refused here, when it is bound, rather than dropped when it is sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.utils.function_calling import convert_to_json_schema
from langchain_core.utils.pydantic import is_basemodel_subclass

from haufe_copilot.errors import InvalidRequestError

__all__ = ["json_schema_format", "tools_response_format"]

_TYPES = ("text", "json_schema", "tool_call")


def json_schema_format(schema: dict[str, Any] | type | None, strict: bool | None = None) -> dict[str, Any]:
    """`{"type": "json_schema", "json_schema": {name, schema[, strict]}}` for a pydantic class,
    TypedDict or JSON schema (`None`: any JSON object)."""
    json_schema = convert_to_json_schema(schema) if schema is not None else {"type": "object"}
    spec: dict[str, Any] = {"name": json_schema.get("title", "output"), "schema": json_schema}
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


def tools_response_format(response_format: Any, strict: bool | None = None) -> dict[str, Any]:
    """A `response_format` to send with tools: an OpenAI-style dict (`json_schema`, `text`,
    `tool_call`), or a schema (pydantic class, TypedDict, JSON schema) for a `json_schema` one."""
    if isinstance(response_format, type) and (
        is_basemodel_subclass(response_format) or hasattr(response_format, "__annotations__")
    ):
        return json_schema_format(response_format, strict)
    if not isinstance(response_format, Mapping):
        raise InvalidRequestError(
            f"response_format must be a dict such as {{'type': 'json_schema', 'json_schema': {{...}}}} "
            f"or a schema class, not {type(response_format).__name__}."
        )
    kind = response_format.get("type")
    if kind == "json_object":
        raise InvalidRequestError(
            "Haufe Copilot has no JSON mode (response_format type 'json_object'): bind "
            "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {'type': 'object'}}}, or "
            "use with_structured_output(schema, method='json_schema')."
        )
    if kind == "object" or (kind is None and "properties" in response_format):  # a bare JSON schema
        return json_schema_format(dict(response_format), strict)
    if kind not in _TYPES:
        raise InvalidRequestError(
            f"response_format type {kind!r} is not one the API takes: use one of {list(_TYPES)}, "
            "or pass a JSON schema or a schema class."
        )
    result = dict(response_format)
    if strict is not None and kind == "json_schema" and isinstance(result.get("json_schema"), Mapping):
        result["json_schema"] = {**result["json_schema"], "strict": strict}
    return result
