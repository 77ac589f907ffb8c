"""Debian's chromium, as the UI tests drive it through Playwright: where it is and how it starts."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: Headless chromium as root in a container, with none of its own calls to the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_or_skip() -> str:
    """The chromium binary (``VEO_CHROMIUM`` or on PATH), and Playwright; the test is skipped, saying
    how to install them, when either is missing."""
    path = os.environ.get("VEO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip(
            "chromium is not installed: the UI tests drive Debian's chromium "
            "(bash scripts/install_ci_system_packages.sh, or set VEO_CHROMIUM)"
        )
    pytest.importorskip("playwright.sync_api", reason="the UI tests need playwright (the dev group)")
    return path


@contextlib.contextmanager
def open_page(
    chromium: str, screenshots: Path, *, height: int, timeout_ms: int, extra_args: Sequence[str] = ()
) -> Iterator[Page]:
    """A page of a fresh headless chromium (:data:`CHROMIUM_ARGS` and ``extra_args``), 1400 px wide,
    waiting up to ``timeout_ms`` for anything; ``screenshots`` is emptied for the test's pictures. The
    browser is closed however the test ends."""
    from playwright.sync_api import sync_playwright

    shutil.rmtree(screenshots, ignore_errors=True)
    screenshots.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": height})
            context.set_default_timeout(timeout_ms)
            yield context.new_page()
        finally:
            browser.close()
