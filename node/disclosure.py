"""Disclosure control: counts from 1 to threshold − 1 never leave the node.

How one cell is protected is its indicator kind's rule (``emsbench.kinds``: a share cell
with a small numerator, denominator or complement is withheld whole; a histogram is
coarsened into runs of at least ``threshold`` cases). Zero is not a disclosure and is sent.

Every result is sent as its full grid (``full_grid``): one cell for every stratum the code
sets allow, empty ones included, so a withheld cell's label does not say that the stratum
holds cases.

The data-quality counts obey one equation, rows read = rows accepted + Σ rejected by reason,
so withholding the small ones is not enough: with everything else released, a single
withheld count is the difference, and several withheld counts still add up to a known
total. ``protect_quality`` therefore also withholds (secondary suppression) the smallest
released counts until the withheld ones are at least two and add up to ``threshold`` or
more, so no withheld count, and no small sum of them, can be recovered by subtraction.

Indicators on the same population (the same expression in normal form) are linked the same
way: a spec without strata is the total of one by urgency level; two specs with the same
strata count the same cases; a distribution's cases are the population count when every
case has a value (``emsbench.margins.Margins`` sets up the equations).
``protect_margins`` applies secondary suppression across them, by this rule:

* **no withheld count is a linear combination of released counts** (numerator,
  denominator and complement of a withheld share or ratio cell, cases of a withheld
  histogram, events of a withheld rate cell), decided exactly by rank over the finest
  strata of each population, so no subtraction along any margin or chain of margins (two
  stratifications of one table included) recovers it;
* **in every margin group** (the cells of one stratification that add up to one cell of a
  coarser stratification, or to the total), the withheld cells are none or at least two,
  and when the released counts determine the sum of their counts, that sum is 0 or at
  least ``threshold``, for each count (numerator, denominator, complement, cases) apart.

Victims, until both hold: for a small sum, the group's smallest released sibling (a
positive count before a zero; then grid order, then catalogue order); for a recoverable
count, the first released cell in the order siblings of the same stratification, cells of
the same indicator, finer cells, each smallest first, whose withholding makes it
unrecoverable, else the first the recovery uses. Each step withholds one more cell, so it
ends; withholding everything satisfies both. A victim is withheld whole, except that a
ratio's cell keeps its denominator when only its numerator or complement is at risk (as the
kind's own rule does). What cannot be detected exactly (a population that is another's
numerator or a part of it, histogram runs of one measure under different strata) is not
linked; see ``emsbench.margins``.
``protect_release`` runs the kinds' primary protection and then this, and records every
suppression with its reason (``node.suppression``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from emsbench.kinds import Context, is_small, kind_of
from emsbench.margins import MarginFinding, Margins, margin_counts
from emsbench.specs import IndicatorSpec, spec_grid
from emsbench.wire import IndicatorResult
from node.suppression import (
    COARSENED,
    DATA_QUALITY,
    PRIMARY,
    QUALITY,
    Protected,
    Suppression,
    secondary,
    stratum_label,
)

__all__ = ["full_grid", "is_small", "protect", "protect_counts", "protect_margins",
           "protect_quality", "protect_release", "quality_suppressions"]


def full_grid(result: IndicatorResult, spec: IndicatorSpec,
              ctx: Context | None = None) -> IndicatorResult:
    """``result`` with a cell for every stratum of its grid, in grid order; an absent
    stratum is its kind's empty cell (0 of 0, no histogram runs). Zero is not a
    disclosure."""
    kind = kind_of(spec)
    keys = spec.cell_strata  # the strata, then a ratio's case-mix strata
    have = {tuple(c.stratum[s] for s in keys): c for c in result.cells}
    cells = []
    for key in spec_grid(spec):
        cell = have.pop(key, None)
        if cell is None:
            cell = kind.empty_cell(spec, dict(zip(keys, key, strict=True)), ctx or Context())
        cells.append(cell)
    if have:  # the engine computed a stratum outside the code sets: a bug, never sent
        raise ValueError(f"indicator {result.spec_id}: strata outside the code sets: "
                         f"{sorted(have)}")
    return result.model_copy(update={"cells": cells})


def protect(result: IndicatorResult, spec: IndicatorSpec, threshold: int) -> IndicatorResult:
    """The result with every small count withheld, by its kind's rule."""
    kind = kind_of(spec)
    return result.model_copy(update={"cells": [kind.protect(spec, c, threshold)
                                               for c in result.cells]})


def protect_counts(counts: dict[str, int], threshold: int) -> dict[str, int | None]:
    """Rejected-row counts by reason, small ones withheld."""
    return {k: (None if is_small(v, threshold) else v) for k, v in counts.items()}


def protect_quality(read: int, accepted: int, rejected: dict[str, int], threshold: int
                    ) -> tuple[int | None, int | None, dict[str, int | None]]:
    """Rows read, rows accepted and rejected rows by reason, as they may leave the node.

    Primary: every small count is withheld. Secondary: while rows read is released, the
    withheld counts among rows accepted and the reasons are recoverable through
    read − accepted − Σ reasons unless they are two or more and add up to ``threshold`` or
    more; until then the smallest released reason is withheld too (by name on ties), then
    rows accepted, then rows read.
    """
    out_read: int | None = None if is_small(read, threshold) else read
    out_accepted: int | None = None if is_small(accepted, threshold) else accepted
    reasons: dict[str, int | None] = protect_counts(rejected, threshold)

    def withheld() -> list[int]:
        hidden = [rejected[k] for k, v in reasons.items() if v is None]
        return hidden + ([accepted] if out_accepted is None else [])

    while out_read is not None:
        hidden = withheld()
        if not hidden or (len(hidden) >= 2 and sum(hidden) >= threshold):
            break
        released = sorted((v, k) for k, v in reasons.items() if v is not None)
        if released:
            reasons[released[0][1]] = None
        elif out_accepted is not None:
            out_accepted = None
        else:
            out_read = None
    return out_read, out_accepted, reasons


def protect_release(raw: Sequence[IndicatorResult], specs: Sequence[IndicatorSpec],
                    threshold: int) -> Protected:
    """Full-grid results as they may leave the node: each kind's protection of its cells
    (primary), then secondary suppression across margins; with every suppression and its
    reason."""
    by_id = {s.id: s for s in specs}
    out, records = [], []
    for result in raw:
        spec = by_id[result.spec_id]
        protected = protect(result, spec, threshold)
        out.append(protected)
        for before, after in zip(result.cells, protected.cells, strict=True):
            if after == before:
                continue
            label = stratum_label(before.stratum)
            if after.suppressed:
                small = [name for name, _, n in margin_counts(spec, before)
                         if is_small(n, threshold)]
                records.append(Suppression(spec.id, label, ", ".join(small) or "cell",
                                           PRIMARY))
            elif after.bins != before.bins:
                records.append(Suppression(spec.id, label, "bins", COARSENED))
    protected_out, more = protect_margins(out, specs, threshold, raw=raw)
    withheld = {(r.spec_id, stratum_label(c.stratum)) for r in protected_out for c in r.cells
                if c.suppressed}
    records = [s for s in records  # a coarsened histogram withheld after all: withheld only
               if s.reason != COARSENED or (s.indicator, s.stratum) not in withheld]
    return Protected(protected_out, records + more)


def _withhold(result: IndicatorResult, index: int, spec: IndicatorSpec, count: str
              ) -> IndicatorResult:
    """The result with one cell withheld whole; a ratio's cell keeps its denominator (its
    size, for coverage) when only its numerator or complement is at risk."""
    cells = list(result.cells)
    cells[index] = kind_of(spec).withhold(spec, cells[index], count)
    return result.model_copy(update={"cells": cells})


def _victim(m: Margins, f: MarginFinding, threshold: int) -> int:
    """The cell to withhold next for ``f`` (the order is the module's rule)."""
    def smallest(c: int) -> tuple[bool, bool, int, int]:
        n = m.value_of(c, f.measure)
        return n is None, n == 0, n or 0, c

    siblings = m.siblings(f)
    if siblings:
        return min(siblings, key=smallest)
    at = m.cells[f.cells[0]]
    order = sorted(m.released(at.family), key=lambda c: (
        m.cells[c].dims != at.dims, m.cells[c].result != at.result, -len(m.cells[c].dims),
        *smallest(c)))
    for c in order:
        if m.resolved(f, threshold, frozenset({c})):
            return c
    return next((c for c in order if c in f.sources), order[0])


def protect_margins(results: Sequence[IndicatorResult], specs: Sequence[IndicatorSpec],
                    threshold: int, raw: Sequence[IndicatorResult] | None = None
                    ) -> tuple[list[IndicatorResult], list[Suppression]]:
    """Secondary suppression across margins (the rule above) of results that each kind has
    protected already. ``raw``: the same results unprotected, which say whether a
    distribution's cases equal its population's count; without them only what the
    released counts establish is linked."""
    by_id: Mapping[str, IndicatorSpec] = {s.id: s for s in specs}
    links = Margins.links_of(raw, by_id) if raw is not None else None
    out = list(results)
    records: list[Suppression] = []
    for _ in range(sum(len(r.cells) for r in out) + 1):
        m = Margins(out, by_id, links)
        found = m.findings(threshold)
        if not found:
            return out, records
        f = found[0]
        victim, at = m.cells[_victim(m, f, threshold)], m.cells[f.cells[0]]
        out[victim.result] = _withhold(out[victim.result], victim.index,
                                       by_id[victim.spec_id], f.count)
        records.append(Suppression(victim.spec_id, victim.stratum, f.count,
                                   secondary(at.spec_id, at.stratum)))
    raise AssertionError("secondary suppression withheld every cell and still found a "
                         "recoverable count")  # unreachable: nothing released, nothing found


def quality_suppressions(read: int, accepted: int, rejected: Mapping[str, int],
                         released: tuple[int | None, int | None, Mapping[str, int | None]],
                         threshold: int) -> list[Suppression]:
    """Why each withheld data-quality count (``protect_quality``'s answer) was withheld."""
    out_read, out_accepted, out_reasons = released
    counts = [("rows_read", read, out_read), ("rows_accepted", accepted, out_accepted)]
    counts += [(f"rejected {k}", v, out_reasons.get(k)) for k, v in rejected.items()]
    return [Suppression(DATA_QUALITY, name, "rows",
                        PRIMARY if is_small(n, threshold) else QUALITY)
            for name, n, sent in counts if sent is None]
