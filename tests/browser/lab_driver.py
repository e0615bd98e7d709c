"""A throw-away JupyterLab server and a thin driver for one notebook tab in a Playwright page.

The server runs on 127.0.0.1 with a free port and no token, in a folder of copied notebooks, with
its workspace, settings and runtime files in the same temporary folder: nothing it does reaches the
checkout or the user's Jupyter configuration. ``expose_app_in_browser`` gives the test the
application object (``window.jupyterapp``), the way JupyterLab's own UI tests (Galata) drive it:
opening files, running all cells and reading the kernel state go through it; the widgets themselves
are driven with the mouse and the keyboard.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Playwright may be missing: the tests then skip instead of failing to import
    from playwright.sync_api import Locator, Page


STARTUP_LIMIT_S = 120


def free_port() -> int:
    """A port nothing listens on now (the server is started with ``port_retries=0``, so a race fails
    loudly)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LabServer:
    """A running ``jupyter lab`` process serving ``root``."""

    root: Path
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_lab(root: Path, state: Path, env: dict[str, str]) -> LabServer:
    """Start JupyterLab serving ``root``; its settings, workspaces and logs go to ``state``."""
    port = free_port()
    log = state / "jupyterlab.log"
    news = (
        state
        / "settings"
        / "@jupyterlab"
        / "apputils-extension"
        / "notification.jupyterlab-settings"
    )
    news.parent.mkdir(parents=True, exist_ok=True)
    # no pop-up over the widgets
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # every cell in the page, as a learner scrolling sees them: JupyterLab 4 otherwise renders only
    # the cells near the viewport, so the n-th rendered cell is not the notebook's n-th cell
    tracker = (
        state / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    )
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
        f"--LabApp.user_settings_dir={state / 'settings'}",
    ]
    env = dict(env, JUPYTER_RUNTIME_DIR=str(state / "runtime"))
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = LabServer(root, port, process, log)
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with status {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            urllib.request.urlopen(f"{server.url}/api/status", timeout=5)
            return server
        except OSError:
            time.sleep(0.25)
    server.stop()
    raise RuntimeError(
        f"JupyterLab did not answer within {STARTUP_LIMIT_S} s:\n{log.read_text()[-3000:]}"
    )


# --- the page ---------------------------------------------------------------------------------

_CURRENT = "window.jupyterapp.shell.currentWidget"
_KERNEL = f"{_CURRENT}?.sessionContext?.session?.kernel"


@dataclass
class BrowserLog:
    """Console errors and uncaught page errors seen since the page opened (or since ``take``)."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on(
            "console", lambda message: message.type == "error" and self.errors.append(message.text)
        )
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def take(self) -> list[str]:
        taken, self.errors = self.errors, []
        return taken


def open_lab(page: Page, server: LabServer, limit_s: float = 120) -> None:
    """Load the JupyterLab page and wait until the application has started."""
    page.goto(f"{server.url}/lab", timeout=limit_s * 1000)
    page.wait_for_function(
        "window.jupyterapp && window.jupyterapp.started !== undefined", timeout=limit_s * 1000
    )
    page.evaluate("window.jupyterapp.started")
    page.wait_for_function(
        "window.jupyterapp.shell && document.querySelector('#jp-main-dock-panel')",
        timeout=limit_s * 1000,
    )


class NotebookTab:
    """One open notebook: open, run all, wait for the kernel, read outputs, close."""

    def __init__(self, page: Page, path: str):
        self.page, self.path = page, path

    def open(self, limit_s: float) -> None:
        """Open the notebook (a fresh kernel starts) and wait until the kernel is idle."""
        panel_id = self.page.evaluate(
            "async path => { const w = await window.jupyterapp.commands.execute('docmanager:open', "
            "{path}); await w.context.ready; await w.sessionContext.ready; return w.id; }",
            self.path,
        )
        self.node = self.page.locator(f"[id='{panel_id}']")
        self.page.evaluate("id => window.jupyterapp.shell.activateById(id)", panel_id)
        self.wait_idle(limit_s)

    def _eval(self, body: str):
        """Evaluate ``body`` with ``panel`` bound to this notebook's panel."""
        return self.page.evaluate(
            "([path, body]) => { const panel = [...window.jupyterapp.shell.widgets('main')]"
            ".find(w => w.context && w.context.path === path); return new "
            "Function('panel', body)(panel); }",
            [self.path, body],
        )

    def kernel_status(self) -> str:
        return self._eval("return panel.sessionContext.session?.kernel?.status ?? 'none'")

    def dirty(self) -> bool:
        return self._eval("return panel.context.model.dirty")

    def prompts(self) -> list[str]:
        """The input prompt of each code cell, e.g. '[3]:', '[*]:' (queued or running), '[ ]:' (not
        run)."""
        return self._eval(
            "return panel.content.widgets.filter(c => c.model.type === 'code')"
            ".map(c => c.node.querySelector('.jp-InputPrompt')?.textContent.trim() ?? '')"
        )

    def wait_idle(self, limit_s: float, settle_s: float = 0.5) -> None:
        """Wait until no cell is queued or running and the kernel has been idle for ``settle_s``."""
        deadline = time.monotonic() + limit_s
        idle_since = None
        while time.monotonic() < deadline:
            busy = self.kernel_status() != "idle" or any("*" in prompt for prompt in self.prompts())
            if busy:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= settle_s:
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.path}: kernel still busy after {limit_s:.0f} s (prompts {self.prompts()})"
        )

    def run_all(self, limit_s: float) -> None:
        """Run > Run All Cells, then wait for the kernel to finish."""
        self._eval(
            "window.jupyterapp.shell.activateById(panel.id); "
            "return window.jupyterapp.commands.execute('notebook:run-all-cells')"
        )
        self.wait_idle(limit_s)

    def cell(self, index: int) -> Locator:
        """The rendered cell ``index`` (counting every cell, as in the .ipynb file)."""
        return self.node.locator(".jp-Notebook .jp-Cell").nth(index)

    def error_outputs(self) -> list[str]:
        """Every error (traceback) or stderr (warning) output of the notebook's cells, as 'cell N:
        text'."""
        return self._eval(
            "return panel.content.widgets.flatMap((cell, index) => cell.model.type !== 'code' ? [] "
            ": cell.model.outputs.toJSON().filter(o => o.output_type === 'error' || o.name === "
            "'stderr').map(o => `cell ${index}: ` + (o.output_type === 'error' ? "
            "o.traceback.join('\\n') : JSON.stringify(o.text))))"
        )

    def close(self) -> None:
        """Close the tab without saving and shut its kernel down."""
        self._eval(
            "panel.context.model.dirty = false; return panel.sessionContext.shutdown()"
            ".then(() => panel.dispose())"
        )
