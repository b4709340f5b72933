"""Fuzz the intake: whatever arrives, the hub answers a documented 4xx (or stores a sound
document), audits it once, stores nothing on a refusal and never answers 5xx.

Three strategies, 3,100 requests in all (about 45 s on two cores), through the in-process
TestClient with one hub per strategy:

* ``schema``: documents generated from the published JSON Schema
  (``emsbench/schema/submission-v2.json``), then partly pointed at this hub (country NO,
  its catalogue, its specs, a valid date) so they get past the first checks; signed by NO.
* ``mutation``: a valid submission with random leaves replaced, keys deleted or added,
  nasty numbers and strings, deep nesting; signed by NO.
* ``envelope``: random bytes, random JSON and envelopes with broken fields, base64 or
  signatures.

Hypothesis runs derandomized (the same cases on every run, in CI too). Each test prints
(``pytest -s``) and records (``record_property``) the number of cases it ran and what the hub
answered. A 5xx fails the test. Each bug the fuzz found keeps a regression test with its
minimal input at the end.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator

from emsbench import chain, dsse
from emsbench.wire import (
    RECEIPT_TYPE,
    SCHEMA_PATH,
    SUBMISSION_TYPE,
    WITHDRAWAL_TYPE,
)
from hub.ledger import recheck

EXAMPLES = {"schema": 1000, "mutation": 1500, "envelope": 600}  # 3,100 cases, ~45 s


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example,
                                           HealthCheck.filter_too_much])


# --- values ----------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)  # incl. lone surrogates
NASTY_INTS = st.sampled_from([-1, 0, 1, 2, 4, 5, 6, 2**31, 2**53 - 1, 2**53, 2**63, 2**64,
                              10**30, -(2**63), 10**4000])
NASTY_FLOATS = st.sampled_from([0.0, -0.0, 1.0, 5.0, 0.5, 1e308, -1e308, 2.0**53,
                                float("nan"), float("inf"), float("-inf")])
NASTY_STRINGS = st.sampled_from([
    "", " ", "\x00", "\ud800", "\udfff", "NO", "no", "N\x00O", "\u039d\u039f", "SE", "XX",
    "x" * 201, "x" * 70_000, "2024", "2024-01-01", "2025-01-15T12:00:00",
    "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2025-01-15T12:00:00Z",
    "'; DROP TABLE documents; --", "../../etc/passwd", "\u202eON", "null", "1e3", "0" * 64,
    "missing:urgency_level", "urban", "rural", "U1", "T-ALPHA", "😀" * 50])
SCALARS = (st.none() | st.booleans() | st.integers() | NASTY_INTS
           | st.floats(allow_nan=True, allow_infinity=True) | NASTY_FLOATS | ANY_TEXT
           | NASTY_STRINGS)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(ANY_TEXT | NASTY_STRINGS, inner, max_size=4), max_leaves=8)

# Sentinels replaced in the serialised text by what json.dumps cannot write.
DEEP = "\x00deep-nesting:{}\x00"  # the depth inside, so no other mutation can change it
HUGE = "\x00huge-integer\x00"


def to_json(doc: Any, style: str) -> bytes:
    """Serialise like a careless node would: ASCII-escaped or raw UTF-8 (lone surrogates
    then become invalid UTF-8), NaN and Infinity allowed, sentinels expanded."""
    text = json.dumps(doc, ensure_ascii=style == "ascii", allow_nan=True)
    text = re.sub(r'"\\u0000deep-nesting:(\d+)\\u0000"',
                  lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)
    text = text.replace('"\\u0000huge-integer\\u0000"', "9" * 5000)
    return text.encode("utf-8", "surrogatepass")


# --- the harness -----------------------------------------------------------------------


class Intake:
    """Posts bodies to one hub and checks every answer against the hub's promises."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.cases = 0
        self.outcomes: Counter[str] = Counter()
        self.revision = 0
        paths = hub.client.get("/openapi.json").json()["paths"]
        # The codes the OpenAPI document lists for each route and status.
        self.documented = {
            path: {int(s): set(r.get("x-error-codes", ()))
                   for s, r in paths[path]["post"]["responses"].items()}
            for path in ("/v1/submissions", "/v1/withdrawals")}
        state = hub.app.state.hub
        self.trust, self.policy = state.trust, state.policy

    def next_revision(self) -> int:
        self.revision += 1
        return self.revision

    def _audit(self) -> tuple[int, str | None, str | None]:
        store = self.hub.store
        with store._lock:  # a count, not the whole log: it grows to thousands of entries
            row = store._con.execute("SELECT count(*), arg_max(outcome, seq), "
                                     "arg_max(code, seq) FROM audit").fetchone()
        return int(row[0]), row[1], row[2]

    def post(self, body: bytes, path: str = "/v1/submissions") -> None:
        self.cases += 1
        hub = self.hub
        documents, (entries, _, _) = hub.store.count_documents(), self._audit()
        try:
            response = hub.client.post(path, content=body,
                                       headers={"content-type": "application/json"})
            failure = f"{response.status_code}: {response.text[:300]}" \
                if response.status_code >= 500 else None
        except Exception as exc:  # hub.client re-raises the fault behind a 503 internal_error
            failure = repr(exc)
        assert failure is None, f"the hub failed on this input: {failure}"
        status = response.status_code
        answer = response.json()
        after_docs, (after_entries, outcome, code) = hub.store.count_documents(), self._audit()
        assert after_entries == entries + 1, "not exactly one audit entry"
        if status >= 400:
            error = answer["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
            assert error["code"] in self.documented[path][status], (status, error["code"])
            assert after_docs == documents, "a refused document was stored"
            assert (outcome, code) == ("rejected", error["code"])
            self.outcomes[f"{status} {error['code']}"] += 1
            return
        assert status in (200, 201), status
        receipt = answer["receipt"]
        dsse.verify(answer["signed_receipt"], {hub.hub_key.keyid: hub.hub_key.public_key},
                    payload_type=RECEIPT_TYPE)
        assert after_docs == documents + (status == 201)
        assert outcome == ("accepted" if status == 201 else "duplicate")
        [record] = [r for r in hub.store.records() if r.submission_id == receipt["submission_id"]]
        assert record.envelope == body.decode("utf-8") or status == 200
        doc, problems = recheck(record, self.trust.current(), hub.catalogues,
                                self.policy)
        assert doc is not None and problems == [], problems
        self.outcomes[f"{status} accepted"] += 1

    def sign(self, payload: bytes, signer: str = "NO", payload_type: str = SUBMISSION_TYPE
             ) -> bytes:
        return dsse.envelope_bytes(dsse.sign(payload, self.hub.keys[signer], payload_type))

    def finish(self, name: str, record_property: Callable[[str, object], None],
               started: float) -> None:
        elapsed = time.perf_counter() - started
        record_property(f"fuzz_{name}_cases", self.cases)
        print(f"\nfuzz {name}: {self.cases} cases in {elapsed:.1f} s; "
              f"{dict(self.outcomes.most_common())}")
        assert self.cases >= EXAMPLES[name]
        assert chain.verify(self.hub.store.audit_links()) == []


# --- (a) documents from the published JSON Schema -------------------------------------

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
# Collections up to 3 long at the top, 2 below (the schema allows 10,000 cells): larger
# documents overrun Hypothesis's buffer and are drawn again, which costs most of the time.
SMALL = 3
SMALLER = 2
SMALL_JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=2)
                          | st.dictionaries(ANY_TEXT, inner, max_size=2), max_leaves=3)


def from_published(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Instances of ``node`` (a part of the published schema).

    hypothesis_jsonschema generates the leaves (patterns, formats, bounds); objects and
    arrays are assembled here, because its object generator re-canonicalises the schema
    on every draw (0.3 s an example for this schema) and it does not know ``prefixItems``
    (draft 2020-12). Every instance is checked against the schema before it is sent.
    """
    if "$ref" in node:
        return from_published(SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], depth)
    if "anyOf" in node:
        return st.one_of([from_published(option, depth) for option in node["anyOf"]])
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        assert node.get("additionalProperties") is False
        required = set(node.get("required", ()))
        fields = {k: from_published(v, depth + 1) for k, v in node["properties"].items()}
        return st.fixed_dictionaries({k: v for k, v in fields.items() if k in required},
                                     optional={k: v for k, v in fields.items()
                                               if k not in required})
    if kind == "object":  # a dict: keys by propertyNames and patternProperties
        names = {"type": "string", **node.get("propertyNames", {})}
        size = min(node.get("maxProperties", SMALLER), SMALLER)
        patterns = node.get("patternProperties", {})
        parts = [st.dictionaries(from_schema({**names, "pattern": p}),
                                 from_published(v, depth + 1), max_size=size)
                 for p, v in patterns.items()]
        extra = node.get("additionalProperties", True)
        if extra is not False:  # keys no pattern matches take any value (the schema says so)
            values = SMALL_JSON if extra is True else from_published(extra, depth + 1)
            keys = from_schema(names).filter(
                lambda k: not any(re.search(p, k) for p in patterns))
            parts.append(st.dictionaries(keys, values, max_size=size))
        return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})
    if kind == "array" and "prefixItems" in node:
        return st.tuples(*(from_published(n, depth + 1) for n in node["prefixItems"])
                         ).map(list)
    if kind == "array":
        limit = SMALL if depth <= 1 else SMALLER
        return st.lists(from_published(node.get("items", {}), depth + 1),
                        min_size=node.get("minItems", 0),
                        max_size=min(node.get("maxItems", limit), limit))
    if node.get("pattern") in SAME_LANGUAGE and set(node) <= {
            "type", "pattern", "title", "description"}:
        return SAME_LANGUAGE[node["pattern"]]
    return from_schema(node)


# Hypothesis's regex strategy takes 3 ms for a SHA-256; these draw the same strings faster.
SAME_LANGUAGE = {"^[0-9a-f]{64}$": st.binary(min_size=32, max_size=32).map(bytes.hex),
                 "^[A-Z]{2}$": st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)}

PUBLISHED = from_published(SCHEMA)  # built once: building it costs more than drawing


@st.composite
def schema_documents(draw: st.DrawFn, hub: Any) -> dict[str, Any]:
    """A schema-valid document, some of its fields pointed at this hub (each fix keeps it
    schema-valid) so that more cases reach conformance than the country check."""
    doc: dict[str, Any] = draw(PUBLISHED)
    fixes = draw(st.sets(st.sampled_from(["catalogue", "created_at", "year", "specs",
                                          "quality"])))
    if draw(st.sampled_from(["NO"] * 9 + ["any"])) == "NO":  # others are refused at once
        doc["country"] = "NO"
    if "catalogue" in fixes:
        doc["catalogue"] = hub.catalogue
    if "created_at" in fixes:
        doc["created_at"] = "2025-01-15T12:00:00Z"
    if "year" in fixes:
        doc["period"] = {"year": 2024}
    if "quality" in fixes:
        doc["data_quality"] = {"rows_read": 100, "rows_accepted": 100}
    if "specs" in fixes:
        for result, spec in zip(doc["indicators"], draw(st.permutations(hub.specs)),
                                strict=False):
            result.update(spec_id=spec.id, spec_version=spec.version,
                          spec_sha256=spec.sha256)
    return doc


def test_fuzz_documents_from_the_published_schema(hub: Any, record_property: Any) -> None:
    intake, started = Intake(hub), time.perf_counter()
    validator = Draft202012Validator(SCHEMA)

    @fuzz_settings(EXAMPLES["schema"])
    @given(doc=schema_documents(hub), style=st.sampled_from(["ascii", "utf8"]))
    def case(doc: dict[str, Any], style: str) -> None:
        assert validator.is_valid(doc), "the strategy left the published schema"
        intake.post(intake.sign(to_json(doc, style)))

    case()
    intake.finish("schema", record_property, started)


# --- (b) mutations of a valid submission ------------------------------------------------

JsonPath = tuple[str | int, ...]


def _paths(node: Any, path: JsonPath = ()) -> list[JsonPath]:
    """Every path in ``node``, parents before children (the root is ``()``)."""
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*path, i))
    return out


def _get(node: Any, path: JsonPath) -> Any:
    for step in path:
        node = node[step]
    return node


def _set(doc: Any, path: JsonPath, value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


# The fields the hub reads before (country) or beside (times, period, identity) the wire
# model, with values at their edges.
TIMES = st.sampled_from([
    "0001-01-01T00:00:00+00:01", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59.999999-00:01", "2025-01-15T12:00:00", "2025-01-15T12:00:00Z",
    "2025-01-15T12:00:00+14:00", "2099-01-01T00:00:00Z", "1999-12-31T23:59:59Z",
    "2025-02-30T00:00:00Z", "2025-01-15 12:00:00Z", "2025-01-15T12:00:00+24:00",
    "2024-12-31T23:59:59-00:01"]) | st.builds(
    lambda at, minutes: at.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
    st.datetimes(), st.integers(-1439, 1439))
FIELDS = {
    "country": st.sampled_from(["SE", "no", "", "\ud800", "N\ud800", "\udfff", "N\x00O",
                                "\u039d\u039f", "XX", "x" * 201]) | ANY_TEXT | JSON_VALUES,
    "created_at": TIMES | JSON_VALUES,
    "period": st.fixed_dictionaries({"year": NASTY_INTS | st.integers()}) | JSON_VALUES,
    "revision": NASTY_INTS | st.integers() | JSON_VALUES,
    "submission_id": NASTY_STRINGS | ANY_TEXT,
    "catalogue": NASTY_STRINGS | st.binary(min_size=32, max_size=32).map(bytes.hex),
    "disclosure_threshold": NASTY_INTS | st.integers(),
}
FIELD = st.one_of([st.tuples(st.just("field"), st.just(name), values)
                   for name, values in FIELDS.items()])
MUTATION = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 999), JSON_VALUES),
    st.tuples(st.just("number"), st.integers(0, 999), NASTY_INTS | NASTY_FLOATS),
    st.tuples(st.just("string"), st.integers(0, 999), NASTY_STRINGS | ANY_TEXT),
    st.tuples(st.just("delete"), st.integers(0, 999), st.none()),
    st.tuples(st.just("add"), st.integers(0, 999),
              st.tuples(ANY_TEXT | st.sampled_from(["country", "revision", "extra", "stratum",
                                                    "bins", "numerator", "suppressed"]),
                        JSON_VALUES)),
    st.tuples(st.just("duplicate"), st.integers(0, 999), st.none()),
    st.tuples(st.just("nest"), st.integers(0, 999), st.integers(1, 5000)),
    st.tuples(st.just("huge"), st.integers(0, 999), st.none()),
    FIELD, FIELD, FIELD,  # a quarter of the mutations
)


def mutate(doc: Any, mutation: tuple[str, Any, Any]) -> Any:
    kind, index, arg = mutation
    if kind == "field":
        if isinstance(doc, dict):
            doc[index] = arg
        return doc
    paths = _paths(doc)
    if kind in ("number", "string"):  # a leaf of the same kind, where there is one
        want: Any = (int, float) if kind == "number" else str
        leaves = [p for p in paths if isinstance(_get(doc, p), want)
                  and not isinstance(_get(doc, p), bool)]
        paths = leaves or paths
    if kind == "delete":  # a member of an object or array
        members = [p for p in paths if p]
        if members:
            path = members[index % len(members)]
            del _get(doc, path[:-1])[path[-1]]
        return doc
    if kind in ("add", "duplicate"):
        containers = [p for p in paths if isinstance(_get(doc, p), dict | list)]
        if not containers:
            return doc
        target = _get(doc, containers[index % len(containers)])
        if kind == "add" and isinstance(target, dict):
            target[arg[0]] = arg[1]
        elif kind == "add":
            target.append(arg[1])
        elif target:  # duplicate a member
            member = list(target)[index % len(target)]
            copy = json.loads(json.dumps(target[member] if isinstance(target, dict)
                                         else member))
            if isinstance(target, dict):
                target[f"{member}_"] = copy
            else:
                target.append(copy)
        return doc
    path = paths[index % len(paths)]
    if kind == "nest":
        return _set(doc, path, DEEP.format(arg))
    if kind == "huge":
        return _set(doc, path, HUGE)
    return _set(doc, path, arg)


def test_fuzz_mutated_submissions(hub: Any, record_property: Any) -> None:
    intake, started = Intake(hub), time.perf_counter()

    @fuzz_settings(EXAMPLES["mutation"])
    @given(mutations=st.lists(MUTATION, min_size=1, max_size=3),
           style=st.sampled_from(["ascii", "utf8"]))
    def case(mutations: list[tuple[str, Any, Any]], style: str) -> None:
        n = intake.next_revision()
        base = hub.submission(sid=f"NO-2024-{n:06d}", revision=n)
        doc: Any = json.loads(base.to_bytes())
        for mutation in mutations:
            doc = mutate(doc, mutation)
        intake.post(intake.sign(to_json(doc, style)))

    case()
    intake.finish("mutation", record_property, started)


# --- (c) envelope garbage ----------------------------------------------------------------

UNTRUSTED = dsse.generate_key()


@st.composite
def envelopes(draw: st.DrawFn, intake: Intake) -> bytes:
    """An envelope for a valid submission, each part broken one time in four."""
    hub = intake.hub

    def broken() -> bool:
        return draw(st.sampled_from([False, False, False, True]))

    n = intake.next_revision()
    valid = hub.submission(sid=f"NO-2024-e{n:06d}", revision=n).to_bytes()
    payload_type: Any = SUBMISSION_TYPE
    if broken():
        payload_type = draw(st.sampled_from([WITHDRAWAL_TYPE, RECEIPT_TYPE, "", " ",
                                             SUBMISSION_TYPE.upper(), SUBMISSION_TYPE + " "])
                            | JSON_VALUES)
    payload_bytes = valid
    if broken():
        payload_bytes = draw(st.sampled_from([b"{}", b"", b"\xff\xfe", b"null",
                                              valid.replace(b'"NO"', b'"SE"', 1)])
                             | st.binary())
    payload: Any = base64.b64encode(payload_bytes).decode()
    if broken():
        payload = draw(st.sampled_from([payload.rstrip("="), payload + "\n", payload + "=",
                                        base64.urlsafe_b64encode(payload_bytes).decode(),
                                        payload.replace("A", "*", 1), payload[:-1], " " + payload])
                       | ANY_TEXT | JSON_VALUES)
    signer = hub.keys["NO"]
    if broken():
        signer = draw(st.sampled_from([hub.keys["SE"], UNTRUSTED]))
    signed_type = payload_type if isinstance(payload_type, str) else SUBMISSION_TYPE
    message = dsse.pae(signed_type, payload_bytes)
    if broken():
        message = draw(st.sampled_from([dsse.pae(SUBMISSION_TYPE, b"{}"), b"", message[:-1],
                                        payload_bytes]))
    sig = base64.b64encode(signer.private_key.sign(message)).decode()
    signature: Any = {"keyid": signer.keyid, "sig": sig}
    if broken():
        signature = draw(st.fixed_dictionaries(
            {}, optional={"keyid": st.sampled_from([signer.keyid, hub.keys["NO"].keyid, "",
                                                    signer.keyid.upper()]) | JSON_VALUES,
                          "sig": st.sampled_from([sig, sig[:-4], sig.rstrip("="), "", "AAAA"])
                          | JSON_VALUES}) | JSON_VALUES)
    signatures: Any = [signature]
    if broken():
        signatures = draw(st.lists(st.just(signature) | JSON_VALUES, max_size=3)
                          | JSON_VALUES)
    envelope: dict[Any, Any] = {"payloadType": payload_type, "payload": payload,
                                "signatures": signatures}
    if broken():
        for key in draw(st.sets(st.sampled_from(sorted(envelope)), min_size=1)):
            del envelope[key]
    if broken():
        envelope.update(draw(st.dictionaries(ANY_TEXT | st.sampled_from(["payloadtype"]),
                                             JSON_VALUES, min_size=1, max_size=2)))
    body = to_json(envelope, draw(st.sampled_from(["ascii", "utf8"])))
    if broken():
        damage = draw(st.sampled_from(["truncate", "flip", "utf16", "bom", "array"]))
        cut = draw(st.integers(0, max(len(body) - 1, 0)))
        if damage == "truncate":
            body = body[:cut]
        elif damage == "flip" and body:
            body = body[:cut] + bytes([body[cut] ^ 0x20]) + body[cut + 1:]
        elif damage == "utf16":
            body = body.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass")
        elif damage == "bom":
            body = b"\xef\xbb\xbf" + body
        else:
            body = b"[" + body + b"]"
    return body


def test_fuzz_envelope_garbage(hub: Any, record_property: Any) -> None:
    intake, started = Intake(hub), time.perf_counter()

    @fuzz_settings(EXAMPLES["envelope"])
    @given(body=st.one_of(envelopes(intake), envelopes(intake), st.binary(max_size=300),
                          JSON_VALUES.map(lambda v: to_json(v, "ascii"))))
    def case(body: bytes) -> None:
        intake.post(body)

    case()
    intake.finish("envelope", record_property, started)


@pytest.mark.parametrize("path", ["/v1/withdrawals"])
def test_fuzz_withdrawal_endpoint_smoke(hub: Any, path: str) -> None:
    """The withdrawal route shares the intake; a few refusals check its wiring."""
    intake = Intake(hub)
    for body in (b"", b"{}", b"[]", intake.sign(b"{}", payload_type=WITHDRAWAL_TYPE),
                 intake.sign(json.dumps({"country": "SE"}).encode(),
                             payload_type=WITHDRAWAL_TYPE)):
        intake.post(body, path)
    assert chain.verify(hub.store.audit_links()) == []


# --- product bugs the fuzz found, each kept with its minimal input.


def test_lone_surrogate_country_is_refused_and_audited(hub: Any) -> None:
    """Found by this fuzz (503, no audit entry: the echoed claim broke the audit write)."""
    intake = Intake(hub)
    intake.post(intake.sign(b'{"country": "\\ud800"}'))
    assert intake.outcomes == {"403 country_mismatch": 1}


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00+00:01",
                                        "9999-12-31T23:59:59-00:01"])
def test_created_at_beyond_the_utc_range_is_refused_and_audited(hub: Any, created_at: str
                                                                ) -> None:
    """Found by this fuzz (503 from an OverflowError in conformance), since fixed."""
    intake = Intake(hub)
    for path, doc in (("/v1/submissions", hub.submission()),
                      ("/v1/withdrawals", hub.withdrawal())):
        payload = json.loads(doc.to_bytes())
        payload["created_at"] = created_at
        kind = SUBMISSION_TYPE if path == "/v1/submissions" else WITHDRAWAL_TYPE
        intake.post(intake.sign(json.dumps(payload).encode(), payload_type=kind), path)
    assert intake.outcomes == {"422 created_at_out_of_window": 2}
