"""The "Videos" tab of a DAG run and of a task instance, in a real api-server, driven in chromium.

Opens the finished run's page, clicks its "Videos" tab and checks the iframe lists the three
stored videos with a player each, and the note for the one whose file was deleted; seeks one
video (``currentTime`` set, ``seeked`` fired, frames decoded) and checks the browser's range
requests got 206 answers; follows the UI into dark mode. Then the task instance tab of one mapped
instance. Screenshots land in ``artifacts/ui/videos/``. Authorisation is left to the unit tests:
with ``simple_auth_manager_all_admins``, which these deployments use, Airflow 3.3 makes every
request an admin's, with a session or without.

Debian's chromium through Playwright, as in the connection-form UI test; skipped without it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from ..browser import chromium_or_skip, open_page
from ..stack import ARTIFACTS
from .conftest import DAG_ID, DELETED, PROMPTS, VideosRun

if TYPE_CHECKING:
    from playwright.sync_api import Frame, Page

pytestmark = pytest.mark.deployment

SCREENSHOTS = ARTIFACTS / "ui" / "videos"
#: The players start without a click.
AUTOPLAY = ["--autoplay-policy=no-user-gesture-required"]
#: Seek the first available player to the middle once it has its metadata; answer what it reached.
SEEK = """async () => {
  const video = document.querySelector("video");
  const once = name => new Promise(done => video.addEventListener(name, done, {once: true}));
  if (video.readyState < 1) await once("loadedmetadata");
  const target = video.duration / 2;
  const seeked = once("seeked");
  video.currentTime = target;
  await seeked;
  if (video.readyState < 2) await once("loadeddata");
  return {target, currentTime: video.currentTime, duration: video.duration, readyState: video.readyState,
          width: video.videoWidth, height: video.videoHeight, error: video.error && video.error.code};
}"""


#: Whether the view turns dark within 30 s. Not wait_for_function: its polling compiles the predicate
#: with eval(), which the view's Content-Security-Policy refuses.
TURNS_DARK = """() => new Promise(done => {
  const root = document.documentElement;
  if (root.dataset.theme === "dark") return done(true);
  new MutationObserver(() => root.dataset.theme === "dark" && done(true)).observe(root, {attributes: true});
  setTimeout(() => done(false), 30000);
})"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary; checked before the deployment starts, so a missing browser costs nothing."""
    return chromium_or_skip()


@pytest.fixture
def page(chromium: str, videos_run: VideosRun) -> Iterator[Page]:
    from playwright.sync_api import expect

    # Generous waits: a loaded machine renders Airflow's UI slowly (the default is 5 s).
    expect.set_options(timeout=60_000)
    with open_page(chromium, SCREENSHOTS, height=1000, timeout_ms=60_000, extra_args=AUTOPLAY) as opened:
        yield opened


def view_frame(page: Page, path: str) -> Frame:
    """The Videos view's iframe, once its document (not the first about:blank) has loaded."""
    iframe = page.wait_for_selector(f'iframe[src*="{path}"]')
    assert iframe is not None
    frame = iframe.content_frame()
    assert frame is not None
    frame.wait_for_url(re.compile(re.escape(path)))
    frame.wait_for_load_state()
    return frame


def open_videos_tab(page: Page) -> None:
    from playwright.sync_api import expect

    tab = page.get_by_role("link", name="Videos", exact=True)
    try:
        expect(tab).to_be_visible()
    except AssertionError:
        page.screenshot(path=str(SCREENSHOTS / "no-videos-tab.png"))
        raise
    tab.click()


def settle(page: Page) -> None:
    with contextlib.suppress(Exception):
        page.wait_for_load_state("networkidle", timeout=10_000)


def test_run_and_task_instance_tabs_play_and_seek(page: Page, videos_run: VideosRun) -> None:
    from playwright.sync_api import expect

    dep, run_id = videos_run.dep, videos_run.run_id
    media: list[dict[str, Any]] = []
    page.on(
        "response",
        lambda r: (
            media.append({"url": r.url, "status": r.status, "range": r.request.headers.get("range")})
            if "/veo/play/" in r.url
            else None
        ),
    )

    # All users are admins ([core] simple_auth_manager_all_admins): the login page the UI would send
    # us to sets the session cookie at once (Airflow 3.1 then lands on the home page, not the run's).
    page.goto(f"{dep.url}/auth/token/login")
    assert any(cookie["name"] == "_token" for cookie in page.context.cookies())
    page.goto(f"{dep.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}")
    open_videos_tab(page)
    page.wait_for_url(re.compile(r"/plugin/veo-videos$"))
    frame = view_frame(page, "veo/runs/")

    cards = frame.locator("article.video")
    expect(cards).to_have_count(len(PROMPTS))
    expect(frame.locator("video")).to_have_count(len(PROMPTS) - 1)
    missing = cards.nth(DELETED)
    expect(missing.get_by_role("note")).to_have_text("The recorded file no longer exists.")
    for index, prompt in enumerate(PROMPTS):
        expect(cards.nth(index).locator("header")).to_contain_text(f"generate_video [{index}]")
        expect(cards.nth(index).locator(".prompt")).to_have_text(prompt)
    first = videos_run.results[0]
    expect(cards.nth(0)).to_contain_text(f"{first['bytes']:,} bytes")
    expect(cards.nth(0).get_by_role("link", name="Download")).to_have_attribute(
        "href", re.compile("/veo/download/")
    )

    seek = frame.evaluate(SEEK)
    assert seek["error"] is None, seek
    assert seek["readyState"] >= 2 and seek["width"] > 0 and seek["height"] > 0, seek
    assert abs(seek["currentTime"] - seek["target"]) < 0.5, seek
    settle(page)
    page.screenshot(path=str(SCREENSHOTS / "01-run-videos-tab.png"))
    assert any(m["status"] == 206 and m["range"] for m in media), media
    assert all(m["status"] in (200, 206) for m in media), media

    # Download: a click saves the file where the UI's iframe sandbox allows downloads (Airflow 3.3);
    # Airflow 3.1's does not, and the view says to open the link in a new tab instead.
    link = cards.nth(0).get_by_role("link", name="Download")
    sandbox = page.locator('iframe[src*="veo/runs/"]').get_attribute("sandbox")
    if sandbox is None or "allow-downloads" in sandbox.split():
        with page.expect_download() as saving:
            link.click()
        saved = saving.value
        assert saved.suggested_filename == Path(str(first["uri"])).name
        assert Path(saved.path()).stat().st_size == first["bytes"]
    else:
        expect(cards.nth(0).locator(".download-hint")).to_be_visible()
        response = page.request.get(link.evaluate("a => a.href"))
        assert response.status == 200 and len(response.body()) == first["bytes"]
        assert response.headers["content-disposition"].startswith("attachment")

    # The view follows the UI into dark mode (the UI follows the system's by default).
    assert frame.evaluate("document.documentElement.dataset.theme") == "light"
    page.emulate_media(color_scheme="dark")
    assert frame.evaluate(TURNS_DARK), "the view stayed light"
    page.screenshot(path=str(SCREENSHOTS / "02-run-videos-tab-dark.png"))
    page.emulate_media(color_scheme="light")

    # The task instance tab of one mapped instance shows its video only.
    page.goto(f"{dep.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/generate_video/mapped/1")
    open_videos_tab(page)
    page.wait_for_url(re.compile(r"/plugin/veo-task-videos$"))
    frame = view_frame(page, "veo/tasks/")
    expect(frame.locator("article.video")).to_have_count(1)
    expect(frame.locator("article.video header")).to_contain_text("generate_video [1]")
    expect(frame.locator(".prompt")).to_have_text(PROMPTS[1])
    settle(page)
    page.screenshot(path=str(SCREENSHOTS / "03-task-instance-videos-tab.png"))

    print(f"\nvideos view screenshots in {SCREENSHOTS}; media responses: {media}")
