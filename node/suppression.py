"""What disclosure control withheld or coarsened, and why: the record the release preview
shows the operator.

One ``Suppression`` per count or cell: the indicator (or ``data_quality``), the stratum (or
the data-quality count's name), the count that was small or at risk, and the reason:

* ``primary: 1..k−1``: the count itself is from 1 to threshold − 1;
* ``secondary: margin of <spec>/<stratum>``: withheld although not small, because with it
  released the withheld count of that cell (or a small sum of withheld counts with it)
  could be recovered by subtraction across a margin (``node.disclosure.protect_margins``);
* ``secondary: data-quality total``: the same within rows read = accepted + Σ rejected;
* ``coarsened: runs joined``: released, with neighbouring histogram bins joined.

The records never leave the node: which cells were small (primary) and which were withheld
only to protect them (secondary) would itself tell the hub something. They travel with the
results (``Protected``) from the computation to the release preview, which the flow hands
them to (``node.submission.release_suppressions``), never in the signed payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from emsbench.wire import IndicatorResult

PRIMARY = "primary: 1..k−1"
QUALITY = "secondary: data-quality total"
COARSENED = "coarsened: runs joined"
DATA_QUALITY = "data_quality"
FIELDS = ("indicator", "stratum", "count", "reason")


def secondary(spec_id: str, stratum: str) -> str:
    """The reason of a cell withheld to protect the withheld cell ``spec_id``/``stratum``."""
    return f"secondary: margin of {spec_id}/{stratum}"


def stratum_label(stratum: Mapping[str, str]) -> str:
    """A cell's stratum as the preview writes it: ``key=value;…``, ``(all)`` for none."""
    return ";".join(f"{k}={v}" for k, v in stratum.items()) or "(all)"


@dataclass(frozen=True)
class Suppression:
    indicator: str  # spec id, or "data_quality"
    stratum: str  # stratum label; for data quality the count's name
    count: str  # numerator, denominator, complement, cases, events, bins, rows_read…
    reason: str

    def row(self) -> dict[str, str]:
        return asdict(self)


class Protected(list[IndicatorResult]):
    """Results as they may leave the node, with the suppressions that made them so."""

    def __init__(self, results: Iterable[IndicatorResult] = (),
                 suppressions: Iterable[Suppression] = ()):
        super().__init__(results)
        self.suppressions: list[Suppression] = list(suppressions)


def suppressions_of(results: Iterable[IndicatorResult]) -> list[Suppression]:
    """The suppressions ``results`` carry (none unless they are ``Protected``)."""
    return list(getattr(results, "suppressions", []))

