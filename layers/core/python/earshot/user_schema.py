"""JSON Schemas that callers submit (extract-audio's ``schema``): bounded, and closed over themselves.

A JSON-schema library resolves ``$ref`` by whatever URI it names, including ``file://`` and internal
``http://`` hosts, unless told otherwise. Here every reference is resolved by the ``referencing``
library against a registry that holds the submitted document only (plus the published metaschemas,
which ship inside the library); its ``retrieve`` refuses everything, so no file is read and no host is
contacted, whatever the schema says. References that are not fragments of the document (``#/...`` or
``#anchor``) are refused up front, and every reference must resolve before any money is taken.

References also multiply work: a 2 KB schema whose ``$defs`` each refer twice to the next (``d0`` to ``d1``
twice, ``d1`` to ``d2`` twice...) is validated as 2^n subschemas, hours of CPU for n = 30. So the schema's
size *with its references expanded* (each cycle counted once) is bounded too, before anything is validated.

Regular expressions multiply work as well: jsonschema matches ``pattern`` and ``patternProperties`` with Python's
backtracking ``re``, where ``^(a+)+$`` against forty ``a`` and a ``!`` takes minutes. Here they are matched by RE2
(google-re2), whose time is linear in the string; a pattern RE2 cannot compile (backreferences, lookarounds) is
refused at submission, and so is ``unevaluatedProperties`` alongside ``patternProperties`` (jsonschema matches
those inside a helper no keyword override reaches). No format checker is attached, so ``format: regex`` compiles
nothing either.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from earshot.errors import InvalidRequestError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator
    from referencing import Registry

MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32
# Subschemas a validation may walk once every reference is expanded (a recursive reference counts once).
MAX_EXPANDED_SUBSCHEMAS = 20_000
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
# Probes that catch references that loop without consuming the instance ({"$ref": "#"}, say).
_PROBES: tuple[Any, ...] = (None, {}, [], "", 0, True)
# Keywords whose values are instance data, not schemas: a "pattern" key inside them is not a regular expression.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


def _refuse(uri: str) -> Any:
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class mypy does not see through


def closed_registry() -> Registry[Any]:
    """A registry that retrieves nothing: only what it is given (and the bundled metaschemas) resolves."""
    from referencing import Registry

    return Registry(retrieve=_refuse)  # type: ignore[call-arg]


def _walk(schema: Any) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """Yield ``(keyword, reference, base URI, node)`` for each reference; refuse documents nested too deep."""
    stack: list[tuple[Any, str, int]] = [(schema, "", 1)]
    while stack:
        node, base, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise InvalidRequestError(f"'schema' is nested more than {MAX_SCHEMA_DEPTH} levels deep", param="schema")
        if isinstance(node, dict):
            ident = node.get("$id")
            if isinstance(ident, str):
                base = urljoin(base, ident)
            for keyword in _REF_KEYWORDS:
                value = node.get(keyword)
                if isinstance(value, str):
                    yield keyword, value, base, node
            stack.extend((value, base, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, base, depth + 1) for value in node)


def _expanded_size(schema: Any, targets: dict[int, list[Any]]) -> int:
    """Objects and arrays in ``schema`` with every reference replaced by its target (a cycle counted once).

    Post-order over the graph, memoised, so it costs one visit per node however large the expansion; counts
    are capped just past the limit.
    """
    cap = MAX_EXPANDED_SUBSCHEMAS + 1

    def children(node: Any) -> list[Any]:
        values = list(node.values()) if isinstance(node, dict) else list(node)
        return [value for value in values + targets.get(id(node), []) if isinstance(value, dict | list)]

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(schema, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = min(cap, 1 + sum(sizes.get(id(child), 1) for child in children(node)))
            continue
        if key in sizes or key in on_path:
            continue
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children(node) if id(child) not in sizes and id(child) not in on_path)
    return sizes.get(id(schema), 1)


def _regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (cached by the library); raises ``re2.error`` if RE2 cannot run it."""
    import re2  # google-re2 ships no type information (pyproject: mypy overrides)

    options = re2.Options()
    options.log_errors = False  # a refused pattern is the caller's 400, not a line on stderr
    return re2.compile(pattern, options)


def _matches(pattern: str, text: str) -> bool:
    return _regex(pattern).search(text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """jsonschema's ``additionalProperties``, with ``patternProperties`` matched by RE2."""
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = {
        key for key in instance if key not in properties and not any(_matches(pattern, key) for pattern in patterns)
    }
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        listed = ", ".join(repr(each) for each in sorted(extras, key=str))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            yield ValidationError(
                f"{listed} {verb} not match any of the regexes: {', '.join(map(repr, sorted(patterns)))}"
            )
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({listed} {verb} unexpected)")


_BOUNDED: dict[type, type] = {}


def bounded_validator_class(cls: type) -> type:
    """``cls`` with its regular-expression keywords matched by RE2 (linear time) instead of Python's ``re``."""
    if cls not in _BOUNDED:
        import jsonschema

        overrides = {"pattern": _pattern, "patternProperties": _pattern_properties}
        overrides["additionalProperties"] = _additional_properties
        keywords = {name: function for name, function in overrides.items() if name in cls.VALIDATORS}  # type: ignore[attr-defined]
        _BOUNDED[cls] = jsonschema.validators.extend(cls, validators=keywords)  # type: ignore[no-untyped-call]
    return _BOUNDED[cls]


def _regex_keywords(schema: Any) -> Iterator[tuple[str, str]]:
    """Yield ``(keyword, pattern)`` for each ``pattern`` and ``patternProperties`` key; also ``("unevaluated", "")``
    once per ``unevaluatedProperties``. Data keywords (``const``, ``enum``...) are not schemas and are skipped."""
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield "pattern", node["pattern"]
            if isinstance(node.get("patternProperties"), dict):
                yield from (("patternProperties", key) for key in node["patternProperties"])
            if "unevaluatedProperties" in node:
                yield "unevaluatedProperties", ""
            stack.extend(value for key, value in node.items() if key not in _DATA_KEYWORDS)
        elif isinstance(node, list):
            stack.extend(node)


def _check_patterns(schema: dict[str, Any]) -> None:
    """Refuse any regular expression RE2 cannot run, naming it, before anything is charged."""
    import re2  # google-re2 ships no type information (pyproject: mypy overrides)

    found = list(_regex_keywords(schema))
    if any(k == "patternProperties" for k, _ in found) and any(k == "unevaluatedProperties" for k, _ in found):
        raise InvalidRequestError(
            "'schema' uses unevaluatedProperties together with patternProperties, which is not supported: matching"
            " patterns there could take unbounded time; use additionalProperties instead",
            param="schema",
        )
    for keyword, pattern in found:
        if keyword == "unevaluatedProperties":
            continue
        try:
            _regex(pattern)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise InvalidRequestError(
                f"'schema' {keyword} {pattern[:100]!r} is not supported: patterns are matched by RE2 in linear time,"
                f" which has no backreferences, lookahead or lookbehind (RE2: {reason})",
                param="schema",
            ) from exc


@dataclass(frozen=True)
class UserSchema:
    """A checked schema and its validator (closed registry; nothing outside the document resolves)."""

    schema: dict[str, Any]
    validator: Validator

    def errors(self, value: Any) -> list[str]:
        """What is wrong with ``value``; a schema that loops on this value is itself reported, not raised."""
        from jsonschema.exceptions import _RefResolutionError  # type: ignore[attr-defined]  # private, not in the stubs
        from referencing.exceptions import Unresolvable

        try:
            return [
                f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in self.validator.iter_errors(value)
            ]
        except RecursionError:
            return ["the schema refers to itself without end for this value"]
        except (Unresolvable, _RefResolutionError) as exc:  # checked up front; kept as a last guard
            return [f"a reference in the schema does not resolve: {exc}"]


def check_user_schema(schema: Any) -> UserSchema:
    """Bound ``schema`` (size, depth), refuse references outside it, and build its closed validator.

    Every failure is a 400 ``invalid_request`` naming ``schema``; nothing is fetched or read.
    """
    if not isinstance(schema, dict):
        raise InvalidRequestError("'schema' must be a JSON object", param="schema")
    references = list(_walk(schema))  # depth first: json.dumps below recurses
    if len(json.dumps(schema, separators=(",", ":"))) > MAX_SCHEMA_BYTES:
        raise InvalidRequestError(f"'schema' is larger than {MAX_SCHEMA_BYTES // 1024} KB", param="schema")
    for keyword, reference, _base, _node in references:
        if not reference.startswith("#"):
            raise InvalidRequestError(
                f"'schema' {keyword} {reference[:100]!r} points outside the schema: only references within it"
                " ('#/$defs/name' or '#anchor') are allowed; remote and file references are refused",
                param="schema",
            )

    import jsonschema
    from jsonschema.validators import SPECIFICATIONS  # type: ignore[attr-defined]  # the meta-schemas, not in the stubs
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import specification_with

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequestError(f"'schema' is not a valid JSON Schema: {exc.message}", param="schema") from exc
    _check_patterns(schema)
    registry = closed_registry()
    validator = bounded_validator_class(cls)(schema, registry=registry)
    # The resolver the validator builds for itself (same specification, same closed registry).
    specification = specification_with(
        cls.ID_OF(cls.META_SCHEMA)  # type: ignore[attr-defined]  # on every validator class, not in the stubs' protocol
        or "urn:unknown-dialect"
    )
    resolver = SPECIFICATIONS.combine(registry).resolver_with_root(specification.create_resource(schema))
    targets: dict[int, list[Any]] = {}
    seen: set[tuple[int, str]] = set()  # a node shared within the document is one node
    for keyword, reference, base, node in references:
        if (id(node), keyword) in seen:
            continue
        seen.add((id(node), keyword))
        try:
            resolved = resolver.lookup(urljoin(base, reference))
        except Unresolvable as exc:
            raise InvalidRequestError(
                f"'schema' {keyword} {reference[:100]!r} does not resolve within the schema", param="schema"
            ) from exc
        targets.setdefault(id(node), []).append(resolved.contents)
    if _expanded_size(schema, targets) > MAX_EXPANDED_SUBSCHEMAS:
        raise InvalidRequestError(
            f"'schema' expands to more than {MAX_EXPANDED_SUBSCHEMAS:,} subschemas through its references;"
            " refer to shared definitions less often",
            param="schema",
        )
    checked = UserSchema(schema=schema, validator=validator)
    for probe in _PROBES:
        try:
            list(validator.iter_errors(probe))
        except RecursionError as exc:
            raise InvalidRequestError("'schema' refers to itself without end", param="schema") from exc
        except Unresolvable as exc:
            raise InvalidRequestError(f"'schema' has a reference that does not resolve: {exc}", param="schema") from exc
    return checked
