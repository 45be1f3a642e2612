"""Ratios to the baseline, the targets of issue 3, and the printed table."""

from __future__ import annotations

from typing import Any


def _baseline(report: dict[str, Any]) -> dict[str, Any] | None:
    rows = report.get("plain_diffusers") or []
    return max(rows, key=lambda row: row["batch"]) if rows else None


def add_ratios(report: dict[str, Any]) -> None:
    """Every images/s as a ratio to plain diffusers at its largest batch; every p50 next to plain
    diffusers' batch-1 call (the latency a single client could get at best)."""
    base = _baseline(report)
    report["baseline"] = None if base is None else {"what": f"plain diffusers, batch {base['batch']}",
                                                    "images_per_s": base["images_per_s"]}
    batch_one = next((row for row in report.get("plain_diffusers") or [] if row["batch"] == 1), None)
    for row in report.get("plain_diffusers") or []:
        row["ratio"] = round(row["images_per_s"] / base["images_per_s"], 3) if base else None
    for key in ("server", "one_at_a_time"):
        for row in report.get(key) or []:
            row["ratio"] = round(row["images_per_s"] / base["images_per_s"], 3) if base else None
            if batch_one:
                row["p50_minus_batch1_call_ms"] = round(row["p50_ms"] - batch_one["s_per_call"] * 1000, 1)
    report["targets"] = _targets(report, base)


def _targets(report: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    server = {row["concurrency"]: row for row in report.get("server") or []}
    if base is None or not server:
        return []
    lines = []
    top = server[max(server)]
    lines.append(f"server at concurrency {top['concurrency']}: {top['ratio']}x plain diffusers batch "
                 f"{base['batch']} (issue 3 target for sd2 512 1 step at 64: >= 0.85x; with --compile: >= 1.3x)")
    if 1 in server and "p50_minus_batch1_call_ms" in server[1]:
        lines.append(f"server p50 at concurrency 1: {server[1]['p50_minus_batch1_call_ms']} ms over the plain "
                     "diffusers batch-1 call (target: <= 25 ms)")
    return lines


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['device']} | {report['model']} ({report['arch']}) {report['size']}x{report['size']}, "
          f"{report['steps']} step(s) | {report['date']}")
    print(f"{'what':<34}{'images/s':>10}{'ratio':>8}{'p50 ms':>10}{'p95 ms':>10}  batches")
    for row in report.get("plain_diffusers") or []:
        print(f"{'plain diffusers, batch ' + str(row['batch']):<34}{row['images_per_s']:>10}{row['ratio']:>8}"
              f"{row['s_per_call'] * 1000:>10.1f}{'':>10}")
    for key, label in (("server", "imageapi"), ("one_at_a_time", "one-at-a-time server")):
        for row in report.get(key) or []:
            print(f"{label + ', concurrency ' + str(row['concurrency']):<34}{row['images_per_s']:>10}"
                  f"{row['ratio'] if row['ratio'] is not None else '-':>8}{row['p50_ms']:>10}{row['p95_ms']:>10}"
                  f"  {row.get('batch_sizes') or ''}{' ERRORS: ' + str(row['errors']) if row['errors'] else ''}")
    for line in report.get("targets") or []:
        print("target:", line)
    for note in report.get("notes") or []:
        print("note:", note)
