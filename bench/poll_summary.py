"""Summarise a bench/poll_vs_goosebit.sh result folder as a Markdown table (median run).
usage: python bench/poll_summary.py RESULT_DIR RUNS N BIG"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LABELS = {
    "G0": "gooseBit 0.2.12, SQLite, {n} devices, nothing pending",
    "G1": "gooseBit 0.2.12, SQLite, {n} devices, update pending for each",
    "S0": "patchgate, SQLite, {n} devices, nothing pending",
    "S1": "patchgate, SQLite, {n} devices, action pending for each",
    "P0": "patchgate, PostgreSQL, {n} devices, nothing pending",
    "P1": "patchgate, PostgreSQL, {n} devices, action pending for each",
    "PM": "patchgate, PostgreSQL, {big} devices, nothing pending",
    "C": "ceiling: constant reply, bare ASGI on granian",
}
# Which gooseBit figure each patchgate figure is compared with.
PEER = {"S0": "G0", "P0": "G0", "PM": "G0", "S1": "G1", "P1": "G1"}


def ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    value, unit = match.groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def parse(path: Path) -> tuple[float, float, float, int, int]:
    text = path.read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return (
        rps,
        p50,
        p99,
        int(non2xx.group(1)) if non2xx else 0,
        sum(int(x) for x in sock.groups()) if sock else 0,
    )


def main() -> None:
    res, runs, n, big = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    rows: dict[str, tuple[float, float, float, int, int, list[float], str]] = {}
    for tag in LABELS:
        files = [res / f"{tag}-{i}.txt" for i in range(1, runs + 1)]
        if not all(f.exists() for f in files):
            continue
        got = [parse(f) for f in files]
        median = sorted(got, key=lambda r: r[0])[len(got) // 2]
        rss_file = res / f"{tag}-rss.txt"
        rss = f"{int(rss_file.read_text()) / 1024:.0f} MiB" if rss_file.exists() else "?"
        rows[tag] = (*median, [r[0] for r in got], rss)
    ceiling = rows["C"][0] if "C" in rows else None
    print("| configuration | polls/s (median; all runs) | p50 | p99 | errors | RSS | "
          "× gooseBit | share of ceiling |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for tag, (rps, p50, p99, non2xx, sock, all_rps, rss) in rows.items():
        peer = rows.get(PEER.get(tag, ""))
        ratio = f"{rps / peer[0]:.1f}×" if peer else ""
        share = f"{100 * rps / ceiling:.0f} %" if ceiling and tag != "C" else ""
        runs_text = "/".join(f"{r:.0f}" for r in all_rps)
        print(
            f"| {LABELS[tag].format(n=n, big=big)} | {rps:.0f} ({runs_text}) | {p50:.1f} ms | "
            f"{p99:.1f} ms | {non2xx + sock} | {rss} | {ratio} | {share} |"
        )
    print()
    print("Errors: non-2xx answers plus socket errors (connect, read, write, timeout).")
    print("p99 < 20 ms: " + ", ".join(
        f"{tag} {'yes' if row[2] < 20 else 'no'}" for tag, row in rows.items() if tag in PEER
    ))  # fmt: skip


if __name__ == "__main__":
    main()
