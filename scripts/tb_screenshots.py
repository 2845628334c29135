"""Look at what a user sees in TensorBoard: start it on 127.0.0.1 for a run or sweep directory and save a screenshot
of each tab with a headless Chromium (Debian: `apt-get install chromium-headless-shell`, or `chromium`).

    python scripts/tb_screenshots.py outputs/multiruns/2026-12-01_10-00-00            # -> <dir>/screenshots/*.png
    python scripts/tb_screenshots.py <dir> --out docs/images --tabs hparams,custom_scalars --width 1600

Headless Chromium draws no WebGL, so the URL asks TensorBoard for SVG charts (`?forceSVG=true`).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
TABS = ("hparams", "custom_scalars", "timeseries", "images", "text", "graphs")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name) or shutil.which(name, path="/usr/lib/chromium")
        if path:
            return path
    sys.exit(f"no headless browser found (looked for {', '.join(BROWSERS)}): "
             f"apt-get install chromium-headless-shell")


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"tensorboard exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url + "data/logdir", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"tensorboard did not answer on {url} within {timeout:.0f}s")


def screenshot(browser: str, url: str, out: Path, width: int, height: int, wait_ms: int) -> None:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-dev-shm-usage",
               f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not out.is_file():
        sys.exit(f"{Path(browser).name} failed on {url}: {done.stderr.strip().splitlines()[-1:] or done.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path, help="a run or sweep directory (anything TensorBoard's --logdir takes)")
    parser.add_argument("--out", type=Path, help="where the PNGs go (default: <logdir>/screenshots)")
    parser.add_argument("--tabs", default=",".join(TABS), help=f"comma-separated, of {', '.join(TABS)}")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--wait-ms", type=int, default=20000, help="virtual time the page gets to load its data")
    args = parser.parse_args(argv)
    if not args.logdir.is_dir():
        sys.exit(f"{args.logdir} is not a directory")
    out = args.out or args.logdir / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    browser, port = find_browser(), free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(args.logdir), "--host",
                               "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(url, server)
        for tab in args.tabs.split(","):
            path = out / f"{tab}.png"
            screenshot(browser, f"{url}?forceSVG=true&darkMode=false#{tab}", path, args.width, args.height,
                       args.wait_ms)
            print(f"wrote {path}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
