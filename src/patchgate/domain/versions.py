"""Version ordering and ranges for target selectors (``>=1.2,<2.0``), standard library only.

Versions are compared as runs of digits and runs of letters (separators ignored): numbers
as integers, letters as text. A number sorts above text at the same position, and the end
of a version sorts between the two, so a pre-release marker sorts below the bare release
and a longer numeric version above its prefix: ``1.0-rc1`` < ``1.0-rc10`` < ``1.0`` <
``1.0.1``, as semantic versioning orders them (``1.2`` and ``1.2.0`` differ). This is
deliberately small: the domain may not import ``packaging``, and device firmware versions
are rarely PEP 440.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from patchgate.domain.errors import InvalidInput

_RUN = re.compile(r"\d+|[a-z]+")
_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|!=|>|<|=)?\s*([0-9A-Za-z][0-9A-Za-z.\-+_~]*)\s*$")

# A key is a tuple of (rank, number, text) triples: rank 0 is a text part (a pre-release
# marker), 1 the end of the version, 2 a number. So "1.0-rc1" < "1.0" < "1.0.1".
_Key = tuple[tuple[int, int, str], ...]
_END = (1, 0, "")


@lru_cache(maxsize=8192)
def version_key(version: str) -> _Key:
    """A sort key for ``version`` following the module's ordering rule."""
    parts = [
        (2, int(run), "") if run.isdigit() else (0, 0, run)
        for run in _RUN.findall(version.strip().lower().lstrip("v"))
    ]
    parts.append(_END)
    return tuple(parts)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts below, equal to or above ``b``."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


@dataclass(frozen=True)
class VersionRange:
    """A conjunction of constraints such as ``>=1.2,<2.0``; the empty range matches all."""

    constraints: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse comma-separated constraints; a bare version means ``==``."""
        constraints: list[tuple[str, str]] = []
        for raw in text.split(","):
            if not raw.strip():
                continue
            match = _CONSTRAINT.match(raw)
            if not match:
                raise InvalidInput(f"version range: {raw.strip()!r} is not a constraint")
            op = match.group(1) or "=="
            constraints.append(("==" if op == "=" else op, match.group(2)))
        return cls(tuple(constraints))

    def contains(self, version: str | None) -> bool:
        """Whether ``version`` satisfies every constraint (an unknown version satisfies
        only the empty range)."""
        if not self.constraints:
            return True
        if version is None:
            return False
        for op, bound in self.constraints:
            c = compare_versions(version, bound)
            ok = {
                "==": c == 0,
                "!=": c != 0,
                ">": c > 0,
                ">=": c >= 0,
                "<": c < 0,
                "<=": c <= 0,
            }[op]
            if not ok:
                return False
        return True

    def __str__(self) -> str:
        return ",".join(op + v for op, v in self.constraints)


ANY_VERSION: Final = VersionRange()
