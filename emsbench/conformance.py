"""What the numbers in a signed document must mean: one check, used by everyone.

The wire model (``emsbench.wire``) says what a submission *looks like*; this module says
whether it makes *sense* against the hub's indicator catalogue and the federation's policy.
The hub API runs it before storing, the store and the report run it again on every stored
document (so a document that passed under an older, laxer hub is still caught), and the node
runs it on its own submission before signing. Every rule lives here once (the check across
indicators' margins in ``emsbench.margins``, which ``check_document`` runs) and every breach
has a stable code:

=============================== ===========================================================
code                            meaning
=============================== ===========================================================
``empty_submission``            no indicator at all
``duplicate_indicator``         an indicator appears twice
``unknown_spec``                an indicator the catalogue does not define
``spec_mismatch``               another version of a spec, or another catalogue release
``missing_indicator``           a catalogue indicator is absent
``wrong_shape``                 type or strata differ from the spec
``incomplete_grid``             a stratum of the spec's grid is missing (empty ones too are
                                sent, so a cell's presence says nothing)
``duplicate_stratum``           the same stratum twice in one indicator
``unknown_stratum_value``       a stratum value outside the column's code set
``invalid_bins``                histogram runs out of order, overlapping or out of range
``run_off_lattice``             a histogram run that does not start and end on the spec's
                                band edges (``Bins.bands``)
``invalid_quantiles``           exact quantiles with other keys than the median and the
                                spec's quantile, of a cell without cases, or outside the
                                runs holding their order statistics
``suppression_inconsistent``    a withheld cell with counts, or a released one without
``count_out_of_range``          a count above the policy's plausibility bound
``numerator_exceeds_denominator``
``disclosure_violation``        a released count (or complement) from 1 to threshold − 1
``recoverable_by_subtraction``  released counts of indicators on the same population give
                                a withheld count away, or a sum of withheld counts from 1
                                to threshold − 1 (no secondary suppression across margins)
``threshold_too_low``           the declared threshold is under the federation minimum
``inconsistent_quality``        accepted > read, or rejections exceed read − accepted
``year_out_of_window``          the period is outside the years the hub accepts
``created_at_out_of_window``    created in the future, too long ago, or before the period
=============================== ===========================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from emsbench.kinds import Problem, is_small, kind_of
from emsbench.margins import margin_problems
from emsbench.specs import IndicatorSpec, key_values, spec_grid
from emsbench.wire import Cell, DataQuality, Document, IndicatorResult, Submission

# Spec and catalogue disagreements are conflicts of version (409); the rest are invalid
# content (422).
CONFLICT_CODES = frozenset({"spec_mismatch"})
SMALLEST_THRESHOLD = 3  # the federation minimum may be configured higher, never lower


@dataclass(frozen=True)
class Policy:
    """The federation's intake rules (the hub's ``[policy]`` table)."""

    min_disclosure_threshold: int = 5
    max_count: int = 1_000_000_000  # 20× the largest national yearly volume (US, ~50 M)
    first_year: int = 2000
    last_year: int | None = None  # None: the year of the check
    max_clock_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=3 * 366)

    def __post_init__(self) -> None:
        if self.min_disclosure_threshold < SMALLEST_THRESHOLD:
            raise ValueError(f"min_disclosure_threshold must be at least {SMALLEST_THRESHOLD}")


def _codes(spec: IndicatorSpec, key: str) -> tuple[str, ...]:
    try:
        return key_values(spec, key)
    except KeyError:  # spec validation refuses such strata; nothing can match them
        return ()


def _cell_problems(result: IndicatorResult, spec: IndicatorSpec, cell: Cell, where: str,
                   threshold: int, max_count: int) -> list[Problem]:
    p: list[Problem] = []
    for key, value in cell.stratum.items():
        if value not in _codes(spec, key):
            p.append(Problem("unknown_stratum_value", f"{where}: {key}={value!r} is not in "
                             f"the code set {list(_codes(spec, key))}"))
    return p + kind_of(spec).cell_problems(spec, cell, where, threshold, max_count)


def conforms(result: IndicatorResult, spec: IndicatorSpec, *, threshold: int,
             max_count: int = Policy.max_count) -> list[Problem]:
    """Every way ``result`` fails to be a protected result of ``spec`` (empty: it conforms)."""
    if result.spec_version != spec.version or result.spec_sha256 != spec.sha256:
        return [Problem("spec_mismatch",
                        f"indicator {spec.id}: computed with version {result.spec_version} "
                        f"(sha256 {result.spec_sha256[:12]}…) but the catalogue has "
                        f"{spec.version} (sha256 {spec.sha256[:12]}…); update the node's "
                        "indicator specs and run it again")]
    if result.type != spec.type or result.strata != spec.cell_strata:
        return [Problem("wrong_shape", f"indicator {spec.id}: type {result.type} with strata "
                        f"{result.strata}, but the spec defines {spec.type} with strata "
                        f"{spec.cell_strata}")]
    p: list[Problem] = []
    seen: set[tuple[str, ...]] = set()
    for cell in result.cells:
        key = tuple(cell.stratum[s] for s in spec.cell_strata)
        where = f"indicator {spec.id}, stratum {dict(zip(spec.cell_strata, key, strict=True))}"
        if key in seen:
            p.append(Problem("duplicate_stratum", f"{where} appears more than once"))
        seen.add(key)
        p += _cell_problems(result, spec, cell, where, threshold, max_count)
    return p


def grid_problems(result: IndicatorResult, spec: IndicatorSpec) -> list[Problem]:
    """Strata of the spec's full grid that ``result`` lacks. An intake rule (the merge can
    pool a partial grid): a node that sends only non-empty strata tells which hold cases."""
    have = {tuple(c.stratum.get(s) for s in spec.cell_strata) for c in result.cells}
    missing = [key for key in spec_grid(spec) if key not in have]
    if not missing:
        return []
    shown = ", ".join("/".join(k) or "(all)" for k in missing[:5])
    more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
    return [Problem("incomplete_grid", f"indicator {spec.id}: {len(missing)} stratum cell(s) "
                    f"of the grid are missing: {shown}{more}; send every stratum, empty ones "
                    "as empty cells")]


def quality_problems(q: DataQuality, threshold: int, max_count: int) -> list[Problem]:
    p: list[Problem] = []
    counts = {"rows_read": q.rows_read, "rows_accepted": q.rows_accepted,
              **{f"rejected {k}": v for k, v in q.rejected_by_reason.items()}}
    for name, n in counts.items():
        if n is not None and n > max_count:
            p.append(Problem("count_out_of_range", f"data quality: {name} = {n} exceeds the "
                             f"plausible maximum {max_count}"))
        if is_small(n, threshold):
            p.append(Problem("disclosure_violation", f"data quality: {name} = {n} is a count "
                             f"from 1 to {threshold - 1}"))
    read, accepted = q.rows_read, q.rows_accepted
    if read is not None and accepted is not None:
        if accepted > read:
            p.append(Problem("inconsistent_quality",
                             f"data quality: rows_accepted {accepted} > rows_read {read}"))
        else:
            # A withheld rejection count is at least 1.
            least = sum(1 if v is None else v for v in q.rejected_by_reason.values())
            if least > read - accepted:
                p.append(Problem("inconsistent_quality", f"data quality: at least {least} "
                                 f"rejected rows, but read − accepted = {read - accepted}"))
    p += _recoverable(q, threshold)
    return p


def _recoverable(q: DataQuality, threshold: int) -> list[Problem]:
    """Withheld data-quality counts that the released ones give away by subtraction.

    Rows read = rows accepted + Σ rejected by reason. With rows read released, the withheld
    counts among the others add up to a known total: one withheld count is that total
    exactly, and several that add up to less than the threshold are a small count too."""
    if q.rows_read is None:
        return []
    hidden = [k for k, v in q.rejected_by_reason.items() if v is None]
    hidden += ["rows_accepted"] if q.rows_accepted is None else []
    if not hidden:
        return []
    total = q.rows_read - (q.rows_accepted or 0) - sum(
        v for v in q.rejected_by_reason.values() if v is not None)
    if total < 1:
        return []  # inconsistent, reported above: withheld counts are at least 1 each
    if len(hidden) == 1:
        return [Problem("disclosure_violation", f"data quality: the withheld {hidden[0]} is "
                        f"recoverable as rows_read minus the released counts ({total})")]
    if is_small(total, threshold):
        return [Problem("disclosure_violation", f"data quality: the withheld counts "
                        f"{', '.join(hidden)} add up to {total}, a count from 1 to "
                        f"{threshold - 1} recoverable by subtraction")]
    return []


def _window_problems(doc: Document, policy: Policy, at: datetime) -> list[Problem]:
    p: list[Problem] = []
    last_year = policy.last_year or at.year
    year = doc.period.year
    if not policy.first_year <= year <= last_year:
        p.append(Problem("year_out_of_window", f"year {year} is outside the years this hub "
                         f"accepts, {policy.first_year}–{last_year}"))
    try:
        created = doc.created_at.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 has no UTC equivalent
        return p + [Problem("created_at_out_of_window", f"created_at {doc.created_at} lies "
                            "outside the representable time range")]
    if created > at + policy.max_clock_skew:
        p.append(Problem("created_at_out_of_window", f"created_at {created.isoformat()} is "
                         f"in the future (hub time {at.isoformat()}); check the node's clock"))
    elif created < at - policy.max_age:
        p.append(Problem("created_at_out_of_window", f"created_at {created.isoformat()} is "
                         f"older than {policy.max_age.days} days"))
    elif created.year < year:
        p.append(Problem("created_at_out_of_window", f"created_at {created.isoformat()} lies "
                         f"before the period {year} began"))
    return p


def check_document(doc: Document, specs: Iterable[IndicatorSpec], catalogue: str,
                   policy: Policy, at: datetime) -> list[Problem]:
    """Every problem of a submission or withdrawal against the catalogue and the policy,
    judged at time ``at`` (the hub's receiving time)."""
    by_id: Mapping[str, IndicatorSpec] = {s.id: s for s in specs}
    p = _window_problems(doc, policy, at)
    if not isinstance(doc, Submission):
        if doc.catalogue != catalogue:
            p.append(Problem("spec_mismatch", f"the withdrawal names catalogue "
                             f"{doc.catalogue[:12]}…, the hub's is {catalogue[:12]}…"))
        return p
    if doc.disclosure_threshold < policy.min_disclosure_threshold:
        p.append(Problem("threshold_too_low", f"disclosure threshold {doc.disclosure_threshold}"
                         f" is below the federation minimum {policy.min_disclosure_threshold};"
                         " set disclosure_threshold in node.toml and run the node again"))
    # Small counts are judged against the stricter of the two thresholds.
    k = max(doc.disclosure_threshold, policy.min_disclosure_threshold)
    if not doc.indicators:
        p.append(Problem("empty_submission", "the submission holds no indicator"))
    seen: set[str] = set()
    linked: list[IndicatorResult] = []  # conforming results, judged across margins
    for result in doc.indicators:
        if result.spec_id in seen:
            p.append(Problem("duplicate_indicator", f"indicator {result.spec_id} appears "
                             "more than once"))
            continue
        seen.add(result.spec_id)
        spec = by_id.get(result.spec_id)
        if spec is None:
            p.append(Problem("unknown_spec", f"indicator {result.spec_id!r} is not in the "
                             f"catalogue; known: {', '.join(sorted(by_id))}"))
            continue
        found = conforms(result, spec, threshold=k, max_count=policy.max_count)
        p += found
        if not found:
            linked.append(result)
        if not any(x.code in ("spec_mismatch", "wrong_shape") for x in found):
            p += grid_problems(result, spec)
    if doc.indicators and not any(x.code == "spec_mismatch" for x in p):
        missing = sorted(set(by_id) - seen)
        if missing:
            p.append(Problem("missing_indicator", f"the catalogue's indicator(s) {missing} "
                             "are absent; a node computes the whole catalogue"))
        elif doc.catalogue != catalogue:
            p.append(Problem("spec_mismatch", f"catalogue {doc.catalogue[:12]}… differs from "
                             f"the hub's {catalogue[:12]}…"))
    p += margin_problems(linked, by_id, k)
    p += quality_problems(doc.data_quality, k, policy.max_count)
    return p
