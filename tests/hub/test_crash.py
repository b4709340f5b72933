"""A hub killed (SIGKILL) mid-intake loses nothing it receipted and doubles nothing.

120 signed submissions (20 test countries × 6 years, revision 1) are posted by 16 threads
to a real ``emsbench hub serve`` process; once 40 receipts are back, another thread kills
the hub outright (``proc.kill()``: no shutdown, no checkpoint). A new hub process on the
same database must then hold every receipted submission exactly once, byte for byte as
posted, with the receipt it signed; the audit chain and every stored envelope must verify
(``emsbench hub audit verify`` and ``hub verify``, through the running hub); and resending
all 120 envelopes must answer 200 with the stored receipt for each one stored and 201 for
the rest, ending with exactly 120 stored.

The helpers (federation folder, signed bodies, POST) live in ``bench/hub_bench.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from emsbench import dsse
from emsbench.cli import main as cli_main
from emsbench.demo import stop_process
from emsbench.wire import RECEIPT_TYPE
from hub.source import HubClient

COUNTRIES = 20
YEARS = 6
KILL_AFTER = 40  # receipts back before the hub is killed
THREADS = 16
REQUEST_TIMEOUT = 10.0
TEST_BUDGET = 60.0


def _cli(fed: Any, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "emsbench.cli", "hub", *args, "--config",
                             str(fed.config_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _post_concurrently(hb: ModuleType, fed: Any, bodies: list[Any], on_answer: Any = None
                       ) -> list[Any]:
    """Post every body once from THREADS threads, each with its own connection."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def send(i: int) -> Any:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=REQUEST_TIMEOUT)
            with lock:
                clients.append(client)
        answer = hb.post_body(client, fed.url, bodies[i], i)
        if on_answer is not None:
            on_answer(answer)
        return answer

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            return list(pool.map(send, range(len(bodies))))
    finally:
        for c in clients:
            c.close()


def test_sigkill_mid_intake_loses_no_receipted_submission(tmp_path: Path,
                                                          hb: ModuleType) -> None:
    started = time.monotonic()
    fed = hb.make_federation(tmp_path, COUNTRIES)
    bodies = [fed.sign(country, year) for country in sorted(fed.keys)
              for year in hb.YEARS[:YEARS]]
    posted = {b.submission_id: b for b in bodies}
    assert len(posted) == COUNTRIES * YEARS == 120

    proc = fed.start("hub-1.log")
    restarted: subprocess.Popen[bytes] | None = None
    try:
        # --- phase 1: post everything, kill the hub after KILL_AFTER receipts ---------
        receipts: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()
        enough = threading.Event()
        killed_with = []

        def on_answer(answer: Any) -> None:
            if answer.status is not None and 200 <= answer.status < 300:
                with lock:
                    receipts[bodies[answer.index].submission_id] = answer.body
                    if len(receipts) >= KILL_AFTER:
                        enough.set()

        def killer() -> None:
            enough.wait(timeout=20)  # bounded: a stuck hub is killed anyway
            proc.kill()
            with lock:
                killed_with.append(len(receipts))

        kill_thread = threading.Thread(target=killer, daemon=True)
        kill_thread.start()
        answers = _post_concurrently(hb, fed, bodies, on_answer)
        kill_thread.join(timeout=25)
        assert killed_with, "the killer thread did not run"
        assert proc.wait(timeout=10) != 0
        assert enough.is_set(), f"only {len(receipts)} receipts came back before the kill"

        answered = [a for a in answers if a.status is not None]
        # Before the kill every request is stored (201); after it there is no answer at all.
        assert {a.status for a in answered} == {201}, \
            [(a.status, a.body) for a in answered if a.status != 201][:5]
        assert all(isinstance(a.body, dict) for a in answered)
        lost = [a for a in answers if a.status is None]
        assert lost, "every post was answered before the kill: the crash was not mid-intake"
        assert len(receipts) == len(answered) < len(bodies)

        # --- phase 2: a new hub process on the same database ---------------------------
        restarted = fed.start("hub-2.log")
        records = HubClient(fed.url, fed.token()).records()
        ids = [r.submission_id for r in records]
        assert len(ids) == len(set(ids)), "a submission id is stored twice"
        by_id = {r.submission_id: r for r in records}
        assert set(by_id) <= set(posted), set(by_id) - set(posted)
        missing = sorted(set(receipts) - set(by_id))
        assert not missing, f"receipted but not stored after the crash: {missing}"
        # Envelopes that were stored but never answered (in flight at the kill) are fine,
        # as long as they are intact too.
        print(f"killed after {killed_with[0]} receipts; {len(receipts)} receipted, "
              f"{len(by_id)} stored, {len(lost)} posts unanswered")
        for sid, record in by_id.items():
            assert record.envelope == posted[sid].body.decode("utf-8"), sid
            assert record.payload_sha256 == posted[sid].payload_sha256, sid

        hub_public = dsse.public_key_from_b64(
            fed.hub_public_key_path.read_text(encoding="ascii").strip())
        trusted = {dsse.key_id(hub_public): hub_public}
        for sid, response in receipts.items():
            receipt = response["receipt"]
            record = by_id[sid]
            assert receipt["payload_sha256"] == record.payload_sha256 \
                == posted[sid].payload_sha256
            assert (receipt["submission_id"], receipt["country"], receipt["year"],
                    receipt["revision"]) == (sid, posted[sid].country, posted[sid].year, 1)
            assert record.response == response, f"{sid}: stored receipt differs from the sent"
            payload, _ = dsse.verify(response["signed_receipt"], trusted,
                                     payload_type=RECEIPT_TYPE)
            assert json.loads(payload) == receipt, f"{sid}: signed receipt differs"

        audit, verify = _cli(fed, "audit", "verify"), _cli(fed, "verify")
        audit_out, _ = audit.communicate(timeout=30)
        verify_out, _ = verify.communicate(timeout=30)
        assert audit.returncode == 0, audit_out
        assert verify.returncode == 0, verify_out
        assert f"{len(records)} of {len(records)} stored envelopes verify" in verify_out

        # --- phase 3: resend all 120: 200 for the stored ones, 201 for the rest --------
        again = _post_concurrently(hb, fed, bodies)
        for a in again:
            sid = bodies[a.index].submission_id
            if sid in by_id:
                assert a.status == 200, (sid, a.status, a.body or a.error)
                assert a.body == by_id[sid].response, f"{sid}: a resend got another receipt"
            else:
                assert a.status == 201, (sid, a.status, a.body or a.error)
        final = HubClient(fed.url, fed.token()).records()
        assert len(final) == len({r.submission_id for r in final}) == len(bodies)
        assert httpx.get(f"{fed.url}/v1/health", timeout=10).json()["submissions"] == 120
        assert cli_main(["hub", "audit", "verify", "--config", str(fed.config_path)]) == 0
    finally:
        for p in (proc, restarted):
            if p is not None:
                stop_process(p)
    assert time.monotonic() - started < TEST_BUDGET
