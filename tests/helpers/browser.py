"""Headless Chromium on a report page: its layout as the browser lays it out, and screenshots of its top and a section.

`python -m tests.helpers.browser reports/example/index.html` retakes the example's screenshots beside the page.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1400, 900)  # a laptop screen: what "on one screen" means for the report
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]

# Measured once as the reader first sees the page (details closed), then with every <details> opened.
LAYOUT_SCRIPT = """<script>
window.addEventListener('error', e => { document.title = 'JSERROR ' + e.message; });
window.addEventListener('load', () => {
  const box = el => { const r = el.getBoundingClientRect();
    return {top: r.top + scrollY, bottom: r.bottom + scrollY, left: r.left, right: r.right, width: r.width}; };
  const first = {
    sections: Array.from(document.querySelectorAll('body > section')).map(s => ({id: s.id, ...box(s)})),
    ids: Object.fromEntries(Array.from(document.querySelectorAll('[id]')).map(e => [e.id, box(e)])),
    height: document.documentElement.scrollHeight, viewport: innerWidth,
  };
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const images = Array.from(document.images).map(img => {
    const frame = img.closest('figure') || img.parentElement;
    return {alt: img.alt, loaded: img.complete && img.naturalWidth > 0, natural: img.naturalWidth,
            img: box(img), frame: box(frame)};
  });
  const out = document.createElement('pre');
  out.id = 'layout';
  out.textContent = JSON.stringify({...first, images, open_height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script>"""


def _run(page: Path, *args: str, window: tuple[int, int] = WINDOW) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                               "--v=0", f"--window-size={window[0]},{window[1]}", "--virtual-time-budget=10000",
                               *args, page.as_uri()], capture_output=True, text=True, timeout=180)


def _with(page: Path, snippet: str, work: Path) -> Path:
    """A copy of the page with a snippet before </body> (the report itself carries no script)."""
    copy = work / f"{page.stem}-{zlib.crc32(snippet.encode()):08x}.html"
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", snippet + "</body>"), encoding="utf-8")
    return copy


def layout(page: Path, work: Path) -> tuple[dict[str, Any], str]:
    """Section boxes, element boxes by id, every image's box and its figure's, page heights; and Chromium's stderr."""
    out = _run(_with(page, LAYOUT_SCRIPT, work), "--dump-dom")
    found = re.search(r'<pre id="layout">(.*?)</pre>', out.stdout, re.S)
    if not found:
        raise AssertionError(f"no layout from Chromium: {out.stderr[-2000:]}")
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text), out.stderr


def screenshot(page: Path, png: Path, height: int = WINDOW[1]) -> None:
    """The first `height` pixels of the page at the window's width."""
    out = _run(page, f"--screenshot={png}", window=(WINDOW[0], height))
    if not png.is_file():
        raise AssertionError(f"Chromium wrote no screenshot: {out.stderr[-2000:]}")


def section_screenshot(page: Path, section: str, png: Path, work: Path) -> None:
    """One section alone (every other part of the body hidden), as tall as it is."""
    only = _with(page, f"<style>body > *:not(#{section}) {{ display: none !important; }}</style>", work)
    boxes, _ = layout(only, work)
    screenshot(only, png, height=int(boxes["ids"][section]["bottom"]) + 24)


def main(argv: list[str]) -> int:
    """Retake screenshot-top.png and screenshot-hardware.png beside the report page given."""
    page = Path(argv[0]).resolve()
    with tempfile.TemporaryDirectory() as work:
        screenshot(page, page.parent / "screenshot-top.png")
        section_screenshot(page, "hardware", page.parent / "screenshot-hardware.png", Path(work))
    print(f"wrote {page.parent / 'screenshot-top.png'} and {page.parent / 'screenshot-hardware.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
