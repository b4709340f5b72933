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
"""

from __future__ import annotations

from emsbench.kinds import Context, is_small, kind_of
from emsbench.specs import IndicatorSpec, stratum_grid
from emsbench.wire import IndicatorResult

__all__ = ["full_grid", "is_small", "protect", "protect_counts", "protect_quality"]


def full_grid(result: IndicatorResult, spec: IndicatorSpec,
              ctx: Context | None = None) -> IndicatorResult:
    """``result`` with a cell for every stratum of its grid, in grid order; an absent
    stratum is its kind's empty cell (0 of 0, no histogram runs). Zero is not a
    disclosure."""
    kind = kind_of(spec)
    have = {tuple(c.stratum[s] for s in result.strata): c for c in result.cells}
    cells = []
    for key in stratum_grid(result.strata):
        cell = have.pop(key, None)
        if cell is None:
            cell = kind.empty_cell(spec, dict(zip(result.strata, key, strict=True)),
                                   ctx or Context())
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
