"""The HTML report: the numbers on the page, the CLI paths that write it, and a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx
import pytest
from report_models import cumsum_model

import spa_core
from spa_core.html_report import render_report, write_report
from spa_core.report_charts import human, nice_ticks, score_histogram

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def spa(*args):
    return subprocess.run([sys.executable, "-m", "spa_core.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def result():
    return spa_core.prune_onnx(cumsum_model(), ratio=0.25, criterion="l2")


@pytest.fixture(scope="module")
def page(result):
    return render_report(result, command="spa prune cumsum.onnx -o small.onnx --ratio 0.25", title="cumsum.onnx")


def expected_numbers(result) -> list[str]:
    """Strings the page must show: totals, every group row, every layer's widths."""
    r = result.report
    numbers = [f"{r.params_before:,} \u2192 {r.params_after:,}", f"{r.macs_before:,} \u2192 {r.macs_after:,}"]
    for g in result.plan.groups:
        numbers.append(f"{len(g.kept)} / {g.size}")
    for w in r.layer_widths:
        numbers.append(f"{w['before']:,} \u2192 {w['after']:,}" if w["before"] != w["after"] else f"{w['before']:,} (kept)")
    return numbers


def test_page_shows_the_numbers(result, page):
    r = result.report
    text = re.sub(r"<[^>]+>", "", page)  # what a reader sees, tags removed
    for number in expected_numbers(result):
        assert number in text, number
    assert "cumsum.onnx" in text and "spa prune cumsum.onnx -o small.onnx --ratio 0.25" in text
    # one row per group, each with its score histogram and its share removed
    assert len(result.plan.groups) == 2
    for share in r.groups:
        row = re.search(rf'<tr id="group-{share.id}">(.*?)</tr>', page, re.S).group(1)
        assert f"{share.params_removed:,}" in row and f"{share.macs_removed:,}" in row
        assert 'class="hist"' in row
    # where the channels go
    assert "stem" in text and "mid" in text and "body" in text
    # barriers with their operators and nodes
    assert "CumSum" in text and "/body/CumSum" in text and "no propagation rule" in text
    assert "(graph output)" in text and "(graph input)" in text
    # options recorded in the plan, latency measured
    assert "&quot;l2&quot;" in page and "ratio" in text
    assert re.search(r"[\d.]+ ms", text) and ("faster" in text or "slower" in text)


def test_page_is_self_contained(page):
    lowered = page.lower()
    for needle in ("<script", "<link", "<img", "@import", "url(", "src="):
        assert needle not in lowered, needle
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)


def test_report_from_a_saved_plan_matches(tmp_path, result):
    """``spa report``'s path: the plan re-applied to the original reports the same numbers."""
    plan = spa_core.Plan.from_json(result.plan.to_json())
    again = spa_core.apply_plan_onnx(cumsum_model(), plan)
    out = tmp_path / "sub" / "r.html"
    write_report(out, again, plan=plan, pruned=result.onnx, measure=False, title="again")
    text = re.sub(r"<[^>]+>", "", out.read_text())
    for number in expected_numbers(result):
        assert number in text, number
    assert "not measured" in text
    assert "min " in text  # the plan's scores were used (apply_plan_onnx's fresh plan has none)
    assert not list(out.parent.glob(".*tmp"))


def test_cli_prune_report_and_report_command(tmp_path):
    model, small, plan = tmp_path / "c.onnx", tmp_path / "small.onnx", tmp_path / "plan.json"
    onnx.save(cumsum_model(), model)
    html = tmp_path / "report.html"
    run = spa("prune", model, "-o", small, "--ratio", "0.25", "--report", html, "--plan-out", plan, "-q")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""  # --quiet after the subcommand
    page = html.read_text()
    assert f"--report {html}" in page and "--ratio 0.25" in page
    run = spa("report", plan, model, small)
    assert run.returncode == 0, run.stderr
    second = tmp_path / "small.report.html"
    assert f"report: {second}" in run.stdout
    direct = spa_core.prune_onnx(model, ratio=0.25)
    for number in expected_numbers(direct):
        assert number in re.sub(r"<[^>]+>", "", second.read_text()), number


@pytest.mark.parametrize("case", ["mismatch", "missing_plan", "not_a_plan"])
def test_report_command_errors_one_line(tmp_path, case):
    model, small, plan = tmp_path / "c.onnx", tmp_path / "small.onnx", tmp_path / "plan.json"
    onnx.save(cumsum_model(), model)
    result = spa_core.prune_onnx(model, ratio=0.5)
    onnx.save(result.onnx, small)
    result.plan.save(plan)
    pruned = small
    if case == "mismatch":  # the plan of 50% against a model pruned by 25%
        onnx.save(spa_core.prune_onnx(model, ratio=0.25).onnx, pruned)
    elif case == "missing_plan":
        plan = tmp_path / "nope.json"
    else:
        plan.write_text("{\"hello\": 1}")
    out = tmp_path / "r.html"
    run = spa("report", plan, model, pruned, "-o", out)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("spa: error:"), run.stderr
    assert not out.exists() and not list(tmp_path.glob(".r.html*"))


def test_chart_helpers():
    assert human(11_699_112) == "11.7 M" and human(1_814_073_344) == "1.81 G" and human(64) == "64"
    assert nice_ticks(512) == [0, 200, 400, 600] and nice_ticks(1000)[-1] >= 1000
    svg = score_histogram([0.1, 0.2, 0.3, 0.9], kept=[2, 3])
    assert svg.startswith("<svg") and "kept (2)" in svg and "removed (2)" in svg


def test_rendered_in_chromium(tmp_path, result):
    """The page as a browser renders it shows the numbers (headless Chromium, --dump-dom)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the HTML checks above still ran")
    path = tmp_path / "report.html"
    write_report(path, result, command="spa prune cumsum.onnx", measure=False)
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", path.as_uri()],
            capture_output=True, text=True, timeout=180,
        )
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert "<svg" in dom and "CumSum" in dom
    text = re.sub(r"<[^>]+>", "", dom)
    for number in expected_numbers(result):
        assert number in text, number
