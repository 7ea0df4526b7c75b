"""report.html as a person sees it: rendered by headless Chromium, read back from its DOM and
photographed. The screenshots stay under reports/ as CI artefacts.

Chromium runs with no network features (the flags of the machine notes) and a fresh profile
directory, in its own process group, which is killed whole if it outlives its deadline.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
from pathlib import Path

import lxml.html
import pytest

from conformance.oracle.requirements import CATALOGUE
from conformance.report.results import build_results
from conformance.report.run_dir import write_run
from tests.support import report_sample as sample

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = REPO / "reports"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
DEADLINE = 90.0

if CHROMIUM is None:
    pytest.skip(
        "chromium is not installed (apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[bytes]:
    argv = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{DEADLINE} second timeout expired running: {' '.join(argv)}")
    finally:
        # renderer and zygote children, should any survive the browser
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    base = tmp_path_factory.mktemp("reports")
    results = build_results(*sample.sample_run())
    return results, write_run(results, base) / "report.html"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_dom_shows_matrix_and_one_ladder_per_failing_case(
    rendered: tuple[dict, Path], tmp_path: Path
) -> None:
    results, page = rendered
    done = _chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    dom = lxml.html.document_fromstring(done.stdout)
    rows = dom.xpath('//table[@id="requirements"]/tbody/tr')
    assert len(rows) == len(CATALOGUE)
    non_plain = [c for c in results["cases"] if c["verdict"] not in ("pass", "skipped")]
    articles = dom.xpath('//section[@id="cases"]/article')
    assert len(articles) == len(non_plain) == 4
    for article in articles:
        ladders = article.xpath('.//*[local-name()="svg"]')
        assert len(ladders) == 1
        arrows = ladders[0].xpath('.//*[local-name()="line" and @stroke-width]')
        assert len(arrows) >= 6  # SUBSCRIBE/200/NOTIFY/200 + PUBLISH/200 at least
    failing = [c for c in results["cases"] if c["verdict"] == "fail"]
    assert len([a for a in articles if a.xpath('.//h3/span[text()="fail"]')]) == len(failing)
    # the hostile server's markup is text in the browser's DOM, never an element
    assert not dom.xpath("//script")
    assert sample.HOSTILE in dom.text_content()


def test_screenshot_is_kept_and_not_blank(rendered: tuple[dict, Path], tmp_path: Path) -> None:
    _, page = rendered
    ARTEFACTS.mkdir(exist_ok=True)
    shots = {
        ARTEFACTS / "ci-screenshot.png": "1400,2000",  # what a person sees first
        ARTEFACTS / "ci-screenshot-full.png": "1400,9000",  # the ladders and diffs too
    }
    for n, (shot, size) in enumerate(shots.items()):
        shot.unlink(missing_ok=True)
        done = _chromium(
            [f"--window-size={size}", f"--screenshot={shot}", page.as_uri()],
            tmp_path / f"profile-{n}",
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        width, height = _png_size(shot)
        assert (width, height) == tuple(int(x) for x in size.split(","))
        # A blank white page compresses to a few kB; text, badges and ladders do not.
        assert shot.stat().st_size > 50_000, f"{shot} looks blank"
