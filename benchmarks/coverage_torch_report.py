"""Tables and files of ``coverage_torch.py``: the per-model table, the totals, the CSV.

Rows are dicts (see ``COLUMNS``); a CSV written by :func:`write_outputs` reads back with
:func:`load_rows` (types restored), so that an interrupted sweep can be resumed
(``coverage_torch.py --resume``) and its results kept on disk model by model.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

COLUMNS = [
    "spec", "model", "source", "input", "params_m", "spa_ok", "spa_oracle", "spa_oracle_error",
    "spa_macs_reduction", "spa_seconds", "spa_groups", "spa_reason", "tp_ok", "tp_macs_reduction", "tp_seconds",
    "tp_reason", "skipped", "note",
]
BOOLS = ("spa_ok", "spa_oracle", "tp_ok")
FLOATS = ("params_m", "spa_oracle_error", "spa_macs_reduction", "spa_seconds", "tp_macs_reduction", "tp_seconds")


def _pct(v: Any) -> str:
    return "-" if v is None or v == "" else f"{float(v):.1%}"


def _cell(text: Any) -> str:
    return str(text or "").replace("|", "/").replace("\n", " ")[:220]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summary(rows: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """Counts, mean MACs reductions and summed times of one source's rows."""
    mine = [r for r in rows if r["source"] == source and not r.get("skipped")]
    spa_ok = [r for r in mine if r.get("spa_ok")]
    tp_ok = [r for r in mine if r.get("tp_ok")]
    both = [r for r in mine if r.get("spa_oracle") and r.get("tp_ok")]
    return {
        "source": source,
        "run": len(mine),
        "skipped": sum(1 for r in rows if r["source"] == source and r.get("skipped")),
        "spa_ok": len(spa_ok),
        "spa_oracle": sum(bool(r.get("spa_oracle")) for r in mine),
        "tp_ok": len(tp_ok),
        "spa_macs": _mean([float(r["spa_macs_reduction"]) for r in spa_ok]),
        "tp_macs": _mean([float(r["tp_macs_reduction"]) for r in tp_ok]),
        "both": len(both),
        "spa_macs_both": _mean([float(r["spa_macs_reduction"]) for r in both]),
        "tp_macs_both": _mean([float(r["tp_macs_reduction"]) for r in both]),
        "spa_seconds": sum(float(r.get("spa_seconds") or 0) for r in mine),
        "tp_seconds": sum(float(r.get("tp_seconds") or 0) for r in mine),
    }


def sources(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({r["source"] for r in rows}, key=lambda s: (s != "torchvision", s))


def totals_table(rows: list[dict[str, Any]]) -> list[str]:
    """The totals as a markdown table, one line per source."""
    out = [
        "| source | models run | skipped | SPA ok | SPA oracle held | TP ok | mean MACs -% SPA / TP (each its successes) "
        "| mean MACs -% SPA / TP (both ok, n) | time SPA / TP (s) |",
        "|" + "---|" * 9,
    ]
    for source in sources(rows):
        s = summary(rows, source)
        out.append(
            f"| {source} | {s['run']} | {s['skipped']} | {s['spa_ok']} | {s['spa_oracle']} | {s['tp_ok']} | "
            f"{_pct(s['spa_macs'])} / {_pct(s['tp_macs'])} | "
            f"{_pct(s['spa_macs_both'])} / {_pct(s['tp_macs_both'])} ({s['both']}) | "
            f"{s['spa_seconds']:.0f} / {s['tp_seconds']:.0f} |"
        )
    return out


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    out = [header, "", "| model | source | input | params (M) | SPA | oracle | SPA MACs -% | SPA s | TP | TP MACs -% "
           "| TP s | SPA failure / note | TP failure |", "|" + "---|" * 13]
    for r in rows:
        if r.get("skipped"):
            out.append(f"| {r['model']} | {r['source']} | - | - | skipped | | | | skipped | | | {_cell(r['skipped'])} | |")
            continue
        spa_note = r.get("spa_reason") or r.get("note") or ""
        out.append(
            f"| {r['model']} | {r['source']} | {r.get('input', '-')} | {r.get('params_m', '-')} | "
            f"{'yes' if r.get('spa_ok') else 'no'} | {'yes' if r.get('spa_oracle') else 'no'} | "
            f"{_pct(r.get('spa_macs_reduction'))} | {r.get('spa_seconds', '-')} | "
            f"{'yes' if r.get('tp_ok') else 'no'} | {_pct(r.get('tp_macs_reduction'))} | {r.get('tp_seconds', '-')} | "
            f"{_cell(spa_note)} | {_cell(r.get('tp_reason'))} |"
        )
    out += ["", "**Totals** (SPA ok: a pruned module came back; oracle held: rtol 1e-4; times are summed "
            "pruning seconds, 1 thread):", ""]
    out += totals_table(rows)
    return "\n".join(out) + "\n"


def write_outputs(rows: list[dict[str, Any]], stem: Path, header: str) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(markdown(rows, header))
    with stem.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of a CSV written by :func:`write_outputs`, by spec, with their types back."""
    if not path.exists():
        return {}
    out = {}
    with path.open() as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {k: v for k, v in raw.items() if v not in ("", None)}
            for key in BOOLS:
                row[key] = row.get(key) == "True"
            for key in FLOATS:
                if key in row:
                    row[key] = float(row[key])
            if row.get("spec"):
                out[row["spec"]] = row
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the totals table of one or more CSVs (``coverage_torch_report.py A.csv B.csv``)."""
    import sys

    rows = [r for path in (argv if argv is not None else sys.argv[1:]) for r in load_rows(Path(path)).values()]
    print("\n".join(totals_table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
