"""emsbench.chain: an intact chain verifies; an edited, deleted, reordered or inserted
entry is detected; a cut-off tail only with an anchor; floats are never hashed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emsbench.chain import GENESIS, Link, Scalar, entry_hash, verify


def build(fields: list[dict[str, Scalar]]) -> list[Link]:
    links, prev = [], GENESIS
    for seq, f in enumerate(fields, start=1):
        digest = entry_hash(prev, seq, f)
        links.append(Link(seq, f, prev, digest))
        prev = digest
    return links


ENTRIES: list[dict[str, Scalar]] = [
    {"outcome": "accepted", "country": "NO", "n": 1, "ok": True, "note": None},
    {"outcome": "rejected", "country": "SE", "n": 2, "ok": False, "note": "bad"},
    {"outcome": "duplicate", "country": "NO", "n": 3, "ok": True, "note": "æøå ✓"},
    {"outcome": "accepted", "country": "DK", "n": 4, "ok": True, "note": None},
    {"outcome": "rejected", "country": "FI", "n": 5, "ok": False, "note": ""}]


@pytest.fixture
def links() -> list[Link]:
    return build(ENTRIES)


def test_an_intact_chain_verifies(links: list[Link]) -> None:
    assert verify(links) == []
    assert verify([]) == []
    assert links[0].prev_hash == GENESIS == "0" * 64
    anchors = {link.seq: link.hash for link in links}
    assert verify(links, anchors) == []


def test_the_hash_is_deterministic_and_covers_everything() -> None:
    fields: dict[str, Scalar] = {"b": 1, "a": "x"}
    h = entry_hash(GENESIS, 1, fields)
    assert h == entry_hash(GENESIS, 1, {"a": "x", "b": 1})  # key order does not matter
    assert len(h) == 64 and int(h, 16) >= 0
    assert h != entry_hash(GENESIS, 2, fields)  # the position
    assert h != entry_hash("1" * 64, 1, fields)  # the predecessor
    assert h != entry_hash(GENESIS, 1, {"b": 1, "a": "y"})  # a value
    assert h != entry_hash(GENESIS, 1, {"b": 1, "a": "x", "c": None})  # an added field
    assert entry_hash(GENESIS, 1, {"a": 1}) != entry_hash(GENESIS, 1, {"a": "1"})  # types
    assert entry_hash(GENESIS, 1, {"a": True}) != entry_hash(GENESIS, 1, {"a": 1})


@pytest.mark.parametrize("index", range(len(ENTRIES)))
def test_an_edited_entry_is_detected(links: list[Link], index: int) -> None:
    edited = list(links)
    edited[index] = replace(links[index], fields={**links[index].fields, "outcome": "ok"})
    problems = verify(edited)
    assert problems == [f"entry {index + 1}: its content does not match its hash "
                        "(the entry was edited)"]


def test_an_edited_and_rehashed_entry_breaks_the_next_link(links: list[Link]) -> None:
    # The forger recomputes the hash of the entry they edit, but not of everything after.
    fields = {**links[1].fields, "outcome": "accepted"}
    forged = Link(2, fields, links[1].prev_hash, entry_hash(links[1].prev_hash, 2, fields))
    problems = verify([links[0], forged, *links[2:]])
    assert problems == ["entry 3: does not link to the entry before it "
                        "(an entry was deleted, inserted or moved)"]
    # ...which an anchor from a receipt for entry 2 also shows.
    assert any("anchor 2" in p for p in verify([links[0], forged, *links[2:]],
                                               {2: links[1].hash}))


@pytest.mark.parametrize("index", range(len(ENTRIES) - 1))
def test_a_deleted_entry_is_detected(links: list[Link], index: int) -> None:
    problems = verify(links[:index] + links[index + 1:])
    assert problems
    assert any("expected sequence number" in p for p in problems)
    assert any("does not link" in p for p in problems)


def test_reordered_entries_are_detected(links: list[Link]) -> None:
    swapped = [links[0], links[2], links[1], *links[3:]]
    problems = verify(swapped)
    assert any("entry 3: expected sequence number 2" in p for p in problems)
    assert any("does not link" in p for p in problems)
    # Renumbering the swapped entries to hide the gap breaks their hashes instead.
    renumbered = [links[0], replace(links[2], seq=2), replace(links[1], seq=3), *links[3:]]
    problems = verify(renumbered)
    assert any("edited" in p for p in problems) and any("does not link" in p for p in problems)


def test_an_inserted_entry_is_detected(links: list[Link]) -> None:
    fields: dict[str, Scalar] = {"outcome": "accepted", "country": "NO", "n": 99, "ok": True,
                                 "note": None}
    inserted = Link(3, fields, links[1].hash, entry_hash(links[1].hash, 3, fields))
    shifted = [replace(link, seq=link.seq + 1) for link in links[2:]]
    problems = verify([*links[:2], inserted, *shifted])
    assert problems  # entry 4 neither links to the forged entry nor matches its hash
    assert any(p.startswith("entry 4:") for p in problems)


def test_a_chain_must_start_at_genesis(links: list[Link]) -> None:
    problems = verify(links[1:])
    assert any("entry 2: expected sequence number 1" in p for p in problems)
    assert any("entry 2: does not link" in p for p in problems)


def test_a_cut_tail_is_detected_only_with_an_anchor(links: list[Link]) -> None:
    cut = links[:3]
    assert verify(cut) == []  # a shorter chain is still a valid chain
    problems = verify(cut, {5: links[4].hash})
    assert problems == ["anchor 5: the log has no such entry (entries were cut off after "
                        "entry 3)"]
    assert verify(cut, {3: links[2].hash}) == []  # an anchor inside the kept part is fine


def test_an_anchor_with_another_hash_is_detected(links: list[Link]) -> None:
    problems = verify(links, {2: "f" * 64})
    assert problems == ["anchor 2: the entry's hash differs from the one the receipt "
                        "recorded"]


@pytest.mark.parametrize("value", [1.5, 0.0, float("nan"), [1], {"a": 1}, b"x"])
def test_only_scalars_are_hashed(value: object) -> None:
    with pytest.raises(TypeError, match="must be str, int, bool or None"):
        entry_hash(GENESIS, 1, {"ok": 1, "bad": value})  # type: ignore[dict-item]
