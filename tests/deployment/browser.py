"""Debian's chromium, as the UI tests drive it through Playwright: where it is and how it starts."""

from __future__ import annotations

import os
import shutil

import pytest

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
