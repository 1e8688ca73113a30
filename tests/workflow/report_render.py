"""Open a `snakemake --report` HTML file in headless Chromium and check what it shows.

The report is a single-page app (the results embedded as data URIs in a `results` object);
`render_result` loads a copy that asks the app to display one result, as a click on it would
(`app.setView`, Snakemake's own report code), and screenshots the page; `drawn_fraction` is the
share of non-white pixels in the content area right of the navigation bar.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

RESULTS = re.compile(r"var results = (\{.*?\});\n", re.S)
WINDOW = (1400, 1000)
NAVBAR_PX = 300  # the report's menu on the left; the content is drawn right of it
# Flags that keep Chromium off the (closed) network and away from a display.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
    "--virtual-time-budget=10000",
]


def chromium() -> str:
    """Debian's Chromium; CI must have it (.ci/run installs it), elsewhere the check is skipped."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must render the report: no chromium on PATH (.ci/run installs it)")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    return path


def embedded_results(html: str) -> dict[str, dict]:
    """The report's `results` object: file path -> name, caption, mime type, data URI, ..."""
    match = RESULTS.search(html)
    assert match, "no `var results = {...}` in the report"
    return json.loads(match.group(1))


def render_result(report: Path, data_uri: str, out: Path, browser: str) -> Path:
    """Screenshot of the report displaying `data_uri` as an image result (PNG at `out`)."""
    script = (
        '<script>window.addEventListener("load", function () { setTimeout(function () {'
        f' app.setView({{content: "img", contentPath: {json.dumps(data_uri)}}}); }}, 100); }});'
        "</script>"
    )
    # The last </body>: the embedded libraries hold the string in their own code.
    head, body_end, tail = report.read_text().rpartition("</body>")
    page = out.with_suffix(".html")
    page.write_text(head + script + body_end + tail)
    profile = out.parent / f"{out.stem}-profile"
    subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return out


def drawn_fraction(screenshot: Path) -> float:
    """Share of the content area's pixels that are not (near) white."""
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.int16)  # (H, W, 3)
    content = pixels[:, NAVBAR_PX:]
    return float((content.min(axis=2) < 235).mean())
