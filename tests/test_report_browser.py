"""End to end: the HTML report of a synthetic cohort opened in a real headless Chromium.

The browser is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``) with the
standard library only, so every request the page makes is seen: the test fails on any request
that is not the report file itself or an inline ``data:`` URL, on any failed load, CSP violation
or script error. Network access is off (offline emulation, and every host name fails to resolve).

Without a browser the test skips; in CI (``CI=true``) it fails instead, because there a missing
browser means the check did not run. ``SEGFAIR_CHROMIUM`` names the browser to use;
``SEGFAIR_SCREENSHOT=PATH`` keeps a copy of the 1280×800 screenshot for a person to look at.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from segfair.config import load_config
from segfair.report import build_report, write_reports
from segfair.session import SegfairSession

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1280, 800
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium")


def _chromium() -> str:
    explicit = os.environ.get("SEGFAIR_CHROMIUM")
    found = explicit or next((p for c in CANDIDATES if (p := shutil.which(c))), None)
    if found is None:
        reason = (
            "no headless Chromium found (apt-get install chromium, or set SEGFAIR_CHROMIUM); "
            "the report's browser test did not run"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


class DevTools:
    """A Chromium process and its DevTools connection over a pipe (fds 3 and 4 in the child)."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",  # CI runs as root in a container
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--mute-audio",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # no host resolves: the network is off
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # a tiny launcher puts our pipe ends on fds 3 and 4, where Chromium expects them (no
        # preexec_fn: unsafe in a process that may run threads, like a pytest-xdist worker; no
        # shell: dash cannot redirect file descriptors above 9)
        launcher = (
            "import fcntl, os, sys\n"
            "r, w = (fcntl.fcntl(int(a), fcntl.F_DUPFD, 10) for a in sys.argv[1:3])\n"
            "os.dup2(r, 3)\n"
            "os.dup2(w, 4)\n"
            "os.execv(sys.argv[3], sys.argv[3:])\n"
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                launcher,
                str(to_child_r),
                str(from_child_w),
                executable,
                *flags,
            ],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        reply = self._read(lambda m: m.get("id") == self._next_id, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        return self._read(lambda m: m.get("method") == method, timeout)

    def settle(self, quiet: float = 0.5) -> None:
        """Read events until none arrives for ``quiet`` seconds (late requests show up)."""
        try:
            while True:
                self._read(lambda m: False, quiet)
        except TimeoutError:
            return

    def _read(self, wanted: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
                if "method" in message:
                    self.events.append(message)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self._from_child], [], [], min(left, 0.25))
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    err = self.process.stderr.read().decode(errors="replace")[-2000:]  # type: ignore[union-attr]
                    raise RuntimeError(f"Chromium closed its DevTools pipe: {err}")
                self._buffer += chunk

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.process.stderr is not None:
            self.process.stderr.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


PROBE = """
(() => {
  const box = (el) => {
    if (!el) return null;
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return {top: r.top, bottom: r.bottom, width: r.width, height: r.height,
            shown: s.display !== 'none' && s.visibility !== 'hidden' && +s.opacity > 0,
            onTop: !!hit && (el === hit || el.contains(hit))};
  };
  const out = {
    title: document.title,
    sections: [...document.querySelectorAll('main > section')].map(s => s.id),
    verdict: box(document.querySelector('#verdict .verdict-box')),
    verdictText: document.querySelector('#verdict h1').innerText,
    chart: box(document.querySelector('#verdict figure.glance svg.chart')),
    chartMarks: document.querySelectorAll(
      '#verdict figure.glance svg.chart circle, #verdict figure.glance svg.chart rect').length,
    scrollWidth: document.documentElement.scrollWidth,
    scripts: document.scripts.length,
    worst: [],
  };
  for (const el of document.querySelectorAll('#worst svg.case')) {
    el.scrollIntoView({block: 'center'});
    out.worst.push({...box(el), paths: el.querySelectorAll('path').length});
  }
  window.scrollTo(0, 0);
  return out;
})()
"""


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segfair.synth import make_cohort

    root = tmp_path_factory.mktemp("browser")
    cfg = load_config(make_cohort(root / "cohort", n_cases=60, shape=(24, 24, 12), seed=0))
    cfg = cfg.model_copy(update={"n_boot": 200, "min_group_size": 5, "cache": False})
    session = SegfairSession(cfg, workers=1, cache=False, progress=False)
    results = session.check_config_gates()
    doc = build_report(session.audit, results, config=cfg, seed=session.seed, cohort=session.cohort)
    (path,) = write_reports(doc, html=root / "report" / "fairness.html")
    return path


def test_report_in_a_real_browser(report_file: Path, tmp_path: Path) -> None:
    browser = DevTools(_chromium(), Path(tempfile.mkdtemp(dir=tmp_path)))
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Network", "Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable", session=sid)
        browser.call(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
            session=sid,
        )
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
            session=sid,
        )
        url = report_file.resolve().as_uri()
        browser.call("Page.navigate", {"url": url}, session=sid)
        browser.wait_for("Page.loadEventFired")
        browser.settle()
        shot = base64.b64decode(
            browser.call("Page.captureScreenshot", {"format": "png"}, session=sid)["data"]
        )
        probe = browser.call(
            "Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session=sid
        )
    finally:
        browser.close()
    png = tmp_path / f"report-{WIDTH}x{HEIGHT}.png"
    png.write_bytes(shot)
    if os.environ.get("SEGFAIR_SCREENSHOT"):
        Path(os.environ["SEGFAIR_SCREENSHOT"]).write_bytes(shot)

    # no request but the report itself (and inline data: URLs), none failed, no CSP complaint
    events = browser.events
    requested = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    assert requested, "the page load was not observed"
    assert [u for u in requested if u != url and not u.startswith("data:")] == []
    failed = [e["params"] for e in events if e["method"] == "Network.loadingFailed"]
    assert failed == []
    problems = [
        e["params"]["entry"]["text"]
        for e in events
        if e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning")
    ]
    assert problems == []
    assert [e for e in events if e["method"] == "Runtime.exceptionThrown"] == []

    assert _png_size(shot) == (WIDTH, HEIGHT)
    assert len(shot) > 20_000  # a rendered page, not a blank one

    page = probe["result"]["value"]
    assert page["scripts"] == 0
    assert page["sections"] == [
        "verdict",
        "gates",
        "rulers",
        "labels",
        "amplification",
        "controlled",
        "morphology",
        "coverage",
        "worst",
        "provenance",
    ]
    assert page["scrollWidth"] <= WIDTH, "the page scrolls sideways at 1280 px"
    # the verdict and the ruler chart are visible above the fold
    for name in ("verdict", "chart"):
        box = page[name]
        assert box is not None, name
        assert box["shown"], name
        assert box["onTop"], name
        assert box["width"] > 200, name
        assert box["height"] > 100, name
        assert box["top"] >= 0, name
        assert box["bottom"] <= HEIGHT, name
    assert page["verdictText"].strip()
    assert page["chartMarks"] >= 6  # a point per group and ruler
    # the worst cases are drawn, and nothing covers them
    assert len(page["worst"]) == 6
    for case in page["worst"]:
        assert case["shown"]
        assert case["onTop"]
        assert case["width"] > 50
        assert case["height"] > 50
        assert case["paths"] >= 3


PHONE_PROBE = """
(() => {
  const wide = [];
  for (const el of document.querySelectorAll('main *')) {
    const r = el.getBoundingClientRect();
    if (r.right > window.innerWidth + 1 && !el.closest('.scroll, table, figure')) {
      wide.push(el.tagName + (el.className ? '.' + el.className : ''));
    }
  }
  let smallest = 100;
  for (const svg of document.querySelectorAll('svg.chart')) {
    const vb = svg.viewBox && svg.viewBox.baseVal;
    if (!vb || !vb.width) continue;
    const scale = svg.getBoundingClientRect().width / vb.width;
    for (const t of svg.querySelectorAll('text')) {
      smallest = Math.min(smallest, parseFloat(getComputedStyle(t).fontSize) * scale);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
          wide: wide.slice(0, 10), smallestChartFont: smallest};
})()
"""


@pytest.mark.parametrize("width", [390, 1280])
def test_the_report_fits_a_phone_and_a_desktop_screen(
    report_file: Path, tmp_path: Path, width: int
) -> None:
    """No sideways scrolling of the page (tables and charts scroll in their own box), and chart
    text stays readable (at least 7 px on screen)."""
    _check_fits(report_file, tmp_path, width)


@pytest.fixture(scope="module")
def structures_report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BraTS-like cohort of three structures with lesion-wise counts: per-structure sections,
    their navigation, the gates' structure column and each structure's worst cases."""
    from test_structures import ENHANCING_GATE, make_brats_repo

    root = tmp_path_factory.mktemp("browser-structures")
    repo = make_brats_repo(root / "cohort", n_per_group=6)
    counts = ["lesions", "lesions_detected", "small_lesions", "small_lesions_detected"]
    repo.write_config(gates=[ENHANCING_GATE], metrics=["dice", "hd95", "lesion_dice", *counts])
    cfg = load_config(repo.config_path)
    session = SegfairSession(cfg, workers=1, cache=False, progress=False)
    results = session.check_config_gates()
    doc = build_report(session.audit, results, config=cfg, seed=session.seed, cohort=session.cohort)
    (path,) = write_reports(doc, html=root / "report" / "fairness.html")
    return path


@pytest.mark.parametrize("width", [390, 1280])
def test_a_report_of_several_structures_fits_a_phone_and_a_desktop_screen(
    structures_report_file: Path, tmp_path: Path, width: int
) -> None:
    _check_fits(structures_report_file, tmp_path, width)


def _check_fits(report: Path, tmp_path: Path, width: int) -> None:
    browser = DevTools(_chromium(), Path(tempfile.mkdtemp(dir=tmp_path)))
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        browser.call("Page.enable", session=sid)
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": False},
            session=sid,
        )
        browser.call("Page.navigate", {"url": report.resolve().as_uri()}, session=sid)
        browser.wait_for("Page.loadEventFired")
        browser.settle()
        probe = browser.call(
            "Runtime.evaluate", {"expression": PHONE_PROBE, "returnByValue": True}, session=sid
        )
    finally:
        browser.close()
    page = probe["result"]["value"]
    assert page["innerWidth"] == width
    assert page["scrollWidth"] <= width, page["wide"]
    assert page["smallestChartFont"] >= 7, page
