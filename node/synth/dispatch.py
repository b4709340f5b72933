"""Mission block of a synthetic record: when, where, how urgent, and the time chain.

Call times are placed by the row's global position in the year (so a file's missions run
from 1 January to 31 December in id order, whatever the chunking), warped through a
diurnal profile. The response time (call received to arrival) is drawn whole from the
country's lognormal for the row's urgency x urbanicity, and the steps before departure are
fitted inside it, so the RESP indicator reproduces the calibrated median and P90 exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist

import numpy as np

from node.synth.draw import Bools, Ints, chance, lognormal, lognormal_by, pick, seconds
from node.synth.params import Z90, Country, Lognormal

LEVELS = ("U1", "U2", "U3")
URBANICITY = ("urban", "rural")

# Relative call volume by hour of day, 00-23 (assumed: typical EMS diurnal curve with a
# night trough and a late-morning peak; no published figure).
_HOURLY = (2.6, 2.2, 2.0, 1.8, 1.7, 1.9, 2.5, 3.6, 4.6, 5.3, 5.6, 5.6,
           5.4, 5.2, 5.1, 5.0, 5.0, 5.0, 4.9, 4.7, 4.3, 3.9, 3.4, 3.0)
_HOUR_CDF = np.concatenate([[0.0], np.cumsum(_HOURLY) / sum(_HOURLY)])

# Steps before the unit leaves, in minutes (assumed: no published figure). Danish response
# starts at call_answered, so answering is kept short and separate.
_ANSWER = Lognormal(0.10, 0.35)
_PROCESSING = (Lognormal(1.2, 2.5), Lognormal(2.5, 7.0), Lognormal(5.0, 20.0))  # by level
_CHUTE = Lognormal(0.8, 2.0)
_TO_PATIENT = (Lognormal(1.2, 3.0), Lognormal(1.8, 4.5))  # urban, rural
_TRANSPORT = (Lognormal(12.0, 25.0), Lognormal(30.0, 70.0))  # urban, rural
# Share of the response time the steps before departure may take at most: keeps the
# drive strictly positive when a short response meets slow call handling.
_MAX_PRE_SHARE = 0.6
# Ring-to-answer at the medical dispatcher's position: lognormal with this log-spread
# (assumed), its median set per country so that the calibrated share is answered within
# 10 s (whole seconds, so below 10.5 s).
_RING_SIGMA = 0.8
_WITHIN_10S = 10.5 / 60.0


@dataclass(frozen=True)
class Times:
    """Epoch seconds of each step, and where each is recorded."""

    call_received: Ints
    call_answered: Ints
    unit_notified: Ints
    unit_en_route: Ints
    arrived_scene: Ints
    at_patient: Ints
    left_scene: Ints
    at_destination: Ints
    arrived: Bools  # arrived_scene, at_patient and left_scene recorded
    destination: Bools  # at_destination recorded


def call_received(rng: np.random.Generator, year: int, first_row: int, n: int,
                  total: int) -> Ints:
    """Epoch seconds of call receipt, spread over the year by global row position."""
    start = int((datetime(year, 1, 1) - datetime(1970, 1, 1)).total_seconds())
    days = (datetime(year + 1, 1, 1) - datetime(year, 1, 1)).days
    position = (np.arange(first_row, first_row + n) + rng.random(n)) / total * days
    day = np.floor(position)
    # piecewise-linear inverse of the diurnal CDF: more calls in the day than at night
    hour = np.interp(position - day, _HOUR_CDF, np.arange(25.0))
    return start + np.floor(day * 86_400 + hour * 3_600).astype(np.int64)


def urgency(rng: np.random.Generator, country: Country, codes: tuple[str, ...],
            levels: tuple[str, ...], forced_u1: Bools) -> Ints:
    """Index into ``codes`` of each row's native urgency code.

    Rows in ``forced_u1`` (time-critical cases) get the country's most common U1 code.
    """
    weights = dict(country.urgency_mix)
    native = pick(rng, [weights.get(c, 0.0) for c in codes], len(forced_u1))
    u1 = [i for i, lv in enumerate(levels) if lv == "U1"]
    top_u1 = max(u1, key=lambda i: weights.get(codes[i], 0.0))
    return np.where(forced_u1, top_u1, native)


def lights_sirens(rng: np.random.Generator, usual: tuple[str, ...], native: Ints) -> Bools:
    """Lights and sirens from the crosswalk's usual practice for the code."""
    # 'local' means it depends on the agency: half of them (assumed)
    p = np.array([{"yes": 0.95, "local": 0.5}.get(u, 0.05) for u in usual])[native]
    return chance(rng, p, len(native))


def place(rng: np.random.Generator, country: Country, n: int) -> tuple[Ints, Ints]:
    """Urbanicity (index into URBANICITY) and index into ``country.places`` of each row."""
    urban = chance(rng, country.urban_share, n)
    idx = np.empty(n, dtype=np.int64)
    for u, name in enumerate(URBANICITY):
        rows = np.flatnonzero(urban == (u == 0))
        options = [i for i, p in enumerate(country.places) if p[2] == name]
        weights = [country.places[i][3] for i in options]
        idx[rows] = np.asarray(options)[pick(rng, weights, len(rows))]
    return np.where(urban, 0, 1), idx


def mission_times(rng: np.random.Generator, country: Country, received: Ints, level: Ints,
                  urban: Ints, on_scene_s: Ints, cancelled: Bools, transported: Bools) -> Times:
    """The ordered time chain; arrival onwards is missing when cancelled, the destination
    when not transported. ``on_scene_s`` is the case-dependent time on scene in seconds.
    """
    n = len(received)
    resp = country.response
    dists = [resp.get(lv, u) for lv in LEVELS for u in URBANICITY]
    total = seconds(lognormal_by(rng, dists, level * 2 + urban), minimum=30)
    pre = np.stack([lognormal(rng, _ANSWER, n),
                    lognormal_by(rng, _PROCESSING, level),
                    lognormal(rng, _CHUTE, n)]) * 60.0
    scale = np.minimum(1.0, _MAX_PRE_SHARE * total / pre.sum(axis=0))
    steps = np.maximum(np.rint(pre * scale), 1).astype(np.int64)
    answered = received + steps[0]
    notified = answered + steps[1]
    en_route = notified + steps[2]
    arrived = np.maximum(received + total, en_route + 1)
    at_patient = arrived + seconds(lognormal_by(rng, _TO_PATIENT, urban), minimum=10)
    left = at_patient + on_scene_s
    destination = left + seconds(lognormal_by(rng, _TRANSPORT, urban), minimum=60)
    on_scene = ~cancelled
    return Times(received, answered, notified, en_route, arrived, at_patient, left,
                 destination, arrived=on_scene, destination=on_scene & transported)


def ring_distribution(share_within_10s: float, p_handled: float | None = None) -> Lognormal:
    """Ring-to-answer time R (minutes) giving ``share_within_10s`` after the clamp.

    The ring starts at or after ``call_received``, so the recorded ring is
    min(R, received-to-answered): within 10 s when either is, so
    P(R within) = 1 - (1 - share) / (1 - P(received-to-answered within)). That last
    probability, ``p_handled``, defaults to the drawn call handling before it is fitted into
    short responses; ``ring_start`` passes the block's actual share.
    """
    p_answer = NormalDist(_ANSWER.mu, _ANSWER.sigma).cdf(math.log(_WITHIN_10S))
    if not p_answer < share_within_10s < 1.0:
        raise ValueError(f"answer_within_10s must be between {p_answer:.3f} (the call "
                         "handling alone) and 1")
    if p_handled is not None:
        p_answer = p_handled
    # at least a small share of short rings, should the block's call handling already
    # be as fast as the target
    p_ring = max(0.05, 1.0 - (1.0 - share_within_10s) / (1.0 - p_answer))
    median = _WITHIN_10S / math.exp(NormalDist().inv_cdf(p_ring) * _RING_SIGMA)
    return Lognormal(median, median * math.exp(Z90 * _RING_SIGMA))


def ring_start(rng: np.random.Generator, country: Country, t: Times) -> Ints:
    """Epoch seconds the call starts ringing at the dispatcher: at or after call_received,
    before call_answered."""
    handled = t.call_answered - t.call_received
    p_handled = float(np.mean(handled <= 10)) if len(handled) else 0.0
    dist = ring_distribution(country.answer_within_10s, min(p_handled, 0.999))
    ring = seconds(lognormal(rng, dist, len(handled)))
    return t.call_answered - np.minimum(ring, handled)
