"""Stream a synthetic mission file for one country and year to Parquet.

Rows are made in blocks of a fixed ``BLOCK_ROWS``; block ``b`` draws from its own
generator seeded with ``[seed, country index, year, b]``, so the data values depend only on
(country, year, rows, seed) and never on ``chunk_rows``, which only sets how many blocks are
gathered into one Parquet row group. The year counts twice: in the seed, and through the
parameters, which ``trends.for_year`` moves from the 2025 calibration (volume, response
times, bystander CPR, survival ...), so years differ by more than noise. Memory is bounded
by one chunk, so the US yearly volume (50 million rows) streams through in constant memory.

The file's schema has the names, order, types and field metadata of
``emsbench.model.input_schema()`` (every model column except the ones the node derives)
with every field nullable: Parquet refuses nulls in a required column, and a few
deliberately bad rows (``BAD_ROW_SHARE``) carry a null ``urgency_level`` or an
out-of-range age for the node's validation to reject.

The columns added in model v2 are drawn after all v1 columns, so for a given seed the v1
columns keep exactly the values they had before v2.

``case_mix`` ("standard" or "worse", ``node.synth.casemix``) redraws the case mix and the
survival of the EMS-treated arrests from a survival model shared by all countries (same
quality, a chosen case mix), from a random stream of its own: every other value is the
one the default run draws for the seed (transport follows the new ROSC flags).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from emsbench.crosswalk import codes_for
from emsbench.model import ENUMS, input_schema
from node.synth import casemix
from node.synth import clinical as cl
from node.synth.arrest import arrest_block
from node.synth.calibration import country_index
from node.synth.dispatch import (
    LEVELS,
    URBANICITY,
    call_received,
    lights_sirens,
    mission_times,
    place,
    ring_start,
    urgency,
)
from node.synth.draw import bools, chance, int32s, pick, strings, timestamps
from node.synth.params import Country
from node.synth.trends import country_for_year

BLOCK_ROWS = 50_000  # part of the seed contract: changing it changes every file
BAD_ROW_SHARE = 0.002  # half with patient_age 150, half with a null urgency_level
BAD_AGE = 150
SERVICES = ENUMS["service_type"]


def file_schema() -> pa.Schema:
    """``input_schema()`` with all fields nullable (see the module docstring)."""
    model = input_schema()
    return pa.schema([f.with_nullable(True) for f in model], metadata=model.metadata)


def generate(country: str, year: int, out: Path, rows: int | None = None, seed: int = 2025,
             chunk_rows: int = 250_000,
             progress: Callable[[int, int], None] | None = None,
             case_mix: str | None = None) -> int:
    """Write ``rows`` synthetic missions (default: the year's volume) to ``out``; return rows.

    The file appears at ``out`` only when complete (written to a sibling ``.part`` first).
    ``progress(rows_written, total)`` is called after each chunk.
    """
    params = country_for_year(country, year)
    mix = None if case_mix is None else casemix.case_mix(case_mix)
    total = params.volume if rows is None else rows
    if total < 0 or total >= 10**9:
        raise ValueError("rows must be between 0 and 999,999,999 (ids have nine digits)")
    per_chunk = max(1, chunk_rows // BLOCK_ROWS)
    n_blocks = -(-total // BLOCK_ROWS)
    schema = file_schema()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    written = 0
    try:
        with pq.ParquetWriter(part, schema, compression="zstd") as writer:
            for start in range(0, n_blocks, per_chunk):
                batches = [_block(params, year, seed, b, total, schema, mix)
                           for b in range(start, min(start + per_chunk, n_blocks))]
                table = pa.Table.from_batches(batches, schema)
                writer.write_table(table, row_group_size=table.num_rows)
                written += table.num_rows
                del batches, table  # keep at most one chunk alive
                if progress is not None:
                    progress(written, total)
        part.replace(out)
    finally:
        part.unlink(missing_ok=True)
    return written


def _block(c: Country, year: int, seed: int, block: int, total: int,
           schema: pa.Schema, mix: casemix.CaseMix | None = None) -> pa.RecordBatch:
    """Rows ``block * BLOCK_ROWS`` onwards; the order of draws below is part of the output."""
    first = block * BLOCK_ROWS
    n = min(BLOCK_ROWS, total - first)
    rng = np.random.default_rng([seed, country_index(c.code), year, block])
    xw = codes_for(c.code, c.urgency_system)
    codes = tuple(x.native_code for x in xw)
    levels = tuple(x.common_level for x in xw)

    case = cl.cases(rng, c, n)
    special = np.isin(case, (cl.ARREST, cl.STEMI, cl.STROKE))
    service_mix = dict(c.service_mix)
    service = pick(rng, [service_mix.get(s, 0.0) for s in SERVICES], n)
    service = np.where(special, SERVICES.index("emergency"), service)
    # time-critical cases are never cancelled; scale up the rest to keep the overall share
    p_special = (c.p_treated_arrest / c.ohca.resus_attempted) + c.p_stemi + c.p_stroke
    cancelled = ~special & chance(rng, c.cancelled / (1.0 - p_special), n)
    # arrests are dispatched at U1; STEMI and stroke mostly (85 %, assumed)
    forced_u1 = (case == cl.ARREST) | (special & chance(rng, 0.85, n))
    native = urgency(rng, c, codes, levels, forced_u1)
    level = np.asarray([LEVELS.index(lv) for lv in levels])[native]
    sirens = lights_sirens(rng, tuple(x.lights_and_sirens_usual for x in xw), native)
    urban, where = place(rng, c, n)
    received = call_received(rng, year, first, n, total)

    arrest_cols, resus, rosc = arrest_block(rng, c, case == cl.ARREST)
    has_patient = ~cancelled & (service != SERVICES.index("standby"))
    age, patient_cols = cl.patient(rng, case, has_patient)
    if mix is not None:  # its own stream: the main one draws exactly as without
        changed, age, rosc = casemix.apply(
            np.random.default_rng([seed, country_index(c.code), year, block, casemix.STREAM]),
            mix, (case == cl.ARREST) & resus,
            {**arrest_cols, "patient_sex": patient_cols["patient_sex"]}, age, rosc)
        patient_cols["patient_sex"] = changed.pop("patient_sex")
        arrest_cols.update(changed)
    moved = cl.transported(rng, case, SERVICES, service, cancelled, rosc, resus)
    t = mission_times(rng, c, received, level, urban, cl.on_scene(rng, case), cancelled, moved)
    stemi_cols, device = cl.stemi_block(rng, c, case, age, t, moved)
    stroke_cols, scale_done = cl.stroke_block(rng, c, case, t, moved)

    u = rng.random(n)
    bad_age = u < BAD_ROW_SHARE / 2
    bad_level = (u >= BAD_ROW_SHARE / 2) & (u < BAD_ROW_SHARE)

    # model v2 columns: drawn after every v1 column, so those keep their values for a seed
    ring = ring_start(rng, c, t)
    vitals_cols, swallows = cl.assessment(rng, case, has_patient)
    v2_cols = {**vitals_cols,
               **cl.aspirin(rng, case, t, has_patient, moved, swallows),
               **cl.stroke_scale(rng, c, scale_done),
               **cl.destination(rng, case, moved, device)}

    ids = pc.utf8_lpad(pc.cast(pa.array(np.arange(first, first + n)), pa.string()), 9, "0")
    cols: dict[str, pa.Array] = {
        "mission_id": pc.binary_join_element_wise(f"{c.code}-{year}-", ids, ""),
        "call_received": timestamps(t.call_received),
        "call_ring_start": timestamps(ring),
        "call_answered": timestamps(t.call_answered),
        "unit_notified": timestamps(t.unit_notified),
        "unit_en_route": timestamps(t.unit_en_route),
        "arrived_scene": timestamps(t.arrived_scene, t.arrived),
        "at_patient": timestamps(t.at_patient, t.arrived),
        "left_scene": timestamps(t.left_scene, t.arrived),
        "at_destination": timestamps(t.at_destination, t.destination),
        "urgency_native": strings(codes, native),
        "urgency_level": strings(LEVELS, level, ~bad_level),
        "lights_sirens": bools(sirens),
        "urbanicity": strings(URBANICITY, urban),
        "municipality": strings([p[1] for p in c.places], where),
        "region": strings([p[0] for p in c.places], where),
        "service_type": strings(SERVICES, service),
        "cancelled": bools(cancelled),
        "transported": bools(moved),
        "patient_age": int32s(np.where(bad_age, BAD_AGE, age), has_patient | bad_age),
        **patient_cols, **arrest_cols, **stemi_cols, **stroke_cols, **v2_cols,
    }
    return pa.RecordBatch.from_arrays([cols[name] for name in schema.names], schema=schema)
