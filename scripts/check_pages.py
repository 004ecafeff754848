"""Look at the built docs in a browser 1280 px wide: a screenshot of each page, and a line
for every code block or table that is wider than its box (cut off behind a scroll bar).

It needs a browser (Debian's chromium) and a built site; .ci/run runs it on the pages
below when chromium is installed and says it skipped it when it is not.

    apt-get install -y chromium
    NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir /tmp/site
    python scripts/check_pages.py                        # the pages with terminal captures
    python scripts/check_pages.py --all                  # every page
    python scripts/check_pages.py howto/budget/ cli/     # these pages
    python scripts/check_pages.py --site DIR --out DIR --width 1024

It serves the site on 127.0.0.1 (a free port, stopped at the end), writes one PNG per page
to --out (default /tmp/shots; look at them), prints each block that scrolls, and exits 1
if any does. At 1280 px, mkdocs-material's content column holds 80 characters of code.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

#: the pages whose code blocks show terminal output
PAGES = [
    "",
    "concepts/hidden-size/",
    "concepts/compute-and-memory/",
    "concepts/frameworks/",
    "concepts/transformer-sizes/",
    "howto/test-suite/",
    "howto/budget/",
    "howto/size-a-language-model/",
    "howto/checkpoint/",
    "howto/hugging-face/",
    "howto/compose/",
    "howto/add-an-architecture/",
    "architectures/lstm/",
    "architectures/llama/",
    "cli/",
]

#: run in the page once it has loaded (Material wraps its tables then): the page's height,
#: and every code block and table wrapper whose content is wider than its box
MEASURE = b"""<script>
window.addEventListener("load", () => setTimeout(() => {
  const wide = [];
  const boxes = document.querySelectorAll(".md-content pre > code, .md-typeset__scrollwrap");
  for (const box of boxes) {
    if (box.scrollWidth > box.clientWidth + 1) {
      const first = (box.innerText || "").split("\\n").find(line => line.trim()) || "";
      wide.push({kind: box.tagName === "CODE" ? "code" : "table", first: first.slice(0, 70),
                 content: box.scrollWidth, box: box.clientWidth});
    }
  }
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth + 1) {
    wide.push({kind: "page", first: "", content: page.scrollWidth, box: page.clientWidth});
  }
  const out = document.createElement("pre");
  out.id = "check-pages";
  out.textContent = JSON.stringify({height: page.scrollHeight, wide: wide});
  document.body.appendChild(out);
}, 200));
</script></body>"""


class Handler(SimpleHTTPRequestHandler):
    """Files from the site; ``?measure`` adds :data:`MEASURE` to a page."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.query != "measure":
            super().do_GET()
            return
        path = Path(self.translate_path(url.path))
        if path.is_dir():
            path = path / "index.html"
        body = path.read_bytes().replace(b"</body>", MEASURE, 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no chromium: apt-get install -y chromium")


def chromium(binary: str, width: int, height: int, *args: str) -> str:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu"]
    command += [f"--window-size={width},{height}", "--virtual-time-budget=5000", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    return done.stdout


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="paths under the site, e.g. howto/budget/")
    parser.add_argument("--site", type=Path, default=Path("/tmp/site"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/shots"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--all", action="store_true", help="every page of the site")
    options = parser.parse_args(argv)
    if not (options.site / "index.html").exists():
        raise SystemExit(f"no site in {options.site}: run mkdocs build --site-dir {options.site}")
    pages = options.pages or PAGES
    if options.all:
        pages = sorted(
            str(p.parent.relative_to(options.site)) + "/"
            for p in options.site.rglob("index.html")
            if p.parent != options.site and "search" not in p.parts
        )
        pages.insert(0, "")
    binary = browser()
    options.out.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(options.site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    failed = 0
    try:
        for page in pages:
            page = page.strip("/") + "/" if page.strip("/") else ""
            dom = chromium(binary, options.width, 2400, "--dump-dom", f"{base}{page}?measure")
            found = re.search(r'<pre id="check-pages">(.*?)</pre>', dom, re.S)
            if not found:
                print(f"/{page}: not measured (did the page load?)")
                failed += 1
                continue
            report = json.loads(html.unescape(found.group(1)))
            shot = options.out / ((page.strip("/").replace("/", "_") or "index") + ".png")
            height = min(max(report["height"], 800), 16000)
            chromium(binary, options.width, height, f"--screenshot={shot}", base + page)
            print(f"/{page}: {shot} ({options.width}×{height}), {len(report['wide'])} too wide")
            for block in report["wide"]:
                size = f"{block['content']} px in {block['box']} px"
                print(f"    {block['kind']} {size}: {block['first']}")
            failed += len(report["wide"])
    finally:
        server.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
