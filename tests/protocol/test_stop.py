"""Stop sequences on the client: blocking and streamed, split anywhere."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from haufe_copilot.protocol.stop import StopFilter, cut_at_stop


def test_cut_at_the_first_of_several() -> None:
    assert cut_at_stop("eins zwei drei", ["drei", "zwei"]) == ("eins ", True)
    assert cut_at_stop("eins", ["zwei"]) == ("eins", False)
    assert cut_at_stop("eins", []) == ("eins", False)


@given(
    st.text(alphabet="abc §", max_size=40),
    st.lists(st.text(alphabet="abc§", min_size=1, max_size=4), max_size=3),
    st.lists(st.integers(min_value=0, max_value=40), max_size=10),
)
# Found by this test: a complete stop held back behind a longer one that never completed.
@example(text="ab", stops=["b", "aba"], cuts=[])
def test_streamed_equals_blocking_for_any_split(text: str, stops: list[str], cuts: list[int]) -> None:
    expected, found = cut_at_stop(text, stops)
    pieces, previous = [], 0
    for cut in sorted(c for c in set(cuts) if c <= len(text)):
        pieces.append(text[previous:cut])
        previous = cut
    pieces.append(text[previous:])
    stop_filter = StopFilter(stops)
    emitted = "".join(stop_filter.feed(p) for p in pieces) + stop_filter.flush()
    assert emitted == expected
    assert stop_filter.stopped == found


def test_a_longer_stop_that_began_earlier_wins() -> None:
    f = StopFilter(["a", "baa"])
    assert f.feed("ba") == ""  # "b" may begin "baa": held, though "a" already matched
    assert f.feed("a") == "" and f.stopped
    assert cut_at_stop("baa", ["a", "baa"]) == ("", True)


def test_nothing_after_the_stop_is_emitted_even_held_back() -> None:
    f = StopFilter(["END"])
    assert f.feed("text E") == "text "
    assert f.feed("N") == ""
    assert f.feed("D and more") == ""
    assert f.stopped and f.flush() == ""


def test_a_stop_held_behind_a_longer_one_that_never_completes_still_cuts() -> None:
    stop_filter = StopFilter(["b", "aba"])
    assert stop_filter.feed("ab") == ""  # "ab" may still become "aba"
    assert stop_filter.flush() == "a"
    assert stop_filter.stopped
