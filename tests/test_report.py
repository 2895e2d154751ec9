"""normbench report: one self-contained HTML page per study, verdict first.

Browserless: the page's sections in order, its ranked table read back against compare's
own JSON (embedded whole), the runs left out with their reason, the commands a sweep or
tune recorded, and no src/href/url() that leaves the file. In a real browser (headless
Chromium driven by Playwright, skipped where either is absent): a committed study and a
committed tune folder open with no request but the file itself and no console error,
the verdict table comes first, and every figure renders."""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import REPO, cli, error_line, write_config, write_run
from normbench.store import runfolder

CHROMIUM = os.environ.get("NORMBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STUDY = REPO / "results/study/study_imdb"
TUNE = REPO / "results/study/study_imdb_tuned"


class Page(HTMLParser):
    """The parts of the page the tests read: every attribute that can point somewhere,
    the section ids and tables in document order, the ranked tables' cells, the embedded
    JSON, and the text of <pre> blocks."""

    def __init__(self, text: str):
        super().__init__()
        self.links, self.sections, self.tables, self.svgs = [], [], [], 0
        self.rows: dict[str, list[list[str]]] = {}
        self.json_text, self.pre = "", []
        self._table, self._row, self._cell, self._in = None, None, None, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k, v in attrs:
            if k in ("src", "href", "xlink:href", "action", "srcset", "poster", "data") and v is not None:
                self.links.append(v)
            if k == "style" and v and "url(" in v:
                self.links += re.findall(r"url\(([^)]*)\)", v)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "table":
            self._table = a.get("id") or f"table{len(self.tables)}"
            self.tables.append(self._table)
            self.rows[self._table] = []
        if tag == "tr" and self._table:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = []
        if tag == "svg":
            self.svgs += 1
        self._in.append((tag, a))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr" and self._row is not None and self._table:
            self.rows[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None
        if self._in:
            self._in.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in and self._in[-1][0] == "script" and self._in[-1][1].get("id") == "compare-json":
            self.json_text += data
        if self._in and self._in[-1][0] == "pre":
            self.pre.append(data)


def _study(root: Path) -> Path:
    """Three norms x three seeds, plus a failed run and an unfinished one."""
    for norm, base in (("batch", 0.80), ("layer", 0.70), ("none", 0.60)):
        for seed in range(3):
            write_run(root, seed=seed, norm=norm, test_accuracy=base + 0.01 * seed, curve_shift=base - 0.7,
                      name="study", run_id=f"{norm}-seed{seed}")
    write_run(root, seed=3, norm="layer", status="failed", name="study", run_id="failed-run",
              extra={"error": "ResourceExhaustedError: out of memory"})
    write_run(root, seed=4, norm="none", summary=False, name="study", run_id="killed-run")
    return root


def _report(paths, out: Path, *extra) -> Page:
    r = cli("report", *paths, "-o", out, *extra)
    assert r.exit_code == 0, r.output
    return Page(out.read_text(encoding="utf-8"))


def _leaves_the_file(link: str) -> bool:
    return not link.startswith("#")


def test_report_is_verdict_first_and_its_table_is_compares(tmp_path):
    from normbench.analysis import results, tables
    from normbench.analysis.runs import load_runs

    root = _study(tmp_path / "r")
    out = tmp_path / "study.html"
    r = cli("report", root, "-o", out)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1].startswith(f"wrote {out} (")
    assert r.output.splitlines()[-1].endswith("KB: 1 section, 9 runs compared, 2 figures)")
    page = Page(out.read_text(encoding="utf-8"))
    assert page.sections == ["verdict", "method", "curves", "seeds", "runs", "reproduce"]
    assert page.tables[0] == "ranked-1"  # the first table of the page is the ranked one
    assert page.svgs == 2  # curves and the per-seed strip plot
    # the embedded JSON is compare's, whole
    want = json.loads(tables.format_json(results.compare(load_runs([root]))))
    assert json.loads(page.json_text) == want
    head, *rows = page.rows["ranked-1"]
    assert head[:4] == ["#", "group", "n", "test_accuracymean ± std"]  # <br> between
    assert [(row[0], row[1], row[2]) for row in rows] == [("1", "norm=batch", "3"), ("2", "norm=layer", "3"),
                                                          ("3", "norm=none", "3")]
    for row, g in zip(rows, want["groups"]):
        assert row[3] == f"{g['test_accuracy_mean']:.4f} ± {g['test_accuracy_std']:.4f}"
        assert row[4] == f"[{g['test_accuracy_ci_low']:.4f}, {g['test_accuracy_ci_high']:.4f}]"
    assert rows[0][5] == "best"
    assert rows[1][5].startswith("-0.1000 [")
    # the runs left out, each with its reason
    left = {row[0]: row[2] for row in page.rows["left-out"][1:]}
    assert left == {"failed-run": "ResourceExhaustedError: out of memory",
                    "killed-run": "no summary.json: still running, or killed (resume it with normbench run --resume)"}
    statuses = {row[0]: row[1] for row in page.rows["all-runs"][1:]}
    assert len(statuses) == 11 and statuses["failed-run"] == "failed" and statuses["killed-run"] == "unfinished"


def test_no_src_or_href_leaves_the_file(tmp_path):
    page_text = (tmp_path / "s.html")
    page = _report([_study(tmp_path / "r")], page_text)
    text = page_text.read_text(encoding="utf-8")
    assert page.links, "the SVGs' internal references were found"
    assert [x for x in page.links if _leaves_the_file(x)] == []
    assert [u for u in re.findall(r"url\(([^)]*)\)", text) if not u.strip("'\"").startswith("#")] == []
    assert "@import" not in text and "<link" not in text and "<iframe" not in text
    assert re.findall(r"<script(?![^>]*type=\"application/json\")", text) == []  # no script that could fetch
    # every internal reference points at an id in the page, ids unique across the figures
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))
    assert {x[1:] for x in page.links} <= set(ids)


def test_flags_in_compares_json_flow_into_the_table(tmp_path, monkeypatch):
    """A field compare's JSON gains (a "did not learn" flag, another helper's) is shown
    beside its group without a change here."""
    from normbench.analysis import tables

    real = tables._json

    def flagged(comp):
        out = real(comp)
        for g in out["groups"]:
            g["did_not_learn"] = g["label"] == "norm=none"
        return out

    monkeypatch.setattr(tables, "_json", flagged)
    page = _report([_study(tmp_path / "r")], tmp_path / "s.html")
    head, *rows = page.rows["ranked-1"]
    assert head[-1] == "flags"
    assert {row[1]: row[-1] for row in rows} == {"norm=batch": "", "norm=layer": "", "norm=none": "did not learn"}


def test_a_sweep_records_its_command_and_the_report_lists_it(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    out = tmp_path / "r"
    r = cli("sweep", cfg, "--grid", "model.norm=batch,layer", "--grid", "seed=0", "--output", out, "--dry-run")
    assert r.exit_code == 0 and not out.exists()  # a dry run creates nothing, command.txt included
    from normbench.orchestrate import sweep

    runfolder.set_command_line(["sweep", str(cfg), "--grid", "model.norm=batch,layer", "--output", str(out)])
    try:
        members = sweep.load_sweep(str(cfg), grid_items=["model.norm=batch,layer"], output=str(out))
    finally:
        runfolder._command_line = None
    want = f"normbench sweep {cfg} --grid model.norm=batch,layer --output {out}"
    assert [runfolder.read_command(m.run_dir) for m in members] == [want, want]
    for m, acc in zip(members, (0.8, 0.7)):  # finish them by hand (no training here)
        d = m.run_dir
        shutil.rmtree(d)
        w = write_run(tmp_path / "w", seed=0, norm=m.config.model.norm, test_accuracy=acc, name="x", run_id=m.run_id)
        shutil.copytree(w, d)
        (d / runfolder.COMMAND).write_text(want + "\n")
    page = _report([out], tmp_path / "s.html")
    assert f"{want}    # 2 run folders" in "".join(page.pre)


def test_the_cli_records_a_sweeps_and_a_tunes_command_line(tmp_path, monkeypatch):
    """Through the CLI (click's main, as `normbench sweep` and `tune` run): each folder
    they create holds the command line as typed. The stand-in trainer (tests/tunefake.py)
    completes members at once."""
    from normbench.orchestrate.executors.base import EXECUTORS
    from tunefake import FakeTrainer

    monkeypatch.setattr(runfolder, "_command_line", None)
    monkeypatch.setitem(EXECUTORS, "local", FakeTrainer)
    cfg = write_config(tmp_path / "c.yaml")
    args = ["sweep", str(cfg), "--grid", "seed=0,1", "--output", str(tmp_path / "s")]
    assert cli(*args).exit_code == 0
    made = sorted(p.parent for p in (tmp_path / "s").rglob(runfolder.CONFIG))
    assert len(made) == 2
    assert {runfolder.read_command(d) for d in made} == {"normbench " + " ".join(args)}
    args = ["tune", str(cfg), "--per", "model.norm=batch,none", "--grid", "train.learning_rate=0.001,0.01",
            "--confirm-seeds", "5", "--output", str(tmp_path / "t")]
    assert cli(*args).exit_code == 0
    made = sorted(p.parent for p in (tmp_path / "t").rglob(runfolder.CONFIG))
    assert len(made) == 2 * 2 * 2 + 2  # tuning: norms x rates x seeds 0,1; one confirmation seed per norm
    assert {runfolder.read_command(d) for d in made} == {"normbench " + " ".join(args)}


def test_a_tune_still_at_its_first_grid_value_reports_without_its_grid_curve(tmp_path):
    """A tune folder in progress (every finished tuning run at one learning rate, no
    confirmation yet) gets its page, without the curve over the grid, instead of plot's
    "nothing to plot against"."""
    import shutil

    if not TUNE.exists():
        pytest.skip("the committed tune study is not in this checkout")
    t = tmp_path / TUNE.name
    shutil.copytree(TUNE, t)
    full = _report([t], tmp_path / "full.html")
    for d in [c.parent for c in t.rglob(runfolder.CONFIG)]:
        if runfolder.read_role(d)["role"] == "confirmation" or "learning_rate=0.0003-" not in d.name:
            shutil.rmtree(d)  # as if only the first rate's tuning runs had finished
    page = _report([t], tmp_path / "t.html")
    assert "tune" in page.sections and page.svgs == full.svgs - 1  # all but the curve over the grid


def test_a_bad_output_is_one_line_and_writes_nothing(tmp_path):
    root = _study(tmp_path / "r")
    line = error_line(cli("report", root, "-o", tmp_path / "study.png"))
    assert line == f"Error: -o {tmp_path / 'study.png'}: a report is an HTML page; end the name in .html"
    assert not (tmp_path / "study.png").exists()
    line = error_line(cli("report", tmp_path / "nowhere", "-o", tmp_path / "s.html"))
    assert line.startswith(f"Error: {tmp_path / 'nowhere'}: no such file or folder")
    assert not (tmp_path / "s.html").exists()


def test_the_committed_tune_folder_reports_its_tuning_and_confirms(tmp_path):
    if not TUNE.exists():
        pytest.skip("the committed tune study is not in this checkout")
    out = tmp_path / "tuned.html"
    page = _report([TUNE], out)
    assert page.sections == ["verdict", "method", "curves", "seeds", "tune", "runs", "reproduce"]
    assert page.svgs == 3
    data = json.loads(page.json_text)
    assert sum(g["n"] for g in data["groups"]) == 30  # the confirmation runs only: tuning runs never averaged
    roles = [row[2] for row in page.rows["all-runs"][1:]]
    made = [runfolder.read_role(c.parent)["role"] for c in TUNE.rglob(runfolder.CONFIG)]  # what the folder holds
    assert roles.count("tuning") == made.count("tuning") >= 30 and roles.count("confirmation") == made.count("confirmation") == 30
    text = out.read_text(encoding="utf-8")
    per_norm = made.count("tuning") // 3  # the same budget for each of the three norms, 2 tuning seeds a point
    for norm in ("batch", "layer", "none"):
        assert f"model.norm={norm}: {per_norm} tuning runs ({per_norm // 2} points × the tuning seeds)" in text


# ----------------------------------------------------------------------------- in a real browser


def _browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium where it can)")
    sync = pytest.importorskip("playwright.sync_api")
    return sync.sync_playwright


def _open_in_chromium(path: Path, screenshot: Path | None = None) -> dict:
    """Open the page from disk in headless Chromium: every request and console message,
    and what the page itself reports (its sections, the first table, each figure's size)."""
    sync_playwright = _browser()
    requests, console, errors = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri() else route.abort())
            page.goto(path.as_uri(), wait_until="load")
            seen = page.evaluate("""() => ({
                sections: [...document.querySelectorAll('body > section')].map(s => s.id),
                firstTable: document.querySelector('table').id,
                firstTableSection: document.querySelector('table').closest('section').id,
                rankedRows: document.querySelectorAll('table.ranked tbody tr').length,
                figures: [...document.querySelectorAll('.figure svg')].map(s => {
                    const r = s.getBoundingClientRect();
                    return {w: r.width, h: r.height, lines: s.querySelectorAll('path').length,
                            text: s.querySelectorAll('text').length};
                }),
                json: JSON.parse(document.getElementById('compare-json').textContent).metric,
            })""")
            if screenshot:
                page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    return {"requests": requests, "console": console, "errors": errors, **seen}


@pytest.mark.parametrize("folder,figures", [(STUDY, 2), (TUNE, 3)], ids=["study", "tune"])
def test_the_report_opens_offline_in_chromium(tmp_path, folder, figures):
    if not folder.exists():
        pytest.skip(f"{folder} is not in this checkout")
    out = tmp_path / "report.html"
    _report([folder], out)
    seen = _open_in_chromium(out)
    assert seen["requests"] == [out.as_uri()]  # the file itself, nothing else
    assert [m for m in seen["console"] if m[0] in ("error", "warning")] == [] and seen["errors"] == []
    assert seen["sections"][0] == "verdict"
    assert (seen["firstTable"], seen["firstTableSection"]) == ("ranked-1", "verdict")
    assert seen["rankedRows"] == 3
    assert len(seen["figures"]) == figures
    for f in seen["figures"]:  # each figure laid out at a readable size, with its lines and labels drawn
        assert f["w"] > 400 and f["h"] > 250 and f["lines"] > 20 and f["text"] > 5, f
    assert seen["json"] == "test_accuracy"


def _make_reports_lines() -> list[tuple[str, list[str]]]:
    """(study, extra report options) of each line of results/make_reports.sh."""
    out = []
    for line in (REPO / "results/make_reports.sh").read_text().splitlines():
        if line.startswith("r "):
            study, *extra = line.split()[1:]
            out.append((study, extra))
    return out


def test_every_committed_study_has_a_current_report():
    """Each study folder under results/study/ has its page in results/reports/, and each
    page's embedded comparison is what compare says of those runs today (a page left
    behind by a change to the runs or to compare fails here)."""
    from normbench.analysis import results, tables
    from normbench.analysis.runs import ROLE_KEY, load_runs, with_role

    lines = _make_reports_lines()
    studies = sorted(p.name for p in (REPO / "results/study").iterdir() if p.is_dir())
    assert sorted(study for study, _ in lines) == studies
    for study, extra in lines:
        page = REPO / "results/reports" / f"{study}.html"
        assert page.exists(), f"{page}: run bash results/make_reports.sh"
        within = tuple(extra[i + 1] for i, x in enumerate(extra) if x == "--within")
        runs = load_runs([REPO / "results/study" / study])
        role = "confirmation" if any(r.config.get(ROLE_KEY) == "confirmation" for r in runs) else None
        comp = results.compare(with_role(runs, role), "test_accuracy", within)
        want = tables.format_json(comp).replace(str(REPO) + "/", "")  # the pages name folders from the repository
        got = json.loads(Page(page.read_text(encoding="utf-8")).json_text)
        assert got == json.loads(want), study
