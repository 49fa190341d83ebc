"""Open a page in headless Chromium and look at what it draws.

Chromium is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: file descriptors 3 and 4, JSON messages ended by a NUL
byte), with the standard library (Pillow decodes the screenshots): evaluate JavaScript
in the page, take screenshots of elements (PNG, composited: WebGL canvases included),
record the network requests. WebGL runs on SwiftShader (software), as chemiscope's
own headless mode does. Needs the Debian package ``chromium``; nothing is
downloaded.
"""

import base64
import io
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..antisymmetry.chemiscope_viewer import chromium_executable


class Page:
    """A page opened in headless Chromium; use as a context manager."""

    def __init__(
        self,
        path: Path,
        workdir: Path,
        width: int = 1300,
        height: int = 1000,
        extra_args: Sequence[str] = (),
    ):
        executable = chromium_executable()
        if executable is None:
            raise RuntimeError("chromium is not installed")
        to_browser_read, self._write = os.pipe()
        self._read, from_browser_write = os.pipe()

        def pipes_as_3_and_4():  # in the child, before exec
            inbound, outbound = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(inbound, 3)
            os.dup2(outbound, 4)

        self.log = workdir / "chromium.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [
                    executable,
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--enable-unsafe-swiftshader",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    f"--user-data-dir={workdir / 'chromium-profile'}",
                    f"--window-size={width},{height}",
                    "--remote-debugging-pipe",
                    *extra_args,
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=False,
                preexec_fn=pipes_as_3_and_4,
            )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._id = 0
        #: every event received (``{"method": ..., "params": ...}``)
        self.events: List[Dict[str, Any]] = []
        try:
            targets = self.send("Target.getTargets")["targetInfos"]
            target = next(t for t in targets if t["type"] == "page")
            self.session = self.send(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
            )["sessionId"]
            for domain in ("Page", "Network", "Runtime"):
                self.send(f"{domain}.enable", session=True)
            self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Page":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass

    def send(
        self,
        method: str,
        params: Optional[Dict[str, Any]] = None,
        session: bool = False,
        timeout: float = 120,
    ) -> Dict[str, Any]:
        """One DevTools command; its result (events are kept in :attr:`events`)."""
        self._id += 1
        message: Dict[str, Any] = {"id": self._id, "method": method}
        message["params"] = params or {}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                if "method" in reply:
                    self.events.append(reply)
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"chromium did not answer {method} in {timeout} s")
            ready, _, _ = select.select([self._read], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError(
                        "chromium closed the pipe: " + self.log.read_text()[-2000:]
                    )
                self._buffer += chunk

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 120) -> Any:
        """Poll ``expression`` until it is truthy; its value (or the last one)."""
        end = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > end:
                return value
            time.sleep(0.5)

    def screenshot(self, selector: str) -> np.ndarray:
        """RGB pixels (``uint8``, height x width x 3) of the element ``selector``,
        scrolled into view."""
        from PIL import Image

        rect = self.evaluate(
            f"""(() => {{
              const element = document.querySelector({json.dumps(selector)});
              element.scrollIntoView({{block: "center"}});
              const r = element.getBoundingClientRect();
              return {{x: r.left + window.scrollX, y: r.top + window.scrollY,
                       width: r.width, height: r.height}};
            }})()"""
        )
        if not rect or rect["width"] < 1 or rect["height"] < 1:
            raise RuntimeError(f"{selector} has no area: {rect}")
        time.sleep(0.5)  # let the scrolled region paint
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "clip": dict(rect, scale=1)},
            session=True,
        )
        image = Image.open(io.BytesIO(base64.b64decode(shot["data"])))
        return np.asarray(image.convert("RGB"))

    def drawn_pixels(self, selector: str, drawing: str) -> int:
        """How many pixels of element ``selector`` change when the
        elements ``drawing`` inside it (searched through shadow roots: chemiscope's
        panels live in them) are hidden: what those elements drew (0 for a blank
        canvas). Raises when ``selector`` holds no such element."""
        toggle = """(visibility) => {
          function all(root) {
            const found = [...root.querySelectorAll(DRAWING)];
            for (const element of root.querySelectorAll("*")) {
              if (element.shadowRoot) found.push(...all(element.shadowRoot));
            }
            return found;
          }
          const found = all(document.querySelector(SELECTOR));
          for (const element of found) element.style.visibility = visibility;
          return found.length;
        }"""
        toggle = toggle.replace("DRAWING", json.dumps(drawing))
        toggle = toggle.replace("SELECTOR", json.dumps(selector))
        shown = self.screenshot(selector)
        if not self.evaluate(f"({toggle})('hidden')"):
            raise RuntimeError(f"no '{drawing}' inside {selector}")
        try:
            hidden = self.screenshot(selector)
        finally:
            self.evaluate(f"({toggle})('')")
        if shown.shape != hidden.shape:
            raise RuntimeError(f"{selector} resized: {shown.shape}, {hidden.shape}")
        change = np.abs(shown.astype(int) - hidden.astype(int)).sum(axis=-1)
        return int((change > 30).sum())

    def requested_urls(self) -> List[str]:
        """Every URL the page requested (``Network.requestWillBeSent``)."""
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]
