"""Version ordering and affected-version ranges (pure, standard library only).

A device reports one version string; a vulnerability names the versions it affects in one
of several spellings. All of them become one model here, a ``VersionRange``: a union of
intervals and single versions, stored and exported in purl-spec ``vers:`` syntax.

Spellings understood:

- ``vers:semver/>=1.0.0|<1.2.3`` and any other ``vers:<scheme>/`` (purl-spec VERS);
- comparator lists ``>=2.0.0, <2.0.7``, ``< 1.26.18``, ``<=3``, ``=1.2`` or a bare ``1.2.3``
  (as CVE 5 records sometimes write them inside ``version``);
- CVE JSON 5 ``versions[]`` entries (``version`` with ``lessThan`` / ``lessThanOrEqual``);
- OSV ``ranges[].events`` (``introduced`` / ``fixed`` / ``last_affected`` / ``limit``).

Ordering (``version_key``) follows SemVer 2.0.0 §11 precedence, generalised to any number
of dot-separated release parts: numeric parts compare as numbers and a missing part counts
as 0 (``1.2`` == ``1.2.0``); a pre-release (``-rc.1``) sorts before its release; build
metadata (``+...``) is ignored. A leading ``v`` is dropped. Debian-style strings with an
epoch (``1:2.3-4``) keep their epoch as the first part. That is enough for firmware and
most package ecosystems; strings it cannot read as versions are refused, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from patchgate.domain.errors import InvalidInput

_PART = re.compile(r"\d+|[A-Za-z]+")
_VERSION_TEXT = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+~:_-]*$")

# Placeholders some CVE records put where a version belongs (CVE-2022-25929: "unspecified";
# CVE-2021-44228: "log4j-core*"): they name no version, so a bound made of one is dropped.
_NOT_A_VERSION = {"unspecified", "n/a", "*", "unknown", "-", ""}


@lru_cache(maxsize=8192)
def is_version(text: str) -> bool:
    """True when ``text`` can be ordered by ``version_key``."""
    t = text.strip()
    if t.lower() in _NOT_A_VERSION or "*" in t or " " in t:
        return False
    if t[:1] in ("v", "V") and len(t) > 1 and t[1].isdigit():
        t = t[1:]
    # "4.x" and "6.1.X" are wildcards, not versions.
    if re.search(r"(^|\.)[xX](\.|$)", t):
        return False
    return bool(_VERSION_TEXT.match(t)) and t[0].isdigit()


def _parts(text: str) -> tuple[tuple[int, int | str], ...]:
    out: list[tuple[int, int | str]] = []
    for token in _PART.findall(text):
        # SemVer §11.4.3: numeric identifiers sort before alphanumeric ones.
        out.append((0, int(token)) if token.isdigit() else (1, token.lower()))
    return tuple(out)


@lru_cache(maxsize=8192)  # the poll matches a device's version against ranges
def version_key(text: str) -> tuple[Any, ...]:
    """A sort key giving SemVer-style precedence (see the module docstring)."""
    t = text.strip()
    if not is_version(t):
        raise InvalidInput(f"{text!r} is not a version")
    if t[0] in ("v", "V"):
        t = t[1:]
    t = t.split("+", 1)[0]
    epoch = 0
    if ":" in t:
        head, t = t.split(":", 1)
        epoch = int(head) if head.isdigit() else 0
    release, _, pre = t.partition("-")
    rel = [int(p) if p.isdigit() else 0 for p in re.split(r"[._~]", release) if p != ""]
    # Trailing zeros do not change a version: 1.2 == 1.2.0 (SemVer compares three parts).
    while rel and rel[-1] == 0:
        rel.pop()
    # A release part that is not purely numeric ("1.0a") keeps its letters as a pre-release.
    letters = [p for p in re.split(r"[._~]", release) if p and not p.isdigit()]
    pre_parts = _parts("-".join([*letters, pre] if pre else letters))
    # SemVer §11.3: a version with a pre-release sorts before the same version without one.
    has_pre = 0 if pre_parts else 1
    return (epoch, tuple(rel), has_pre, pre_parts)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to or after ``b``."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


@dataclass(frozen=True)
class Bound:
    """One end of an interval: a version and whether the version itself is included."""

    version: str
    inclusive: bool


@dataclass(frozen=True)
class Interval:
    """Versions between ``lower`` and ``upper``; a missing bound is unbounded."""

    lower: Bound | None = None
    upper: Bound | None = None

    def contains(self, version: str) -> bool:
        """True when ``version`` lies inside the interval."""
        key = version_key(version)
        if self.lower is not None:
            low = version_key(self.lower.version)
            if key < low or (key == low and not self.lower.inclusive):
                return False
        if self.upper is not None:
            high = version_key(self.upper.version)
            if key > high or (key == high and not self.upper.inclusive):
                return False
        return True

    def constraints(self) -> list[str]:
        """The interval as ``vers`` constraints (``>=1.0``, ``<2.0``; ``=1.0`` when closed on
        one version; ``*`` when unbounded)."""
        lo, hi = self.lower, self.upper
        if lo and hi and lo.inclusive and hi.inclusive and compare(lo.version, hi.version) == 0:
            return [f"={lo.version}"]
        out: list[str] = []
        if lo is not None:
            out.append((">=" if lo.inclusive else ">") + lo.version)
        if hi is not None:
            out.append(("<=" if hi.inclusive else "<") + hi.version)
        return out or ["*"]


@dataclass(frozen=True)
class VersionRange:
    """A union of intervals (each single version is a closed interval on itself)."""

    intervals: tuple[Interval, ...]
    scheme: str = "semver"

    def contains(self, version: str | None) -> bool:
        """True when ``version`` is affected. An unreadable or missing version is not
        counted as affected: exposure counts what is known, and says so."""
        if version is None or not is_version(version):
            return False
        return any(i.contains(version) for i in self.intervals)

    @property
    def everything(self) -> bool:
        """True when the range has an unbounded interval on both sides."""
        return any(i.lower is None and i.upper is None for i in self.intervals)

    def to_vers(self) -> str:
        """The range as a purl-spec ``vers`` string (``vers:semver/>=1.0|<1.2``).

        ``vers`` joins constraints with ``|`` and reads them in version order, so intervals
        are written sorted by their lower bound and must not overlap (``normalised``
        guarantees that).
        """
        if self.everything:
            return f"vers:{self.scheme}/*"
        parts: list[str] = []
        for interval in self.normalised().intervals:
            parts.extend(interval.constraints())
        return f"vers:{self.scheme}/" + "|".join(parts)

    def normalised(self) -> VersionRange:
        """The same versions as sorted, non-overlapping intervals (overlapping or touching
        ones merged), which is the form ``vers`` can express."""

        def key(i: Interval) -> tuple[Any, ...]:
            if i.lower is None:
                return (0, ())
            return (1, version_key(i.lower.version), not i.lower.inclusive)

        merged: list[Interval] = []
        for interval in sorted(self.intervals, key=key):
            if merged and _overlaps(merged[-1], interval):
                merged[-1] = Interval(merged[-1].lower, _higher(merged[-1].upper, interval.upper))
            else:
                merged.append(interval)
        return VersionRange(tuple(merged), self.scheme)


def _overlaps(first: Interval, second: Interval) -> bool:
    """True when ``second`` (which starts no earlier) starts inside or right at the end of
    ``first``."""
    if first.upper is None or second.lower is None:
        return True
    order = compare(second.lower.version, first.upper.version)
    return order < 0 or (order == 0 and (second.lower.inclusive or first.upper.inclusive))


def _higher(a: Bound | None, b: Bound | None) -> Bound | None:
    if a is None or b is None:
        return None
    order = compare(a.version, b.version)
    if order == 0:
        return a if a.inclusive else b
    return a if order > 0 else b


def _comparator(text: str) -> tuple[str, str]:
    m = re.match(r"^\s*(>=|<=|!=|==|=|>|<)?\s*(.+?)\s*$", text)
    if m is None:
        raise InvalidInput(f"{text!r} is not a version constraint")
    op = m.group(1) or "="
    return ("=" if op == "==" else op), m.group(2)


def _require_version(text: str, where: str) -> str:
    if not is_version(text):
        raise InvalidInput(f"{where}: {text!r} is not a version")
    return text.strip()


def _from_constraints(pairs: Sequence[tuple[str, str]], where: str, scheme: str) -> VersionRange:
    """Build intervals from comparator constraints, read in version order as VERS does:
    ``=`` is a single version, a lower comparator opens an interval that the next upper
    comparator closes, an upper comparator with no open interval starts from the bottom,
    and an interval left open runs to the top. ``!=`` is not supported (no record we
    import uses it, and a union of intervals cannot hold a hole without splitting)."""
    items = [(op, _require_version(v, where)) for op, v in pairs]
    if any(op == "!=" for op, _ in items):
        raise InvalidInput(f"{where}: '!=' constraints are not supported")
    items.sort(key=lambda p: version_key(p[1]))
    intervals: list[Interval] = []
    open_lower: Bound | None = None
    opened = False
    for op, v in items:
        if op == "=":
            intervals.append(Interval(Bound(v, True), Bound(v, True)))
        elif op in (">", ">="):
            if opened:
                intervals.append(Interval(open_lower, None))
            open_lower, opened = Bound(v, op == ">="), True
        else:
            intervals.append(Interval(open_lower if opened else None, Bound(v, op == "<=")))
            open_lower, opened = None, False
    if opened:
        intervals.append(Interval(open_lower, None))
    if not intervals:
        raise InvalidInput(f"{where}: no version constraint")
    return VersionRange(tuple(intervals), scheme)


def parse_range(text: str) -> VersionRange:
    """Parse ``vers:...``, a comparator list (``>=1.0, <2.0``), ``*`` or a bare version."""
    spec = text.strip()
    if not spec:
        raise InvalidInput("an empty version range")
    scheme = "semver"
    separators = ""
    if spec.lower().startswith("vers:"):
        body = spec[5:]
        if "/" not in body:
            raise InvalidInput(f"{text!r}: a vers range is vers:<scheme>/<constraints>")
        scheme, _, spec = body.partition("/")
        scheme = scheme.lower() or "semver"
        separators = r"\|"
    if spec.strip() == "*":
        return VersionRange((Interval(),), scheme)
    if separators == r"\|":
        pieces = [p for p in spec.split("|") if p.strip()]
        return _from_constraints([_comparator(p) for p in pieces], repr(text), scheme)
    # Outside vers, "|" / "||" separate alternatives and a comma or space list within one
    # alternative is an intersection, as npm and PEP 440 write it (">= 2.0.0, < 2.0.7").
    intervals: list[Interval] = []
    for alternative in re.split(r"\|\|?", spec):
        pieces = [p for p in re.split(r",|\s+(?=[<>=!])", alternative) if p.strip()]
        if not pieces:
            raise InvalidInput(f"{text!r}: an empty alternative")
        intervals.append(_intersection([_comparator(p) for p in pieces], repr(text)))
    return VersionRange(tuple(intervals), scheme)


def _intersection(pairs: Sequence[tuple[str, str]], where: str) -> Interval:
    """One interval satisfying every constraint at once; an empty one is refused."""
    lower: Bound | None = None
    upper: Bound | None = None
    for op, raw in pairs:
        v = _require_version(raw, where)
        if op == "!=":
            raise InvalidInput(f"{where}: '!=' constraints are not supported")
        if op in ("=", ">", ">="):
            b = Bound(v, op != ">")
            if (
                lower is None
                or compare(v, lower.version) > 0
                or (compare(v, lower.version) == 0 and not b.inclusive)
            ):
                lower = b
        if op in ("=", "<", "<="):
            b = Bound(v, op != "<")
            if (
                upper is None
                or compare(v, upper.version) < 0
                or (compare(v, upper.version) == 0 and not b.inclusive)
            ):
                upper = b
    if lower is not None and upper is not None:
        order = compare(lower.version, upper.version)
        if order > 0 or (order == 0 and not (lower.inclusive and upper.inclusive)):
            raise InvalidInput(f"{where}: no version satisfies every constraint")
    return Interval(lower, upper)


def from_cve5_versions(
    versions: Iterable[Mapping[str, Any]], *, default_status: str = "unaffected"
) -> tuple[VersionRange | None, list[str]]:
    """The affected range of a CVE JSON 5 ``affected[].versions`` list, with notes.

    Each entry with ``status: affected`` contributes ``version`` ≤ v < ``lessThan`` (or
    ≤ ``lessThanOrEqual``), or exactly ``version`` when it has no bound. ``version: "0"``
    means "from the beginning". Entries whose bounds are not orderable versions (git
    commits, ``unspecified``, wildcards such as ``6.1.*``) are skipped with a note rather
    than guessed; ``changes[]`` toggles are not evaluated. A ``version`` that is itself a
    comparator list (``">= 2.0.0, < 2.0.7"``) is read as one. ``unaffected`` entries are
    not subtracted (a union of intervals holds no holes); ``default_status: affected`` with
    no readable affected entry yields no range and a note.
    """
    intervals: list[Interval] = []
    notes: list[str] = []
    for entry in versions:
        if str(entry.get("status", "")).lower() != "affected":
            continue
        version = str(entry.get("version", "")).strip()
        vtype = str(entry.get("versionType", "")).lower()
        less = entry.get("lessThan")
        less_eq = entry.get("lessThanOrEqual")
        if vtype == "git" or vtype == "original_commit_for_fix":
            notes.append(f"version {version!r} ({vtype}) is a commit, not a version: skipped")
            continue
        if less is None and less_eq is None and re.search(r"[<>=]", version):
            try:
                intervals.extend(parse_range(version).intervals)
            except InvalidInput as exc:
                notes.append(f"version {version!r} skipped: {exc}")
            continue
        bound_text = less if less is not None else less_eq
        if bound_text is None:
            if is_version(version):
                intervals.append(Interval(Bound(version, True), Bound(version, True)))
            else:
                notes.append(f"version {version!r} is not a version: skipped")
            continue
        if not is_version(str(bound_text)):
            notes.append(f"bound {bound_text!r} is not a version: skipped")
            continue
        lower = None if version in ("0", "") or not is_version(version) else Bound(version, True)
        if lower is None and version not in ("0", ""):
            notes.append(f"lower bound {version!r} is not a version: read as unbounded")
        intervals.append(Interval(lower, Bound(str(bound_text), less is None)))
    if not intervals:
        if default_status == "affected":
            notes.append("every version is affected by default and no range could be read")
        return None, notes
    return VersionRange(tuple(intervals)), notes


OSV_EVENTS: tuple[str, ...] = ("introduced", "fixed", "last_affected", "limit")


def osv_events(events: Sequence[Any]) -> list[tuple[str, str]]:
    """The (kind, value) of each event of an OSV ``ranges[]`` entry; ``InvalidInput`` for
    an event that is not one key of ``OSV_EVENTS`` (the value is not read as a version)."""
    keyed: list[tuple[str, str]] = []
    for event in events:
        if not isinstance(event, Mapping) or len(event) != 1:
            raise InvalidInput(f"an OSV event has exactly one key, not {event!r}")
        kind, value = next(iter(event.items()))
        if kind not in OSV_EVENTS:
            raise InvalidInput(f"unknown OSV event {kind!r} (known: {', '.join(OSV_EVENTS)})")
        keyed.append((str(kind), str(value)))
    return keyed


def from_osv_events(
    events: Sequence[Mapping[str, Any]], *, range_type: str = "SEMVER"
) -> VersionRange:
    """The affected range of one OSV ``ranges[]`` entry (OSV schema "Evaluation").

    Events are read in version order: ``introduced`` opens an interval (``"0"`` means from
    the start), ``fixed`` and ``limit`` close it exclusively, ``last_affected`` closes it
    inclusively. ``GIT`` ranges name commits and cannot be evaluated against a version:
    they raise ``InvalidInput`` for the caller to note and skip.
    """
    if range_type.upper() == "GIT":
        raise InvalidInput("a GIT range names commits, not versions")
    keyed = osv_events(events)

    def sort_key(item: tuple[str, str]) -> tuple[Any, ...]:
        kind, value = item
        if kind == "introduced" and value == "0":
            return (0,)
        return (1, version_key(_require_version(value, f"OSV {kind}")))

    keyed.sort(key=sort_key)
    intervals: list[Interval] = []
    lower: Bound | None = None
    is_open = False
    for kind, value in keyed:
        if kind == "introduced":
            if is_open:
                continue  # a second introduced inside an open interval changes nothing
            lower = None if value == "0" else Bound(value, True)
            is_open = True
        elif is_open:
            intervals.append(Interval(lower, Bound(value, kind == "last_affected")))
            is_open = False
    if is_open:
        intervals.append(Interval(lower, None))
    if not intervals:
        raise InvalidInput("the OSV range has no introduced event")
    scheme = "semver" if range_type.upper() == "SEMVER" else "generic"
    return VersionRange(tuple(intervals), scheme)


def union(ranges: Iterable[VersionRange]) -> VersionRange | None:
    """One range covering every range given, or None when there are none."""
    intervals: list[Interval] = []
    scheme = "semver"
    for r in ranges:
        intervals.extend(r.intervals)
        scheme = r.scheme
    return VersionRange(tuple(intervals), scheme) if intervals else None
