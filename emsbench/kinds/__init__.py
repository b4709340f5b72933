"""The kinds of indicator the catalogue can hold, one module each (see ``base``).

``KINDS`` maps a spec's ``type`` to its kind; ``kind_of`` is the one lookup every caller
uses. A new kind is a module here, an entry below, and a wire minor version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emsbench.kinds.base import Context, Kind, Pool, Problem, is_small
from emsbench.kinds.distribution import DISTRIBUTION
from emsbench.kinds.rate import RATE
from emsbench.kinds.ratio import RATIO
from emsbench.kinds.share import SHARE

if TYPE_CHECKING:
    from emsbench.specs import IndicatorSpec
    from emsbench.wire import IndicatorResult

KINDS: dict[str, Kind] = {k.name: k for k in (
    SHARE,
    DISTRIBUTION,
    RATE,
    RATIO,
)}

__all__ = ["KINDS", "Context", "Kind", "Pool", "Problem", "is_small", "kind_of"]


def kind_of(thing: IndicatorSpec | IndicatorResult | str) -> Kind:
    """The kind of a spec, a result or a type name."""
    name = thing if isinstance(thing, str) else thing.type
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown indicator type {name!r}; known: "
                         f"{', '.join(sorted(KINDS))}") from None
