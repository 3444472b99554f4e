"""The client options a LangChain component holds (the core's `ClientFields`), with what
LangChain adds: the keys read from the environment at construction, `dumpd`/`dumps` with the
credentials as LangChain secrets, and pickles and deep copies that leave the clients behind."""

from __future__ import annotations

import copy
import re
from typing import Any

from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, Field, SecretStr

from haufe_copilot.conversation.client_fields import ClientFields
from haufe_copilot.conversation.holder import share_by_reference
from haufe_copilot.conversation.pickling import connections_from_pickle, connections_to_pickle
from haufe_copilot.protocol.settings import is_secret_header, timeout_to_json


def header_secret_id(name: str) -> str:
    """The LangChain secret a credential header is dumped as: `HAUFE_COPILOT_HEADER_<NAME>`."""
    return "HAUFE_COPILOT_HEADER_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


class HaufeClientFields(ClientFields):
    """Connection settings shared by `ChatHaufeCopilot`, `HaufeCopilotRetriever` and `HaufeCopilotTool`.

    `default_headers`: credentials among them are redacted in `repr`, `model_dump` and tracers;
    `dumpd`/`dumps` keep them as LangChain secrets named `HAUFE_COPILOT_HEADER_<NAME>`, which
    `load(..., secrets_map=...)` or `secrets_from_env=True` fill in again.
    """

    # LangChain's way: the keys are read from the environment when the component is built (and
    # dumped as the secrets `lc_secrets` names).
    api_key: SecretStr | None = Field(default_factory=secret_from_env("HAUFE_COPILOT_API_KEY", default=None))
    """The `api-key` of the Assistant API; default from `HAUFE_COPILOT_API_KEY`."""
    base_url: str | None = Field(default_factory=from_env("HAUFE_COPILOT_BASE_URL", default=None))
    """The Assistant API's base URL; default `HAUFE_COPILOT_BASE_URL`, else https://api.haufe.ai."""
    platform_api_key: SecretStr | None = Field(
        default_factory=secret_from_env("HAUFE_COPILOT_PLATFORM_API_KEY", default=None)
    )
    """Bearer key of the completions and async-streams APIs; default `api_key`."""

    @property
    def _header_secrets(self) -> dict[str, str]:
        """For `lc_secrets`: with a credential among `default_headers`, the field is a secret, so
        LangChain's dump neither escapes nor shows it; `to_json` then writes each credential
        header as a secret reference of its own and the others as they are."""
        if any(is_secret_header(name) for name in self.default_headers or {}):
            return {"default_headers": "HAUFE_COPILOT_DEFAULT_HEADERS"}
        return {}

    def to_json(self) -> Any:
        serialised = super().to_json()  # type: ignore[misc]
        kwargs = serialised.get("kwargs")
        if isinstance(kwargs, dict):
            if "timeout" in kwargs:
                kwargs["timeout"] = timeout_to_json(kwargs["timeout"])
            if "default_headers" in kwargs and self.default_headers is not None:
                kwargs["default_headers"] = {
                    name: {"lc": 1, "type": "secret", "id": [header_secret_id(name)]}
                    if is_secret_header(name)
                    else value
                    for name, value in self.default_headers.items()
                }
        return serialised

    def __getstate__(self) -> dict[Any, Any]:
        state: dict[Any, Any] = super().__getstate__()
        state["__dict__"] = connections_to_pickle(state["__dict__"], type(self).__name__)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state = dict(state)
        state["__dict__"] = connections_from_pickle(dict(state["__dict__"]), type(self).__name__)
        super().__setstate__(state)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        # pydantic's own state, not the pickle's: a copy shares the clients and the token
        # provider by reference, whether or not they could be pickled.
        memo = share_by_reference(self, memo)
        clone = type(self).__new__(type(self))
        BaseModel.__setstate__(clone, copy.deepcopy(BaseModel.__getstate__(self), memo))
        return clone
