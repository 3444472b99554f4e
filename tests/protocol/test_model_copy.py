"""The copies of validated prototypes the adapters build for every delta (protocol/model_copy)."""

from __future__ import annotations

from functools import partial

from pydantic import BaseModel, ConfigDict, PrivateAttr

from haufe_copilot.protocol.model_copy import prepared_copy


class Piece(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str = ""
    tags: list[str] = []
    meta: dict[str, str] = {}


def test_a_prepared_copy_is_what_model_copy_makes_with_containers_of_its_own() -> None:
    prototype = Piece.model_validate({"text": "", "note": "extra"})
    copy = prepared_copy(prototype, {"text": "x", "tags": [], "meta": {}})
    assert not isinstance(copy, partial)  # the fast copy passed its check
    first, second = (
        copy({"text": "Wort", "tags": [], "meta": {}}),
        copy({"text": "Satz", "tags": [], "meta": {}}),
    )
    expected = prototype.model_copy(update={"text": "Wort", "tags": [], "meta": {}})
    assert first == expected and first.model_fields_set == expected.model_fields_set
    assert (
        first.__pydantic_extra__ == {"note": "extra"}
        and first.__pydantic_extra__ is not prototype.__pydantic_extra__
    )
    first.tags.append("a")
    first.model_fields_set.add("x")
    first.text = "geändert"
    assert second.tags == [] and "x" not in second.model_fields_set and second.text == "Satz"
    assert prototype.text == "" and prototype.tags == []


def test_a_prototype_with_private_attributes_is_copied_by_model_copy() -> None:
    class Private(BaseModel):
        text: str = ""
        _state: int = PrivateAttr(default=0)

    prototype = Private()
    copy = prepared_copy(prototype, {"text": "x"})
    assert isinstance(copy, partial)  # pydantic's own copy: the fast one does not copy privates
    made = copy({"text": "Wort"})
    assert made.text == "Wort" and made._state == 0
