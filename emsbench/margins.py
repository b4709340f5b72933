"""Counts that add up across indicators: which withheld counts the released ones give away.

Two indicators whose populations are the same expression (``spec_language.normal_form``)
count the same cases, so their cells are linked: a cell of one stratification is the sum
of the cells of a finer one (a spec with no strata is the total of one by urgency_level),
and two specs with the same strata and the same count hold the same number. Per cell,
the counts are (``margin_counts``): for a share or ratio pair the population count
(denominator), the numerator and their complement; for a distribution the cases with a
value (its histogram's total); for a rate its events (a population count). Within a
population ("family") every such count is a linear function of unknowns, one per
measure (population count, each numerator, each distribution measure) and stratum of the
family's finest grid (every dimension any of its specs stratifies on). Released counts
are equations; a withheld count is recoverable iff it lies in their row space, which
``Margins`` decides exactly (rational elimination). Beyond single counts, in every margin
group (the cells of one stratification that add up to one cell of a coarser one, or to
the total) the withheld cells' sum, when the released counts determine it, must not be a
count from 1 to threshold − 1.

A distribution's cases are the population count exactly when the measure has a value at
or above the first bin for every case of the population (the usual design: the
population requires the measure's times). The node knows whether that holds (equal
totals: cases ≤ population in every stratum, so equal totals mean equal everywhere) and
links them when it does; the hub links them only when the released figures establish
equal totals, so it never holds a node to a link it could not see.

Limits, by design: only identical normalised expressions are linked (a population that is
another's numerator or a sub-population of it, ``A AND B`` versus ``A``, links by
inequalities only and is not modelled); histogram runs are not linked across specs (two
distributions of one measure on one population with different strata would be); kinds
other than share, ratio, distribution and rate carry no linked counts; the data-quality
counts are their own equation (``_recoverable`` in ``emsbench.conformance``).

``margin_problems`` is the check ``emsbench.conformance.check_document`` runs (code
``recoverable_by_subtraction``); ``node.disclosure.protect_margins`` uses ``Margins`` to
choose the secondary suppression that keeps a release clear of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from emsbench import model
from emsbench.kinds import Problem, is_small, kind_of
from emsbench.kinds.base import MarginKey
from emsbench.spec_language import normal_form
from emsbench.specs import IndicatorSpec, key_values
from emsbench.wire import Cell, IndicatorResult

MarginLinks = frozenset[tuple[str, MarginKey]]  # (family, ("t", …)) equal to ("d",)


def margin_counts(spec: IndicatorSpec, cell: Cell) -> list[tuple[str, MarginKey, int | None]]:
    """(name, measure, value) of every count of cases a cell carries; value None: withheld.
    Which counts a cell carries is its kind's to say."""
    return kind_of(spec).margin_counts(spec, cell)


def _dimensions(spec: IndicatorSpec) -> list[tuple[str, tuple[str, ...]]]:
    """What each key of a cell's stratum splits the population by, and its values: a model
    column (a stratum, or a case-mix stratum naming one) or a boolean expression."""
    adjust = spec.adjust_for or {}
    out = []
    for key in spec.cell_strata:
        dim = key
        if key not in spec.strata:
            expr = adjust[key].strip()
            dim = expr if expr in model.ENUMS else "expr:" + normal_form(expr)
        out.append((dim, key_values(spec, key)))
    return out


class _Span:
    """The row space of released counts, exactly, remembering the cells each row came from."""

    def __init__(self) -> None:
        # (pivot, row, value, the released counts it combines: (cell, count) → factor)
        self.rows: list[tuple[int, dict[int, Fraction], Fraction,
                              dict[tuple[int, str], Fraction]]] = []

    def _reduce(self, vec: Iterable[tuple[int, int]]
                ) -> tuple[dict[int, Fraction], Fraction, dict[tuple[int, str], Fraction]]:
        v = {i: Fraction(c) for i, c in vec}
        value = Fraction(0)
        used: dict[tuple[int, str], Fraction] = {}
        for pivot, row, row_value, row_used in self.rows:
            c = v.get(pivot)
            if not c:
                continue
            for i, x in row.items():
                y = v.get(i, Fraction(0)) - c * x
                if y:
                    v[i] = y
                else:
                    v.pop(i, None)
            value += c * row_value
            for s, x in row_used.items():
                used[s] = used.get(s, Fraction(0)) + c * x
        return v, value, used

    def add(self, vec: Iterable[tuple[int, int]], value: int, source: tuple[int, str]
            ) -> None:
        v, reduced, used = self._reduce(vec)
        if not v:
            return
        pivot = min(v)
        c = v[pivot]
        origin = {s: -x for s, x in used.items()}
        origin[source] = origin.get(source, Fraction(0)) + 1
        self.rows.append((pivot, {i: x / c for i, x in v.items()}, (value - reduced) / c,
                          {s: x / c for s, x in origin.items() if x}))

    def solve(self, vec: Iterable[tuple[int, int]]) -> tuple[Fraction, frozenset[int]] | None:
        """The value of a linear combination of counts, and the cells it is computed from,
        if the released counts determine it; None if they do not."""
        v, value, used = self._reduce(vec)
        if v:
            return None
        return value, frozenset(cell for (cell, _), x in used.items() if x)


@dataclass(frozen=True)
class MarginCell:
    """One cell of the results a ``Margins`` was built from."""

    result: int  # index of its result
    index: int  # index of the cell in its result
    spec_id: str
    stratum: str  # "key=value;…", "(all)" for a spec without strata
    family: str  # the normalised population
    dims: frozenset[str]


@dataclass(frozen=True)
class _Term:
    cell: int
    count: str
    measure: MarginKey
    vec: tuple[tuple[int, int], ...]
    value: int | None
    where: tuple[tuple[str, str], ...]  # (dimension, value), sorted


@dataclass(frozen=True)
class MarginFinding:
    """Withheld counts the released ones give away: one count exactly (``group`` None), or
    the sum of several, a count from 1 to threshold − 1."""

    cells: tuple[int, ...]  # the withheld cells (indices into ``Margins.cells``)
    count: str  # numerator, denominator, complement, cases or events
    measure: MarginKey
    value: int
    sources: frozenset[int]  # released cells the value is computed from
    vec: tuple[tuple[int, int], ...]
    group: tuple[str, MarginKey, frozenset[str], tuple[tuple[str, str], ...]] | None = None


def _label(stratum: Mapping[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in stratum.items()) or "(all)"


class Margins:
    """The counts of several results as one linear system per population (see the
    module docstring).

    ``links``: the (family, distribution measure) pairs whose cases equal the population
    count; None: those the released figures establish (what the hub can see).
    """

    def __init__(self, results: Sequence[IndicatorResult], specs: Mapping[str, IndicatorSpec],
                 links: MarginLinks | None = None):
        self.results, self.specs = list(results), specs
        if links is None:
            links = Margins(results, specs, frozenset())._established()
        self.links = links
        self.cells: list[MarginCell] = []
        self.terms: dict[str, list[_Term]] = {}
        self._spans: dict[tuple[str, frozenset[int]], _Span] = {}
        self._group_cache: dict[str, dict[Any, dict[tuple[tuple[int, int], ...],
                                                    list[_Term]]]] = {}
        members: dict[str, list[int]] = {}
        for i, r in enumerate(self.results):
            spec = specs.get(r.spec_id)
            if spec is not None and margin_counts(spec, Cell()):
                members.setdefault(normal_form(spec.population), []).append(i)
        for family, indices in members.items():
            if len(indices) > 1:  # a population one spec alone counts links nothing
                self._build(family, indices)

    def _measure(self, family: str, m: MarginKey) -> MarginKey:
        return ("d",) if m[0] == "t" and (family, m) in self.links else m

    def _build(self, family: str, indices: list[int]) -> None:
        dims: dict[str, tuple[str, ...]] = {}
        for i in indices:
            for dim, values in _dimensions(self.specs[self.results[i].spec_id]):
                dims.setdefault(dim, values)
        names = list(dims)
        size = 1
        for values in dims.values():
            size *= len(values)
        offsets: dict[MarginKey, int] = {}

        def var(m: MarginKey) -> int:
            return offsets.setdefault(m, len(offsets) * size)

        terms = self.terms.setdefault(family, [])
        for i in indices:
            r = self.results[i]
            spec = self.specs[r.spec_id]
            spec_dims = _dimensions(spec)
            keys = spec.cell_strata
            for j, cell in enumerate(r.cells):
                try:
                    fixed = {dim: dims[dim].index(cell.stratum[key])
                             for key, (dim, _) in zip(keys, spec_dims, strict=True)}
                except (KeyError, ValueError):
                    continue  # not a cell of the grid: reported by the cell checks
                flat = _flat(names, dims, fixed)
                where = tuple(sorted((dim, dims[dim][v]) for dim, v in fixed.items()))
                c = len(self.cells)
                self.cells.append(MarginCell(i, j, r.spec_id, _label(cell.stratum), family,
                                             frozenset(fixed)))
                for count, m, value in margin_counts(spec, cell):
                    m = self._measure(family, m)
                    if m[0] == "c":
                        d, n = var(("d",)), var(("n", m[1]))
                        vec = tuple([(d + f, 1) for f in flat] + [(n + f, -1) for f in flat])
                    else:
                        base = var(m)
                        vec = tuple((base + f, 1) for f in flat)
                    terms.append(_Term(c, count, m, vec, value, where))

    def _established(self) -> MarginLinks:
        """Distribution measures whose total the released figures show equal to the
        population's total."""
        out = set()
        for family, terms in self.terms.items():
            totals: dict[MarginKey, dict[int, int]] = {}
            for t in terms:
                if t.measure[0] in ("d", "t"):
                    totals.setdefault(t.measure, {}).update(t.vec)
            span = self._span(family)
            d = totals.get(("d",))
            known = span.solve(sorted(d.items())) if d else None
            for m, vec in totals.items():
                if m[0] == "t" and known is not None:
                    got = span.solve(sorted(vec.items()))
                    if got is not None and got[0] == known[0]:
                        out.add((family, m))
        return frozenset(out)

    @staticmethod
    def links_of(raw: Sequence[IndicatorResult], specs: Mapping[str, IndicatorSpec]
                 ) -> MarginLinks:
        """The links that hold in unprotected results: a distribution measure whose cases
        add up to the population count (to the largest such total when no result counts the
        population itself)."""
        totals: dict[str, dict[MarginKey, int]] = {}
        for r in raw:
            spec = specs.get(r.spec_id)
            if spec is None:
                continue
            family = totals.setdefault(normal_form(spec.population), {})
            sums: dict[MarginKey, int] = {}
            for cell in r.cells:
                for _, m, value in margin_counts(spec, cell):
                    sums[m] = sums.get(m, 0) + (value or 0)
            family.update(sums)
        out = set()
        for name, family in totals.items():
            cases = [v for m, v in family.items() if m[0] == "t"]
            target = family.get(("d",), max(cases, default=0))
            out |= {(name, m) for m, v in family.items() if m[0] == "t" and v == target}
        return frozenset(out)

    def _span(self, family: str, without: frozenset[int] = frozenset()) -> _Span:
        span = self._spans.get((family, without))
        if span is None:
            span = _Span()
            for t in self.terms.get(family, []):
                if t.value is not None and t.measure[0] != "c" and t.cell not in without:
                    span.add(t.vec, t.value, (t.cell, t.count))
            self._spans[(family, without)] = span
        return span

    def value_of(self, cell: int, measure: MarginKey) -> int | None:
        c = self.cells[cell]
        return next((t.value for t in self.terms[c.family]
                     if t.cell == cell and t.measure == measure), None)

    def released(self, family: str, without: frozenset[int] = frozenset()) -> list[int]:
        """Cells of the family with a released count, in order."""
        return sorted({t.cell for t in self.terms[family]
                       if t.value is not None and t.cell not in without})

    def _groups(self, family: str) -> dict[tuple[MarginKey, frozenset[str],
                                               tuple[tuple[str, str], ...]],
                                         dict[tuple[tuple[int, int], ...], list[_Term]]]:
        """Margin groups: the cells of one stratification (by measure) that add up to one
        cell of a coarser stratification present in the family, or to its total; each as
        slots (one count, held by one or more twin cells)."""
        if family in self._group_cache:
            return self._group_cache[family]
        terms = self.terms[family]
        dimsets = {self.cells[t.cell].dims for t in terms}
        by_slot: dict[tuple[MarginKey, frozenset[str]],
                      dict[tuple[tuple[int, int], ...], list[_Term]]] = {}
        for t in terms:
            by_slot.setdefault((t.measure, self.cells[t.cell].dims), {}).setdefault(
                t.vec, []).append(t)
        out: dict[tuple[MarginKey, frozenset[str], tuple[tuple[str, str], ...]],
                  dict[tuple[tuple[int, int], ...], list[_Term]]] = {}
        for (m, dims), slots in by_slot.items():
            for coarse in sorted({dims & other for other in dimsets} | {frozenset()},
                                 key=sorted):
                if coarse == dims:
                    continue
                for vec, twins in slots.items():
                    at = tuple(kv for kv in twins[0].where if kv[0] in coarse)
                    out.setdefault((m, coarse, at), {})[vec] = twins
        self._group_cache[family] = out
        return out

    def _sum(self, family: str, slots: Mapping[tuple[tuple[int, int], ...], list[_Term]],
             without: frozenset[int]) -> tuple[list[int], tuple[tuple[int, int], ...],
                                               tuple[Fraction, frozenset[int]] | None]:
        hidden = [vec for vec, twins in slots.items()
                  if all(t.value is None or t.cell in without for t in twins)]
        total: dict[int, int] = {}
        for vec in hidden:
            for i, c in vec:
                total[i] = total.get(i, 0) + c
        vec = tuple(sorted((i, c) for i, c in total.items() if c))
        cells = [slots[v][0].cell for v in hidden]
        if len(hidden) < 2:
            return cells, vec, None
        return cells, vec, self._span(family, without).solve(vec)

    def findings(self, threshold: int) -> list[MarginFinding]:
        """Every withheld count the released ones determine, then every margin group whose
        withheld cells add up to a determined count from 1 to threshold − 1."""
        exact: list[MarginFinding] = []
        sums: list[MarginFinding] = []
        for family, terms in self.terms.items():
            span = self._span(family)
            for t in terms:
                if t.value is None and (got := span.solve(t.vec)) is not None:
                    exact.append(MarginFinding((t.cell,), t.count, t.measure, int(got[0]),
                                               got[1], t.vec))
            seen: set[tuple[MarginKey, tuple[tuple[int, int], ...]]] = set()
            for group, slots in self._groups(family).items():
                cells, vec, got = self._sum(family, slots, frozenset())
                if got is None or not is_small(int(got[0]), threshold) \
                        or (group[0], vec) in seen:
                    continue
                seen.add((group[0], vec))
                count = next(iter(slots.values()))[0].count
                sums.append(MarginFinding(tuple(cells), count, group[0], int(got[0]), got[1],
                                          vec, (family, *group)))
        return exact + sums

    def resolved(self, finding: MarginFinding, threshold: int, without: frozenset[int]
                 ) -> bool:
        """Whether withholding the cells ``without`` as well leaves ``finding`` unfounded."""
        family = self.cells[finding.cells[0]].family
        if finding.group is None:
            return self._span(family, without).solve(finding.vec) is None
        slots = self._groups(family)[finding.group[1:]]
        _, _, got = self._sum(family, slots, without)
        return got is None or not is_small(int(got[0]), threshold)

    def siblings(self, finding: MarginFinding) -> list[int]:
        """Released cells of the margin group of a small sum, in order."""
        if finding.group is None:
            return []
        slots = self._groups(self.cells[finding.cells[0]].family)[finding.group[1:]]
        return sorted({t.cell for twins in slots.values() for t in twins
                       if t.value is not None})


def _flat(names: list[str], dims: Mapping[str, tuple[str, ...]], fixed: Mapping[str, int]
          ) -> list[int]:
    """Indices in the finest grid of the strata matching ``fixed`` (dimension → value)."""
    out = [0]
    for name in names:
        n = len(dims[name])
        out = [i * n + v for i in out
               for v in ([fixed[name]] if name in fixed else range(n))]
    return out


def margin_problems(results: Sequence[IndicatorResult], specs: Mapping[str, IndicatorSpec],
                    threshold: int) -> list[Problem]:
    """Withheld counts that released counts of linked indicators give away by subtraction
    (the node's secondary suppression prevents them: ``node.disclosure.protect_margins``)."""
    m = Margins(results, specs)
    p = []
    found = m.findings(threshold)
    exact: dict[int, tuple[list[str], set[int]]] = {}  # one problem per withheld cell
    for f in found:
        if f.group is None:
            counts, used = exact.setdefault(f.cells[0], ([], set()))
            counts.append(f.count)
            used |= f.sources

    def named(cells: Iterable[int]) -> str:
        return ", ".join(f"{m.cells[c].spec_id}/{m.cells[c].stratum}" for c in sorted(cells))

    for cell, (counts, used) in exact.items():
        at = m.cells[cell]
        p.append(Problem("recoverable_by_subtraction", f"indicator {at.spec_id}, stratum "
                         f"{at.stratum}: the withheld {', '.join(counts)} "
                         f"{'is' if len(counts) == 1 else 'are'} recoverable from the "
                         f"released {named(used)}; withhold more cells (secondary "
                         "suppression)"))
    for f in found:
        if f.group is not None:
            p.append(Problem("recoverable_by_subtraction", f"the withheld {f.count}s of "
                             f"{named(f.cells)} add up to {f.value}, a count from 1 to "
                             f"{threshold - 1} recoverable from the released "
                             f"{named(f.sources)}; withhold more cells (secondary "
                             "suppression)"))
    return p
