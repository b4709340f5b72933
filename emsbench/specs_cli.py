"""``emsbench specs``: tools for the working groups who write indicator specs.

* ``new ID``: write ``ID.yaml`` from a commented template that validates and passes its
  test as written (a runnable example to edit);
* ``validate [PATH ...]``: both validation stages over every file, then the authoring
  checks below; every problem of every file in one run, as ``FILE:LINE: message``;
* ``test [ID ...]``: run the embedded test cases, with a per-cell diff on failure;
* ``run ID --data PATH``: compute one spec on local common-model data (no disclosure
  control: the output stays on this machine);
* ``docs --out DIR``: the catalogue as static HTML (``emsbench.spec_docs``).

``validate`` checks more than loading a catalogue does (``emsbench.specs``, which node and
hub use, and which stays the one definition of a valid spec): test-row values must fit
their column's type and code set and expected strata must be values of their columns
(otherwise ``specs test`` could not run the case: problems, exit 2); and every value of
every stratum should appear in some expected cell, and the template's TODOs should be gone
(warnings: a spec may have a reason, e.g. a value the population excludes; ``--strict``
makes warnings fail too); those checks live in ``emsbench.spec_checks``. The functions here
return data; the ``_command`` functions at the end only print it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emsbench.cli import CommandError
from emsbench.spec_checks import located, plural, validate_paths

if TYPE_CHECKING:
    from emsbench.kinds import Context
    from emsbench.specs import IndicatorSpec, SpecTestCase
    from emsbench.wire import IndicatorResult
    from node.ingest import IngestReport

LOCAL_ONLY = ("LOCAL RESULT, NO DISCLOSURE CONTROL: small counts are shown as they are. "
              "Nothing leaves this machine; do not pass these cells on.")


# --- new ----------------------------------------------------------------------------


def new_spec(spec_id: str, directory: Path, kind: str = "share") -> Path:
    """Write ``directory/ID.yaml`` from the commented template of ``kind``."""
    from emsbench.specs import ID_PATTERN

    if not re.match(ID_PATTERN, spec_id):
        raise CommandError(f"{spec_id!r} is not a valid indicator id: capital letters and "
                           "digits, in parts joined by '-' (e.g. RESP-P90)")
    from emsbench.kinds import KINDS

    if kind not in KINDS:
        raise CommandError(f"unknown spec type {kind!r}: {' or '.join(KINDS)}")
    path = directory / f"{spec_id}.yaml"
    if path.exists():
        raise CommandError(f"{path} exists; edit it, or choose another id")
    template = resources.files("emsbench") / "templates" / f"spec-{kind}.yaml"
    text = template.read_text(encoding="utf-8").replace("__ID__", spec_id)
    directory.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as fh:
        fh.write(text)
    return path


# --- validate -----------------------------------------------------------------------


# --- test ---------------------------------------------------------------------------


def _stratum_label(spec: IndicatorSpec, key: tuple[str, ...]) -> str:
    return ", ".join(f"{s}={v}" for s, v in zip(spec.cell_strata, key, strict=True)) or "(all)"


def cell_diff(spec: IndicatorSpec, want: list[dict[str, Any]], got: list[dict[str, Any]]
              ) -> list[str]:
    """Readable differences between expected and computed cells, per stratum."""
    from emsbench.kinds import kind_of

    kind = kind_of(spec)

    def key(c: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(c["stratum"].get(s, "")) for s in spec.cell_strata)

    got_by, want_by = {key(c): c for c in got}, {key(c): c for c in want}
    out: list[str] = []
    for k in sorted(set(got_by) | set(want_by)):
        g, w, label = got_by.get(k), want_by.get(k), _stratum_label(spec, k)
        if g == w:
            continue
        if g is None:
            assert w is not None
            out.append(f"{label}: expected {kind.describe(spec, w)}; got no cell (no row of "
                       "the population falls in it)")
        elif w is None:
            out.append(f"{label}: expected no cell; got {kind.describe(spec, g)}")
        else:
            out += kind.differences(spec, label, w, g)
    return out


def case_result(spec: IndicatorSpec, case: SpecTestCase) -> list[str]:
    """The differences of one test case (empty: it passes); an error is one line."""
    import pyarrow as pa

    from emsbench.kinds.rate import PopulationMissing
    from emsbench.sandbox import SandboxError
    from emsbench.spec_cases import case_cells, rows_to_table

    try:
        table = rows_to_table(case.rows, derived=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        return [f"the rows do not fit the common model ({exc}); run 'emsbench specs "
                "validate' for the row and column"]
    try:
        got, want = case_cells(spec, case, table)
    except (SandboxError, PopulationMissing) as exc:
        return [str(exc)]
    return cell_diff(spec, want, got)


def run_tests(specs: list[IndicatorSpec]
              ) -> list[tuple[IndicatorSpec, SpecTestCase, list[str]]]:
    """Every case of every spec with its differences."""
    return [(s, c, case_result(s, c)) for s in specs for c in s.tests]


# --- run ----------------------------------------------------------------------------


def data_years(path: Path, fmt: str = "common") -> list[int]:
    """The years of ``call_received`` in a Parquet or CSV mission file, or in the input of
    format ``fmt`` (read through its adapter, ``node.adapters``)."""
    import tempfile

    import duckdb

    p = str(path).replace("'", "''")
    suffix = path.suffix.lower()
    if fmt == "common" and suffix not in (".parquet", ".csv"):
        raise CommandError(f"{path}: unsupported input format {suffix!r}; use .parquet or .csv")
    con = duckdb.connect(":memory:")
    try:
        with tempfile.TemporaryDirectory(prefix="emsbench-specs-years-") as tmp:
            if fmt == "common":
                source = (f"read_parquet('{p}')" if suffix == ".parquet"
                          else f"read_csv('{p}', header = true, all_varchar = true)")
            else:
                from node.adapters import adapter
                from node.source import InputError

                module = adapter(fmt)
                assert module is not None
                try:
                    source = module.source(con, path, fmt=fmt, encoding=None,
                                           workdir=Path(tmp)).sql
                except InputError as exc:
                    raise CommandError(str(exc)) from exc
            rows = con.execute(f"SELECT DISTINCT year(TRY_CAST(call_received AS TIMESTAMP)) "
                               f"AS y FROM {source} WHERE y IS NOT NULL ORDER BY y").fetchall()
    except duckdb.Error as exc:
        raise CommandError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
    return [int(r[0]) for r in rows]  # type: ignore[call-overload]


def run_context(year: int, country: str | None = None,
                population: Path | None = None) -> Context:
    """What ``specs run`` knows besides the rows: with ``country`` or ``population``, the
    official population (a rate's denominator) of that country and ``year``, from the file
    ``population`` (the reference format; its one country of ``year`` when ``country`` is
    not given) or else from the shipped reference data."""
    from emsbench.kinds import Context
    from emsbench.reference import ReferenceDataError, load_population, population_by

    if country is None and population is None:
        return Context(year=year)
    try:
        rows = load_population(population) if population is not None else None
    except ReferenceDataError as exc:
        raise CommandError(str(exc)) from exc
    if country is None:
        found = sorted({p.country for p in rows or () if p.year == year})
        if len(found) != 1:
            raise CommandError(f"{population} holds the population of "
                               f"{', '.join(found) or 'no country'} for {year}: say which "
                               "with --country")
        country = found[0]
    try:
        persons = population_by(country, year, rows=rows)
    except KeyError as exc:
        source = str(population) if population is not None else "the shipped reference data"
        raise CommandError(f"{source}: {exc.args[0]}; give the population with --population "
                           "FILE") from exc
    return Context(country=country, year=year, population=persons)


def run_spec(spec: IndicatorSpec, data: Path, year: int, fmt: str = "common",
             ctx: Context | None = None) -> tuple[IngestReport, IndicatorResult]:
    """Compute ``spec`` on the valid rows of ``data`` (input format ``fmt``) for ``year``,
    in a sandbox, exactly as a node does before disclosure control; ``ctx``: the country,
    year and population (a rate needs it, ``run_context``)."""
    import tempfile

    from emsbench.engine import compute
    from node.ingest import open_missions

    with tempfile.TemporaryDirectory(prefix="emsbench-specs-run-") as tmp:
        con, report = open_missions(data, year, Path(tmp), fmt=fmt)
        try:
            return report, compute(con, spec, ctx=ctx)
        finally:
            con.close()


def cell_value(spec: IndicatorSpec, cell: Any) -> float | None:
    """The figure of a cell in the spec's unit (a share scaled, a distribution's quantile
    read off its bins), as the spec's kind computes it."""
    from emsbench.kinds import kind_of

    return kind_of(spec).local_value(spec, cell)


def run_lines(spec: IndicatorSpec, data: Path, year: int, report: IngestReport,
              result: IndicatorResult) -> list[str]:
    """The text output of ``specs run``."""
    from emsbench.figure import spec_decimals
    from emsbench.kinds import kind_of

    rejected = report.rows_read - report.rows_accepted
    reasons = ", ".join(f"{r} {n}" for r, n in report.rejected_by_reason.items())
    out = [LOCAL_ONLY, "",
           f"{spec.id} {spec.version}: {spec.title}",
           f"definition sha256 {spec.sha256}",
           f"data {data}, year {year}: {report.rows_read} rows read, "
           f"{report.rows_accepted} accepted, {rejected} rejected"
           + (f" ({reasons})" if reasons else ""), ""]
    labels = [", ".join(f"{k}={v}" for k, v in c.stratum.items()) or "(all)"
              for c in result.cells]
    width = max([len("stratum"), *map(len, labels)])
    kind = kind_of(spec)
    heads, value_head = kind.local_columns(spec)
    out.append(f"{'stratum':<{width}}" + "".join(f"  {h:>11}" for h in heads)
               + f"  {value_head:>16}")
    for label, c in zip(labels, result.cells, strict=True):
        v = cell_value(spec, c)
        out.append(f"{label:<{width}}" + "".join(f"  {'-' if n is None else n:>11}"
                                                  for n in kind.local_counts(spec, c))
                   + f"  {'-' if v is None else f'{v:.{spec_decimals(spec)}f}':>16}")
    if not result.cells:
        out.append("(no row of the data falls in the population)")
    return out


def run_json(spec: IndicatorSpec, data: Path, year: int, report: IngestReport,
             result: IndicatorResult) -> dict[str, Any]:
    return {"local_only": True, "disclosure_control": "none", "notice": LOCAL_ONLY,
            "data": str(data), "year": year, "spec_title": spec.title, "unit": spec.unit,
            "ingest": asdict(report), "result": result.model_dump(mode="json"),
            "values": [cell_value(spec, c) for c in result.cells]}


# --- commands -----------------------------------------------------------------------


def load_or_explain(directory: str | None, ids: list[str] | None) -> list[IndicatorSpec]:
    """The specs, or every problem printed with its line and a one-line CommandError."""
    from emsbench.specs import SpecError, load_specs

    try:
        return load_specs(Path(directory) if directory else None, only=ids)
    except SpecError as exc:
        for p in exc.located:
            print(located(p), file=sys.stderr)
        where = f" {directory}" if directory else ""
        raise CommandError(f"{plural(len(exc.problems), 'problem')} in the specs; "
                           f"'emsbench specs validate{where}' shows each with its line") from exc


def _new(args: argparse.Namespace) -> int:
    path = new_spec(args.id, Path(args.dir), args.type)
    print(f"wrote {path}: edit it, then run\n"
          f"  emsbench specs validate {path}\n"
          f"  emsbench specs test {args.id} --dir {args.dir}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from emsbench.specs import default_spec_dir

    paths = [Path(p) for p in args.paths] or [default_spec_dir()]
    report = validate_paths(paths)
    for p in report.problems:
        print(located(p))
    for p in report.warnings:
        print(located(p, warning=True))
    print(report.summary(args.strict))
    failing = report.problems or (args.strict and report.warnings)
    return 2 if failing else 0


def _test(args: argparse.Namespace) -> int:
    results = run_tests(load_or_explain(args.dir, args.ids or None))
    failed = 0
    for spec, case, diff in results:
        print(f"{'FAIL' if diff else 'ok':<4}  {spec.id}: {case.name}")
        for line in diff:
            print(f"      {line}")
        failed += bool(diff)
    print(f"{failed} of {plural(len(results), 'case')} failed" if failed
          else f"{plural(len(results), 'case')} passed")
    return 2 if failed else 0


def _run(args: argparse.Namespace) -> int:
    from emsbench.kinds.rate import PopulationMissing
    from emsbench.sandbox import SandboxError
    from node.ingest import InputError

    [spec] = load_or_explain(args.dir, [args.id])
    data = Path(args.data)
    # a common-model input is one file; other formats may be a folder of tables (NEMSIS)
    if not (data.is_file() if args.format == "common" else data.exists()):
        raise CommandError(f"{data} does not exist")
    year = args.year
    if year is None:
        years = data_years(data, args.format)
        if len(years) != 1:
            found = ", ".join(map(str, years)) or "none"
            raise CommandError(f"cannot tell the year of {data} (years in call_received: "
                               f"{found}); give it with --year")
        year = years[0]
    population = Path(args.population) if args.population else None
    ctx = run_context(year, args.country, population)
    try:
        report, result = run_spec(spec, data, year, args.format, ctx)
    except PopulationMissing as exc:
        raise CommandError(f"{spec.id} is a rate per population: give whose official "
                           "population divides it with --country CC (the shipped reference "
                           "data) or --population FILE (reference format: country,year,"
                           "region,age_band,sex,persons,source)") from exc
    except (InputError, SandboxError) as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(run_json(spec, data, year, report, result), indent=2,
                         ensure_ascii=False))
    else:
        print("\n".join(run_lines(spec, data, year, report, result)))
    return 0


def _docs(args: argparse.Namespace) -> int:
    from emsbench.spec_docs import write_docs

    pages = write_docs(load_or_explain(args.dir, None), Path(args.out))
    print(f"wrote {plural(len(pages) - 1, 'indicator page')} and {Path(args.out) / 'index.html'}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("specs", help="write, check, test, run and document indicator specs")
    ssub = p.add_subparsers(dest="specs_command", required=True, metavar="ACTION")
    dir_help = "folder of spec files (default: the packaged indicator_specs)"

    new = ssub.add_parser("new", help="write ID.yaml from a commented, runnable template")
    new.add_argument("id", metavar="ID", help="indicator id, e.g. RESP-P90")
    new.add_argument("--dir", default="indicator_specs", help="folder to write it in")
    new.add_argument("--type", choices=("share", "distribution", "rate", "ratio"),
                     default="share")
    new.set_defaults(func=_new)

    val = ssub.add_parser("validate", help="every problem of every spec file, with its line")
    val.add_argument("paths", nargs="*", metavar="PATH",
                     help="spec folders or files (default: the packaged indicator_specs)")
    val.add_argument("--strict", action="store_true", help="warnings fail too")
    val.set_defaults(func=_validate)

    test = ssub.add_parser("test", help="run the specs' embedded test cases")
    test.add_argument("ids", nargs="*", metavar="ID", help="only these specs")
    test.add_argument("--dir", help=dir_help)
    test.set_defaults(func=_test)

    run = ssub.add_parser("run", help="compute one spec on local data (nothing is sent)")
    run.add_argument("id", metavar="ID")
    run.add_argument("--data", required=True,
                     help="common-model missions (.parquet or .csv), or the input of --format")
    run.add_argument("--year", type=int, help="reporting year (default: the data's one year)")
    run.add_argument("--json", action="store_true", help="print JSON")
    from node.adapters import FORMATS

    run.add_argument("--format", choices=tuple(FORMATS), default="common",
                     help="input format of --data (nemsis: a folder of NEMSIS tables)")
    run.add_argument("--country", metavar="CC",
                     help="rates: whose official population divides them (ISO code, e.g. "
                          "NO); the shipped reference data unless --population is given")
    run.add_argument("--population", metavar="FILE",
                     help="rates: the official population as a CSV in the reference format "
                          "(country,year,region,age_band,sex,persons,source), e.g. a node's "
                          "own figures or a scaled one for synthetic data")
    run.add_argument("--dir", help=dir_help)
    run.set_defaults(func=_run)

    docs = ssub.add_parser("docs", help="the catalogue as static HTML pages")
    docs.add_argument("--out", required=True, help="folder to write the pages in")
    docs.add_argument("--dir", help=dir_help)
    docs.set_defaults(func=_docs)

    from emsbench.release_cli import add_commands

    add_commands(ssub, dir_help)
