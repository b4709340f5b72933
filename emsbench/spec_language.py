"""The closed language of spec expressions: what a working group may write, and nothing else.

A spec gives SQL *expressions* (``population``, ``numerator``, ``measure``) that the engine
puts into its own aggregate query. DuckDB's own parser (``json_serialize_sql``) turns each
expression into a syntax tree, and every node of that tree must be on the allow-list below;
anything else is refused at validation, naming the construct. What is allowed is what an
indicator definition needs and cannot single out a row or reach outside the row:

* columns of the common model (never ``mission_id``, the one identifier), literals;
* arithmetic, comparison, ``AND``/``OR``/``NOT``, ``BETWEEN``, ``IN`` lists, ``CASE``,
  ``coalesce``, ``IS [NOT] NULL``;
* ``LIKE`` and prefix tests, only of a code column against a literal;
* casts to numbers, booleans, dates and times (never to text);
* a short list of scalar date/time and numeric functions (``ALLOWED_FUNCTIONS``).

Refused, among others: subqueries (a scalar subquery broadcasts one patient's value to
every row), table functions and ``query(...)``, settings and catalogue functions
(``current_setting``, ``duckdb_settings``...), aggregate and window functions, parameters,
``*``, lambdas, comments and statement separators. Strata are checked elsewhere
(``specs.stratum_values``): only closed code-set columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import duckdb

from emsbench import model

IDENTIFIER_COLUMNS = frozenset({"mission_id"})
# Operators come as functions named by their symbol.
_OPERATORS = frozenset({"+", "-", "*", "/", "//", "%"})
_PATTERN_TESTS = frozenset({"~~", "!~~", "~~*", "!~~*", "starts_with", "prefix"})
ALLOWED_FUNCTIONS = frozenset({
    # date and time
    "date_diff", "datediff", "date_sub", "date_part", "datepart", "date_trunc", "year",
    "month", "day", "hour", "minute", "dayofweek", "isodow", "epoch",
    "to_seconds", "to_minutes", "to_hours", "to_days",  # INTERVAL literals
    # numbers
    "abs", "round", "floor", "ceil", "ceiling", "trunc", "least", "greatest", "nullif",
}) | _OPERATORS | _PATTERN_TESTS
_OPERATOR_TYPES = frozenset({"OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL",
                             "COMPARE_IN", "COMPARE_NOT_IN", "OPERATOR_COALESCE"})
_CAST_TYPES = frozenset({"BOOLEAN", "BOOL", "INTEGER", "INT", "BIGINT", "SMALLINT", "DOUBLE",
                         "FLOAT", "REAL", "DECIMAL", "NUMERIC", "DATE", "TIMESTAMP",
                         "INTERVAL"})
_CLASSES = frozenset({"COLUMN_REF", "CONSTANT", "CONJUNCTION", "OPERATOR", "COMPARISON",
                      "BETWEEN", "CASE", "CAST", "FUNCTION"})
# What these look like to a spec author, for the messages.
_NAMES = {"SUBQUERY": "a subquery", "WINDOW": "a window or aggregate function",
          "STAR": "'*' or COLUMNS(...)", "PARAMETER": "a query parameter",
          "LAMBDA": "a lambda", "COLLATE": "COLLATE", "TYPE": "a type"}


@lru_cache(maxsize=1)
def _parser() -> duckdb.DuckDBPyConnection:
    # A connection that holds no data and only parses: json_serialize_sql never runs the
    # expression.
    return duckdb.connect(":memory:")


def _tree(expr: str) -> dict[str, Any] | str:
    """The syntax tree of ``SELECT (expr)``, or why it is not one expression."""
    # Newlines around the expression: a trailing '--' comment cannot swallow the ')'.
    sql = f"SELECT (\n{expr}\n)"
    cur = _parser().cursor()
    try:
        text = cur.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    finally:
        cur.close()
    doc = json.loads(text[0]) if text else {}
    if doc.get("error"):
        return f"does not parse: {doc.get('error_message', 'syntax error')}"
    statements = doc.get("statements", [])
    if len(statements) != 1:
        return "must be one SQL expression, not several statements"
    node = statements[0].get("node", {})
    extra = [k for k in ("where_clause", "having", "qualify", "sample") if node.get(k)]
    if (node.get("type") != "SELECT_NODE" or node.get("from_table", {}).get("type") != "EMPTY"
            or extra or node.get("group_expressions") or node.get("modifiers")
            or node.get("cte_map", {}).get("map") or len(node.get("select_list", [])) != 1):
        return ("must be one expression over the row; FROM, WHERE, GROUP BY, WITH and "
                "other clauses are not part of the spec language")
    tree: dict[str, Any] = node["select_list"][0]
    return tree


def _children(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every expression directly below ``node``, wherever the tree keeps it."""
    for key, value in node.items():
        if key == "type_expr":  # a CAST's target type: checked by the CAST rule
            continue
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if "class" in item:
                    yield item
                else:
                    stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)


def _column(node: dict[str, Any]) -> str | None:
    names = node.get("column_names", [])
    return names[0] if node.get("class") == "COLUMN_REF" and len(names) == 1 else None


def _check(node: dict[str, Any], columns: set[str]) -> Iterator[str]:
    cls, typ = node.get("class", "?"), node.get("type", "?")
    if cls not in _CLASSES:
        yield f"{_NAMES.get(cls, cls.lower())} is not allowed"
        return
    if cls == "COLUMN_REF":
        names = node.get("column_names", [])
        name = ".".join(names)
        # DuckDB folds unquoted names: CA_ARREST is ca_arrest (and so is "CA_ARREST").
        if len(names) != 1 or names[0].lower() not in columns:
            yield f"{name!r} is not a column of the common model (write the bare column name)"
        elif names[0].lower() in IDENTIFIER_COLUMNS:
            yield f"{name!r} is an identifier and may not be used in a spec"
        return
    if cls == "OPERATOR" and typ not in _OPERATOR_TYPES:
        yield f"the operator {typ} is not allowed"
        return
    if cls == "CAST":
        target = str(node.get("type_expr", {}).get("type_name", "?")).upper()
        if target not in _CAST_TYPES:
            yield f"a cast to {target} is not allowed (casts go to numbers, booleans or times)"
            return
    if cls == "FUNCTION":
        name = str(node.get("function_name", "?")).lower()
        if name not in ALLOWED_FUNCTIONS:
            yield f"the function {name}() is not allowed"
            return
        if (node.get("schema") or node.get("catalog") or node.get("filter") is not None
                or node.get("distinct") or node.get("order_bys", {}).get("orders")):
            yield f"{name}() with a schema, FILTER, DISTINCT or ORDER BY is not allowed"
            return
        if name in _PATTERN_TESTS:
            args = [a.get("expression", {}) for a in node.get("arguments", [])]
            column = _column(args[0]) if args else None
            if (len(args) != 2 or column is None or model.duckdb_types().get(column) != "VARCHAR"
                    or args[1].get("class") != "CONSTANT"):
                yield ("LIKE and prefix tests compare a code column with a literal pattern "
                       "only")
                return
    for child in _children(node):
        yield from _check(child, columns)


def expression_problems(expr: str, columns: set[str] | None = None) -> list[str]:
    """Why ``expr`` is not in the spec language (empty: it is); ``columns``: the columns it
    may name (default: the common model's)."""
    if ";" in expr or "--" in expr or "/*" in expr:
        return ["must be one SQL expression: ';' and comments are not allowed"]
    tree = _tree(expr)
    if isinstance(tree, str):
        return [tree]
    allowed = set(model.columns()) if columns is None else columns
    return list(dict.fromkeys(_check(tree, allowed)))  # unique, in order


# Tokens of an expression, for its normal form: literals and quoted names kept verbatim,
# unquoted words lower-cased (SQL keywords and names are case-insensitive).
_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+|"""
                    r"""[A-Za-z_][A-Za-z0-9_]*|<=|>=|<>|!=|::|\|\||\S""")


def normal_form(expr: str) -> str:
    """``expr`` with layout and letter case of keywords and names normalised, so a spec's
    fingerprint does not change when its SQL is re-wrapped or re-cased. Done on tokens, not
    on DuckDB's syntax tree, so the fingerprint does not depend on the DuckDB version."""
    out = []
    for token in _TOKEN.findall(expr):
        out.append(token.lower() if token[0].isalpha() or token[0] == "_" else token)
    return " ".join(out)
