"""Trust registry: round trip through the TOML file, key ids, clear errors, and the key life
cycle (validity windows, rotation, revocation, reload without restart, atomic rewrites)."""

from __future__ import annotations

import base64
import os
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from emsbench import dsse
from hub.trust import KeyEntry, KeyRefused, ReloadingTrust, TrustError, TrustRegistry
from hub.trust_file import add_key, revoke_key, write_registry


def b64(key: dsse.KeyPair) -> str:
    return dsse.public_key_b64(key.public_key)


def test_round_trip_maps_key_ids_to_countries(tmp_path: Path) -> None:
    no1, no2, se = dsse.generate_key(), dsse.generate_key(), dsse.generate_key()
    path = tmp_path / "trust.toml"
    write_registry(path, {"NO": [b64(no1), b64(no2)], "SE": [b64(se)]})
    reg = TrustRegistry.load(path)
    assert set(reg.keys()) == {no1.keyid, no2.keyid, se.keyid}
    assert reg.country_of(no2.keyid) == "NO" and reg.country_of(se.keyid) == "SE"
    assert reg.countries() == ["NO", "SE"] and len(reg) == 3
    # The keys are the real public keys: an envelope signed by no1 verifies with them.
    env = dsse.sign(b"payload", no1)
    assert dsse.verify(env, reg.keys()) == (b"payload", no1.keyid)


def test_unknown_key_id(tmp_path: Path) -> None:
    write_registry(tmp_path / "t.toml", {"NO": [b64(dsse.generate_key())]})
    with pytest.raises(KeyError, match="not in the trust registry"):
        TrustRegistry.load(tmp_path / "t.toml").country_of("0" * 64)


def test_keys_returns_a_copy(tmp_path: Path) -> None:
    write_registry(tmp_path / "t.toml", {"NO": [b64(dsse.generate_key())]})
    reg = TrustRegistry.load(tmp_path / "t.toml")
    reg.keys().clear()
    assert len(reg.keys()) == 1


@pytest.mark.parametrize(("entry", "needle"), [
    ('"not base64!"', "countries.FI.keys[0]"),
    (f'"{base64.b64encode(b"x" * 31).decode()}"', "countries.FI.keys[0]"),
    ("42", "expected a base64 string"),
])
def test_bad_key_names_the_country(tmp_path: Path, entry: str, needle: str) -> None:
    path = tmp_path / "trust.toml"
    path.write_text(f'[countries.NO]\nkeys = ["{b64(dsse.generate_key())}"]\n'
                    f"[countries.FI]\nkeys = [{entry}]\n")
    with pytest.raises(TrustError) as info:
        TrustRegistry.load(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_a_key_may_sign_for_one_country_only(tmp_path: Path) -> None:
    shared = b64(dsse.generate_key())
    with pytest.raises(TrustError, match="both NO and SE"):
        write_registry(tmp_path / "t.toml", {"NO": [shared], "SE": [shared]})
    assert not (tmp_path / "t.toml").exists()


@pytest.mark.parametrize(("text", "needle"), [
    ('[countries.norway]\nkeys = []\n', "two capital letters"),
    ('[countries.NO]\nkeys = "abc"\n', "must be a list"),
    ('[countries.NO]\nkey = []\n', "exactly one key"),
    ("countries = 3\n", "must be a table"),
    ("[countries.NO\n", "not valid TOML"),
])
def test_malformed_registry(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "t.toml").write_text(text)
    with pytest.raises(TrustError, match=needle):
        TrustRegistry.load(tmp_path / "t.toml")


def test_missing_registry_file(tmp_path: Path) -> None:
    with pytest.raises(TrustError, match="does not exist"):
        TrustRegistry.load(tmp_path / "absent.toml")


def test_trust_error_is_a_value_error() -> None:
    # create_app callers (the CLI) catch ValueError for every configuration problem.
    assert issubclass(TrustError, ValueError)


# --- Key life cycle: inline tables, validity windows, revocation, reload, rewrite -------

T0 = datetime(2025, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
CET = timezone(timedelta(hours=1))


def refused(reg: TrustRegistry, keyid: str, at: datetime) -> KeyRefused:
    with pytest.raises(KeyRefused) as info:
        reg.check_valid(keyid, at)
    assert info.value.message == str(info.value)
    return info.value


def test_inline_tables_round_trip(tmp_path: Path) -> None:
    plain, windowed, revoked, se = (dsse.generate_key() for _ in range(4))
    # A note that tries to close the string and open a table of its own.
    sneaky = 'stolen "laptop" \\ \n"]\n[countries.XX]\nkeys = ["AAAA"]\t\x7f'
    countries: dict[str, list[KeyEntry]] = {
        "NO": [b64(plain),
               {"key": b64(windowed), "valid_from": T0,
                "valid_until": datetime(2027, 1, 1, 1, tzinfo=CET) + US, "note": "rotation"},
               {"key": b64(revoked), "revoked_at": T0 + timedelta(days=60), "note": sneaky}],
        "SE": [{"key": b64(se)}],  # a table with only the key is a plain entry
        "FI": [],
    }
    path = tmp_path / "trust.toml"
    write_registry(path, countries)
    text = path.read_text(encoding="utf-8")
    assert "valid_from = 2025-01-01T00:00:00+00:00" in text  # RFC 3339 with offset
    reg = TrustRegistry.load(path)
    assert reg.countries() == ["NO", "SE"]  # nothing injected by the note
    assert [e.keyid for e in reg.entries()] == [plain.keyid, windowed.keyid, revoked.keyid,
                                               se.keyid]
    w = reg.entry(windowed.keyid)
    assert (w.country, w.valid_from, w.valid_until, w.revoked_at, w.note) == (
        "NO", T0, datetime(2027, 1, 1, 1, tzinfo=CET) + US, None, "rotation")
    assert w.valid_from is not None and w.valid_from.tzinfo is not None
    assert reg.entry(revoked.keyid).note == sneaky
    assert reg.entry(revoked.keyid).revoked_at == T0 + timedelta(days=60)
    p = reg.entry(plain.keyid)
    assert (p.valid_from, p.valid_until, p.revoked_at, p.note) == (None, None, None, "")
    # Writing what was loaded gives the same file: nothing is lost or reinterpreted.
    write_registry(tmp_path / "again.toml", reg.as_mapping())
    assert (tmp_path / "again.toml").read_text(encoding="utf-8") == text
    assert "[countries.FI]\nkeys = []" in text


def test_toml_offset_datetimes_load_as_aware_instants(tmp_path: Path) -> None:
    key = dsse.generate_key()
    path = tmp_path / "t.toml"
    path.write_text(f'[countries.NO]\nkeys = [{{ key = "{b64(key)}", '
                    "valid_from = 2025-01-01T01:00:00+01:00, "
                    "valid_until = 2026-01-01T00:00:00Z }]\n")
    entry = TrustRegistry.load(path).entry(key.keyid)
    assert entry.valid_from == T0 and entry.valid_until == datetime(2026, 1, 1, tzinfo=UTC)


def test_array_of_tables_form_is_accepted(tmp_path: Path) -> None:
    key = dsse.generate_key()
    path = tmp_path / "t.toml"
    path.write_text(f'[[countries.NO.keys]]\nkey = "{b64(key)}"\n'
                    "revoked_at = 2025-01-01T00:00:00Z\n")
    assert TrustRegistry.load(path).entry(key.keyid).revoked_at == T0


@pytest.mark.parametrize(("field", "code", "before_ok"), [
    ("valid_from", "key_not_yet_valid", False),
    ("valid_until", "expired_key", True),
    ("revoked_at", "revoked_key", True),
])
def test_check_valid_boundaries(field: str, code: str, before_ok: bool) -> None:
    key = dsse.generate_key()
    reg = TrustRegistry.from_mapping({"NO": [{"key": b64(key), field: T0,
                                              "note": "secret operator note"}]})
    if before_ok:  # one microsecond before the end is fine, the end itself is not
        assert reg.check_valid(key.keyid, T0 - US).keyid == key.keyid
        exc = refused(reg, key.keyid, T0)
        later = refused(reg, key.keyid, T0 + timedelta(days=3650))
        assert later.code == code
    else:  # exactly at valid_from is valid, one microsecond before is not
        assert reg.check_valid(key.keyid, T0).country == "NO"
        exc = refused(reg, key.keyid, T0 - US)
    assert exc.code == code and exc.keyid == key.keyid and exc.country == "NO"
    # Which key, which country, which time, what to do.
    assert key.keyid[:16] in exc.message and "NO" in exc.message
    assert "2025-01-01T00:00:00+00:00" in exc.message
    assert "current key" in exc.message and "hub operator" in exc.message
    # The operator's note never goes back to whoever holds the key.
    assert "secret" not in exc.message


def test_same_instant_in_another_offset_is_the_same_boundary() -> None:
    key = dsse.generate_key()
    reg = TrustRegistry.from_mapping({"NO": [{"key": b64(key), "revoked_at": T0}]})
    # 01:00 in UTC+1 is T0: a client-side offset cannot dodge the revocation.
    assert refused(reg, key.keyid, datetime(2025, 1, 1, 1, tzinfo=CET)).code == "revoked_key"
    assert reg.check_valid(key.keyid, datetime(2025, 1, 1, 0, 59, tzinfo=CET))


def test_unknown_key_is_refused_as_untrusted() -> None:
    reg = TrustRegistry.from_mapping({"NO": [b64(dsse.generate_key())]})
    exc = refused(reg, "ab" * 32, T0)
    assert exc.code == "untrusted_key" and "abababababababab" in exc.message
    assert exc.country is None
    with pytest.raises(KeyError, match="not in the trust registry"):
        reg.entry("ab" * 32)


def test_revocation_wins_over_every_other_reason() -> None:
    key = dsse.generate_key()
    reg = TrustRegistry.from_mapping({"NO": [{"key": b64(key), "valid_from": T0,
                                              "valid_until": T0 + timedelta(days=1),
                                              "revoked_at": T0 - timedelta(days=1)}]})
    for at in (T0 - timedelta(hours=1), T0, T0 + timedelta(days=2)):
        assert refused(reg, key.keyid, at).code == "revoked_key"


def test_naive_check_time_is_refused_even_for_a_plain_key() -> None:
    key = dsse.generate_key()
    reg = TrustRegistry.from_mapping({"NO": [b64(key)]})
    with pytest.raises(ValueError, match="timezone-aware"):
        reg.check_valid(key.keyid, datetime(2025, 1, 1))


def test_plain_key_is_valid_at_any_time() -> None:
    key = dsse.generate_key()
    reg = TrustRegistry.from_mapping({"NO": [b64(key)]})
    for at in (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)):
        assert reg.check_valid(key.keyid, at).keyid == key.keyid


def test_retired_and_revoked_keys_still_verify_old_envelopes() -> None:
    old, stolen = dsse.generate_key(), dsse.generate_key()
    reg = TrustRegistry.from_mapping({"NO": [
        {"key": b64(old), "valid_until": T0},
        {"key": b64(stolen), "revoked_at": T0},
    ]})
    assert set(reg.keys()) == {old.keyid, stolen.keyid} and len(reg) == 2
    for key in (old, stolen):
        env = dsse.sign(b"signed before", key)
        # The signature still verifies; the time decides whether it is accepted.
        assert dsse.verify(env, reg.keys()) == (b"signed before", key.keyid)
        assert reg.check_valid(key.keyid, T0 - US).keyid == key.keyid
        assert reg.entry(key.keyid).refusal(T0) is not None  # flag if received after
        assert reg.entry(key.keyid).refusal(T0 - US) is None


def test_rotation_with_overlap() -> None:
    old, new = dsse.generate_key(), dsse.generate_key()
    switch, end = T0 + timedelta(days=20), T0 + timedelta(days=30)
    reg = TrustRegistry.from_mapping({"NO": [
        {"key": b64(old), "valid_from": T0, "valid_until": end},
        {"key": b64(new), "valid_from": switch},
    ]})
    before = T0 + timedelta(days=10)
    assert reg.check_valid(old.keyid, before)
    assert refused(reg, new.keyid, before).code == "key_not_yet_valid"
    for at in (switch, T0 + timedelta(days=25), end - US):  # the overlap
        assert reg.check_valid(old.keyid, at) and reg.check_valid(new.keyid, at)
    assert refused(reg, old.keyid, end).code == "expired_key"
    assert reg.check_valid(new.keyid, end + timedelta(days=3650)).country == "NO"
    assert reg.country_of(old.keyid) == reg.country_of(new.keyid) == "NO"


@pytest.mark.parametrize(("entry", "needle"), [
    ("{{ key = {k}, valid_from = 2025-01-01T00:00:00 }}", "has no UTC offset"),
    ("{{ key = {k}, valid_until = 2025-01-01 }}", "got date"),
    ('{{ key = {k}, revoked_at = "2025-01-01T00:00:00Z" }}', "got str"),
    ("{{ key = {k}, valid_from = 12 }}", "got int"),
    ("{{ key = {k}, valid_till = 2025-01-01T00:00:00Z }}", "unknown field(s) valid_till"),
    ("{{ key = {k}, valid_from = 2026-01-01T00:00:00Z, valid_until = 2025-01-01T00:00:00Z }}",
     "must be after valid_from"),
    ("{{ key = {k}, valid_from = 2025-01-01T00:00:00Z, valid_until = 2025-01-01T01:00:00+01:00 }}",
     "must be after valid_from"),  # the same instant written in another offset
    ('{{ valid_from = 2025-01-01T00:00:00Z }}', "has no 'key'"),
    ("{{ key = {k}, note = 3 }}", "note: expected a string"),
    ('{{ key = "not base64!" }}', "not a base64 raw 32-byte"),
    ("{{ key = 42 }}", "expected a base64 string"),
    ("[{k}]", "expected a base64 string or an inline table"),
])
def test_bad_table_entry_names_the_entry(tmp_path: Path, entry: str, needle: str) -> None:
    path = tmp_path / "trust.toml"
    k = f'"{b64(dsse.generate_key())}"'
    path.write_text(f'[countries.NO]\nkeys = ["{b64(dsse.generate_key())}"]\n'
                    f"[countries.FI]\nkeys = [{entry.format(k=k)}]\n")
    with pytest.raises(TrustError) as info:
        TrustRegistry.load(path)
    message = str(info.value)
    assert needle in message and "countries.FI.keys[0]" in message and str(path) in message


@pytest.mark.parametrize(("no", "se"), [
    ('"{k}"', '"{k}"'),
    ('"{k}"', '{{ key = "{k}", valid_from = 2025-01-01T00:00:00Z }}'),
    ('{{ key = "{k}", revoked_at = 2025-01-01T00:00:00Z }}', '"{k}"'),
    ('{{ key = "{k}" }}', '{{ key = " {k} " }}'),  # whitespace does not make another key
])
def test_a_key_in_any_form_may_sign_for_one_country_only(tmp_path: Path, no: str,
                                                         se: str) -> None:
    k = b64(dsse.generate_key())
    path = tmp_path / "t.toml"
    path.write_text(f"[countries.NO]\nkeys = [{no.format(k=k)}]\n"
                    f"[countries.SE]\nkeys = [\"{b64(dsse.generate_key())}\", "
                    f"{se.format(k=k)}]\n")
    with pytest.raises(TrustError) as info:
        TrustRegistry.load(path)
    assert "both NO and SE" in str(info.value)
    assert "countries.SE.keys[1]" in str(info.value) and str(path) in str(info.value)


def test_one_key_with_two_windows_in_one_country_is_refused() -> None:
    k = b64(dsse.generate_key())
    with pytest.raises(TrustError, match=r"countries.NO.keys\[1\].*listed twice"):
        TrustRegistry.from_mapping({"NO": [{"key": k, "valid_until": T0}, k]})
    # An exact repeat is harmless (older files may have one) and is kept once.
    reg = TrustRegistry.from_mapping({"NO": [k, k]})
    assert len(reg) == 1 and reg.as_mapping() == {"NO": [k]}


def test_country_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text('[countries."NO\\n"]\nkeys = []\n')
    with pytest.raises(TrustError, match="two capital letters"):
        TrustRegistry.load(tmp_path / "t.toml")


def test_write_registry_validates_tables_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    k = b64(dsse.generate_key())
    for bad in ({"key": k, "valid_from": datetime(2025, 1, 1)},
                {"key": k, "valid_from": T0, "valid_until": T0},
                {"key": k, "revokd_at": T0},
                {"key": k, "note": "\ud800"}):  # a lone surrogate cannot be written
        with pytest.raises(TrustError, match=r"countries.NO.keys\[0\]"):
            write_registry(path, {"NO": [bad]})
        assert not path.exists()


# ReloadingTrust -------------------------------------------------------------------------

_STAMP = [1_800_000_000_000_000_000]


def bump_mtime(path: Path) -> None:
    """Give the file an mtime no earlier write had, whatever the file system's clock."""
    _STAMP[0] += 1_000_001
    os.utime(path, ns=(_STAMP[0], _STAMP[0]))


def test_reloading_trust_picks_up_new_and_revoked_keys(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    a, b = dsse.generate_key(), dsse.generate_key()
    write_registry(path, {"NO": [b64(a)]})
    trust = ReloadingTrust(path)
    first = trust.current()
    assert set(first.keys()) == {a.keyid} and trust.current() is first  # no change, no load
    assert trust.reloads == 0 and trust.last_error is None and trust.path == path
    write_registry(path, {"NO": [b64(a), b64(b)]})
    bump_mtime(path)
    assert set(trust.current().keys()) == {a.keyid, b.keyid} and trust.reloads == 1
    now = datetime.now(UTC)
    revoke_key(path, a.keyid[:12], now, "laptop stolen")
    bump_mtime(path)
    assert refused(trust.current(), a.keyid, now).code == "revoked_key"
    assert trust.current().check_valid(b.keyid, now).keyid == b.keyid
    assert trust.reloads == 2


def test_reloading_trust_sees_an_in_place_edit_of_the_same_size(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    a, b = dsse.generate_key(), dsse.generate_key()
    path.write_text(f'[countries.NO]\nkeys = ["{b64(a)}"]\n')
    bump_mtime(path)
    trust = ReloadingTrust(path)
    inode = path.stat().st_ino
    path.write_text(f'[countries.NO]\nkeys = ["{b64(b)}"]\n')  # same inode, same size
    bump_mtime(path)
    assert path.stat().st_ino == inode
    assert set(trust.current().keys()) == {b.keyid}


def test_reloading_trust_sees_a_replaced_file_with_the_same_mtime_and_size(
        tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    a, b = dsse.generate_key(), dsse.generate_key()
    path.write_text(f'[countries.NO]\nkeys = ["{b64(a)}"]\n')
    os.utime(path, ns=(10**18, 10**18))
    trust = ReloadingTrust(path)
    new = tmp_path / "new.toml"
    new.write_text(f'[countries.NO]\nkeys = ["{b64(b)}"]\n')
    os.utime(new, ns=(10**18, 10**18))
    os.replace(new, path)  # only the inode tells the two files apart
    assert set(trust.current().keys()) == {b.keyid}


def test_reloading_trust_keeps_the_last_good_registry(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trust.toml"
    a, b = dsse.generate_key(), dsse.generate_key()
    write_registry(path, {"NO": [b64(a)]})
    trust = ReloadingTrust(path)
    good = trust.current()
    loads = []
    real_load = TrustRegistry.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type[TrustRegistry], p: Path | str) -> TrustRegistry:
        loads.append(p)
        return real_load(cls, p)

    monkeypatch.setattr(TrustRegistry, "load", classmethod(counting_load))
    # A typo by the operator: every node must keep working with the last good keys.
    path.write_text(path.read_text() + "[countries.SE\n")
    bump_mtime(path)
    assert trust.current() is good
    assert trust.last_error is not None and "not valid TOML" in trust.last_error
    assert str(path) in trust.last_error and trust.reloads == 0
    # The broken file is parsed once, not on every request.
    assert trust.current() is good and trust.current() is good and len(loads) == 1
    # Semantically invalid is treated the same way: a key for two countries.
    path.write_text(f'[countries.NO]\nkeys = ["{b64(a)}"]\n[countries.SE]\nkeys = ["{b64(a)}"]\n')
    bump_mtime(path)
    assert trust.current() is good and "both NO and SE" in (trust.last_error or "")
    # The file disappears (e.g. a botched deploy): still the last good one.
    path.unlink()
    assert trust.current() is good and "does not exist" in (trust.last_error or "")
    # The fix is picked up and the error cleared.
    write_registry(path, {"NO": [b64(a), b64(b)]})
    bump_mtime(path)
    assert set(trust.current().keys()) == {a.keyid, b.keyid}
    assert trust.last_error is None and trust.reloads == 1


def test_reloading_trust_refuses_a_bad_file_at_start(tmp_path: Path) -> None:
    with pytest.raises(TrustError, match="does not exist"):
        ReloadingTrust(tmp_path / "absent.toml")
    (tmp_path / "t.toml").write_text("[countries.NO\n")
    with pytest.raises(TrustError, match="not valid TOML"):
        ReloadingTrust(tmp_path / "t.toml")


def test_reloading_trust_reloads_once_under_concurrent_requests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trust.toml"
    a, b = dsse.generate_key(), dsse.generate_key()
    write_registry(path, {"NO": [b64(a)]})
    trust = ReloadingTrust(path)
    real_load = TrustRegistry.load.__func__  # type: ignore[attr-defined]

    def slow_load(cls: type[TrustRegistry], p: Path | str) -> TrustRegistry:
        time.sleep(0.05)  # widen the window in which a second thread could also reload
        return real_load(cls, p)

    monkeypatch.setattr(TrustRegistry, "load", classmethod(slow_load))
    write_registry(path, {"NO": [b64(a), b64(b)]})
    bump_mtime(path)
    barrier = threading.Barrier(16)
    seen: list[set[str]] = []

    def request() -> None:
        barrier.wait()
        seen.append(set(trust.current().keys()))

    threads = [threading.Thread(target=request) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [{a.keyid, b.keyid}] * 16  # nobody saw a half-updated registry
    assert trust.reloads == 1


# add_key / revoke_key ---------------------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_add_key_rewrites_atomically_and_keeps_everything_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trust.toml"
    a, r, new = dsse.generate_key(), dsse.generate_key(), dsse.generate_key()
    write_registry(path, {"NO": [b64(a), {"key": b64(r), "revoked_at": T0, "note": "gone"}],
                          "IS": []})
    path.chmod(0o640)
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        replaced.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    entry = add_key(path, "NO", b64(new), valid_from=T0, note="rotation 2025")
    assert (entry.country, entry.valid_from, entry.note) == ("NO", T0, "rotation 2025")
    # Written next to the registry (same file system, so os.replace is atomic) and moved.
    assert len(replaced) == 1 and replaced[0][1] == str(path)
    assert Path(replaced[0][0]).parent == tmp_path and leftovers(tmp_path) == []
    assert (path.stat().st_mode & 0o777) == 0o640  # still readable by the hub's group
    reg = TrustRegistry.load(path)
    assert [e.keyid for e in reg.entries()] == [a.keyid, r.keyid, new.keyid]
    assert reg.entry(r.keyid).revoked_at == T0 and reg.entry(r.keyid).note == "gone"
    assert "[countries.IS]" in path.read_text()


def test_add_key_creates_a_missing_registry(tmp_path: Path) -> None:
    path = tmp_path / "hub" / "trust.toml"
    key = dsse.generate_key()
    add_key(path, "DK", b64(key))
    assert TrustRegistry.load(path).country_of(key.keyid) == "DK"
    assert path.read_text().count(f'"{b64(key)}"') == 1


def test_a_failed_rewrite_leaves_the_old_file(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trust.toml"
    a = dsse.generate_key()
    write_registry(path, {"NO": [b64(a)]})
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        add_key(path, "NO", b64(dsse.generate_key()))
    with pytest.raises(OSError, match="disk full"):
        revoke_key(path, a.keyid[:8], T0, "x")
    assert path.read_bytes() == before and leftovers(tmp_path) == []


@pytest.mark.parametrize(("country", "key", "kwargs", "needle"), [
    ("NO", "A", {}, "listed for NO"),   # already there
    ("SE", "A", {}, "listed for NO"),   # and not for a second country either
    ("SE", "not base64!", {}, "not a base64"),
    ("Sweden", "NEW", {}, "two capital letters"),
    ("SE", "NEW", {"valid_from": datetime(2025, 1, 1)}, "timezone-aware"),
    ("SE", "NEW", {"valid_from": T0, "valid_until": T0}, "must be after"),
])
def test_add_key_refusals_leave_the_file_alone(tmp_path: Path, country: str, key: str,
                                               kwargs: dict[str, datetime], needle: str) -> None:
    path = tmp_path / "trust.toml"
    a = dsse.generate_key()
    write_registry(path, {"NO": [b64(a)]})
    before = path.read_bytes()
    text = {"A": b64(a), "NEW": b64(dsse.generate_key())}.get(key, key)
    with pytest.raises(TrustError, match=needle):
        add_key(path, country, text, **kwargs)  # type: ignore[arg-type]
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_revoke_key(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    a, b = dsse.generate_key(), dsse.generate_key()
    write_registry(path, {"NO": [{"key": b64(a), "note": "node laptop"}, b64(b)]})
    at = T0 + timedelta(days=10)
    entry = revoke_key(path, a.keyid[:10].upper(), at, "laptop stolen")
    assert entry.keyid == a.keyid and entry.revoked_at == at
    assert entry.note == "node laptop; laptop stolen"
    reg = TrustRegistry.load(path)
    assert reg.entry(a.keyid) == entry and reg.entry(b.keyid).revoked_at is None
    assert refused(reg, a.keyid, at).code == "revoked_key"
    assert reg.check_valid(a.keyid, at - US)
    # Still in the file, so what it signed before can be verified.
    assert a.keyid in reg.keys()
    # Same time again: no change. Earlier: allowed (the theft was found to be earlier).
    assert revoke_key(path, a.keyid[:8], at, "laptop stolen").note == entry.note
    assert revoke_key(path, a.keyid[:8], at - timedelta(days=1), "").revoked_at == at - \
        timedelta(days=1)
    # Later: refused, it would re-admit what was signed in between.
    with pytest.raises(TrustError, match="only move earlier"):
        revoke_key(path, a.keyid[:8], at + timedelta(days=1), "")
    assert TrustRegistry.load(path).entry(a.keyid).revoked_at == at - timedelta(days=1)


@pytest.mark.parametrize(("prefix", "at", "needle"), [
    ("abc", T0, "8 to 64 hex"),             # too short: a typo could hit another key
    ("zzzzzzzz", T0, "8 to 64 hex"),
    ("", T0, "8 to 64 hex"),
    ("00000000", T0, "no key id starts with"),
    ("KEY", datetime(2025, 1, 1), "timezone-aware"),
])
def test_revoke_key_refusals(tmp_path: Path, prefix: str, at: datetime, needle: str) -> None:
    path = tmp_path / "trust.toml"
    key = dsse.generate_key()
    while key.keyid.startswith("00000000"):  # pragma: no cover - one in four billion
        key = dsse.generate_key()
    write_registry(path, {"NO": [b64(key)]})
    before = path.read_bytes()
    with pytest.raises(TrustError, match=needle):
        revoke_key(path, key.keyid[:8] if prefix == "KEY" else prefix, at, "x")
    assert path.read_bytes() == before


def test_revoke_key_refuses_an_ambiguous_prefix(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real_key_id = dsse.key_id
    # Two real keys sharing 8 hex characters would take ~2^32 tries; fake the ids instead.
    monkeypatch.setattr(dsse, "key_id", lambda k: "abcdef01" + real_key_id(k)[8:])
    path = tmp_path / "trust.toml"
    write_registry(path, {"NO": [b64(dsse.generate_key())], "SE": [b64(dsse.generate_key())]})
    with pytest.raises(TrustError, match="matches 2 keys"):
        revoke_key(path, "abcdef01", T0, "x")
    assert all(e.revoked_at is None for e in TrustRegistry.load(path).entries())
