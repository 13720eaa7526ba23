"""The demonstration (``python -m bids_app.cli.demo``, ``make demo``) and its reports in a browser.

One tiny demonstration (8 subjects at 4 mm, one CNN epoch, no clustering) runs into a temporary
folder; the tests check its progress lines (one bar with an ETA across both levels) and its final
lines, then open the group report and a participant report in headless Chromium (Debian's
``chromium``, driven by ``playwright``): no broken image, no empty section, and a screenshot.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bids_app.cli.demo import Phase, Progress, run_phase

#: Why the tests are skipped where the browser is missing.
NO_CHROMIUM = "needs the chromium command (apt-get install -y chromium) and playwright"


def _have_chromium() -> bool:
    """Tell whether Chromium and playwright are installed."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return shutil.which("chromium") is not None


def requires_chromium(test: Callable) -> Callable:
    """Mark a test ``requires_chromium``; skip it, with the reason, where Chromium is absent."""
    skip = pytest.mark.skipif(not _have_chromium(), reason=NO_CHROMIUM)
    return pytest.mark.requires_chromium(skip(test))


#: A plain progress line: per cent, bar, ETA, what runs.
PROGRESS = re.compile(r"^demo: +(\d+) % \[([#.]{10})\] ETA ([^,\s]+),? ?(.*)$", re.M)
#: Headings followed by nothing, images that did not load (JavaScript run in the page).
_INSPECT = """() => {
  const broken = [...document.images]
    .filter((img) => !img.complete || img.naturalWidth === 0)
    .map((img) => (img.getAttribute('alt') || '') + ' ' + img.getAttribute('src').slice(0, 60));
  const empty = [];
  for (const heading of document.querySelectorAll('h2')) {
    let content = false;
    for (let node = heading.nextElementSibling; node && !/^H[12]$/.test(node.tagName);
         node = node.nextElementSibling) {
      if (node.textContent.trim() || node.querySelector('img,table,svg,canvas')
          || /^(IMG|TABLE|SVG|CANVAS)$/.test(node.tagName)) { content = true; break; }
    }
    if (!content) empty.push(heading.textContent.trim());
  }
  return {broken, empty, images: document.images.length,
          headings: document.querySelectorAll('h2').length};
}"""


def inspect_report(html: Path, screenshot: Path) -> dict[str, object]:
    """Open a report in headless Chromium, list its broken images and empty sections.

    Parameters
    ----------
    html : Path
        The report.
    screenshot : Path
        Where the full-page screenshot (PNG) goes.

    Returns
    -------
    dict
        ``broken`` (the images that did not load), ``empty`` (the headings without content),
        ``images`` and ``headings`` (their counts).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(html.resolve().as_uri(), wait_until="load")
            found = page.evaluate(_INSPECT)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Run a tiny demonstration once: 8 subjects, 2 sites, 4 mm, one CNN epoch.

    Four patients are too few for the clustering (the demonstration leaves it out and says so),
    for SMOTE, ComBat, 3 folds and the CNN's validation hold-out (the group options turn them
    off).
    """
    folder = tmp_path_factory.mktemp("demo")
    command = [
        sys.executable,
        "-m",
        "bids_app.cli.demo",
        str(folder / "demo"),
        "--subjects",
        "8",
        "--sites",
        "2",
        "--voxel-size",
        "4",
        "--dl-epochs",
        "1",
        "--dl-base-width",
        "2",
        "--nprocs",
        "2",
        "--group-options",
        "--smote-k 0 --harmonization none --cv-folds 2 --classifiers svm_linear --no-dl-validation",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=1800)
    except subprocess.TimeoutExpired:  # the driver, the level it runs and the level's workers
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    completed = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return folder, completed


def _reports(completed: subprocess.CompletedProcess) -> dict[str, Path]:
    """The report paths of the final lines (``Group report: PATH``)."""
    return {
        kind: Path(path)
        for kind, path in re.findall(
            r"^(Group|Participant) report:\s+(\S+)$", completed.stdout, re.M
        )
    }


@pytest.mark.long
@pytest.mark.slow
def test_demo_shows_one_progress_bar_and_the_reports(demo):
    """The progress spans both levels with an ETA; the last lines name the reports."""
    folder, completed = demo
    lines = PROGRESS.findall(completed.stderr)
    percents = [int(percent) for percent, *_ in lines]
    assert len(lines) >= 5, completed.stderr
    assert percents == sorted(percents) and percents[-1] == 100
    assert any(re.fullmatch(r"\d+(m\d\ds|s)", eta) for _, _, eta, _ in lines)
    details = " ".join(detail for *_, detail in lines)
    assert "participant level" in details and "group level" in details
    assert "building the synthetic cohort" in details
    reports = _reports(completed)
    assert reports["Group"].is_absolute() and reports["Group"].is_file()
    assert reports["Group"].is_relative_to(folder) and reports["Participant"].is_file()
    assert "classification of ALS vs CN" in completed.stdout
    assert "LRP attention maps" in completed.stdout
    assert re.search(r"^demo: finished in \S+$", completed.stdout, re.M)
    assert "(No clustering: it needs 12 patients" in completed.stdout


@pytest.mark.long
@pytest.mark.slow
@requires_chromium
def test_demo_reports_render_in_chromium(demo, tmp_path):
    """Every image of both reports loads, every section has content; screenshots are saved."""
    _, completed = demo
    reports = _reports(completed)
    for kind, expected_images in (("Group", 5), ("Participant", 1)):
        screenshot = tmp_path / f"{kind.lower()}.png"
        found = inspect_report(reports[kind], screenshot)
        assert found["broken"] == [], kind
        assert found["empty"] == [], kind
        assert found["images"] >= expected_images and found["headings"] >= 1
        assert screenshot.stat().st_size > 10_000
    group = reports["Group"].read_text(encoding="utf-8")
    for heading in ("Classification", "Attention maps"):
        assert heading.lower() in group.lower(), heading


@pytest.mark.long
@pytest.mark.slow
@requires_chromium
def test_report_check_finds_a_broken_image_and_an_empty_section(demo, tmp_path):
    """The browser check fails a report whose image file is gone or whose section is empty."""
    _, completed = demo
    html = _reports(completed)["Group"].read_text(encoding="utf-8")
    broken = re.sub(
        r'src="data:image/png;base64,[^"]+"', 'src="figures/removed.png"', html, count=1
    )
    broken = broken.replace("</h1>", "</h1>\n<section><h2>Nothing here</h2>\n</section>", 1)
    assert broken != html
    path = tmp_path / "report.html"
    path.write_text(broken, encoding="utf-8")
    found = inspect_report(path, tmp_path / "broken.png")
    assert len(found["broken"]) == 1
    assert found["empty"] == ["Nothing here"]


def _fake_phase(name: str, lines: list[str], pause: float, units: int = 0) -> Phase:
    """A phase whose command prints ``lines`` with a pause before each."""
    code = (
        f"import time\nfor line in {lines!r}:\n    time.sleep({pause})\n    print(line, flush=True)"
    )
    return Phase(name, (sys.executable, "-c", code), expected_s=1.0, units=units)


def test_progress_spans_the_phases_with_an_eta():
    """Sessions count in the participant phase, the group phase by time, then 100 %."""
    sessions = [f"INFO: sub-0{i}_ses-01: done" for i in range(1, 5)]
    phases = [
        _fake_phase("participant", ["INFO: sub-01: step n4 finished", *sessions], 0.15, units=4),
        _fake_phase("group", ["INFO: classification", "Group report: /r/report.html"], 0.3),
    ]
    stream, log, seen = io.StringIO(), io.StringIO(), []
    progress = Progress(phases, stream)
    for phase in phases:
        assert run_phase(phase, log, progress, seen.append) == 0
        progress.end()
    lines = [(p, eta, detail) for p, _, eta, detail in PROGRESS.findall(stream.getvalue())]
    percents = [int(percent) for percent, *_ in lines]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100
    assert percents.count(100) == 1 and lines[-1][1] == "0s"
    assert "participant level 4/4 sessions" in {detail for *_, detail in lines}
    assert any(detail == "group level" for *_, detail in lines)
    assert all(re.fullmatch(r"\d+(m\d\ds|s)", eta) for _, eta, _ in lines)
    assert seen[-1].strip() == "Group report: /r/report.html"
    assert "$ " in log.getvalue() and sessions[-1] in log.getvalue()
