"""The HTML of the Videos view: one card per stored video, in Airflow's fonts and colours.

Everything shown is escaped; the page's only style and script are inline with a per-response nonce
that its Content-Security-Policy names, so nothing else can run in the UI's iframe. The script
follows the Airflow UI's light or dark mode (its ``dark`` class), else the system's, and shows a
hint by the download links where the UI's iframe sandbox blocks downloads (Airflow 3.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timezone
from html import escape

from airflow_provider_veo.ui.media import Check
from airflow_provider_veo.ui.recorded import RecordedVideo

#: Airflow 3's UI theme (Chakra UI): Inter, then the system's sans-serif; its gray and brand scales.
_STYLE = """
:root { color-scheme: light; --bg: #fff; --fg: oklch(0.18 0.03 251); --muted: oklch(0.45 0.055 251);
  --border: oklch(0.915 0.01 253); --card: oklch(0.985 0.004 253); --link: oklch(0.469 0.084 257.657);
  --note-bg: oklch(0.973 0.071 103.193); --note-fg: oklch(0.421 0.095 57.708); }
:root[data-theme=dark] { color-scheme: dark; --bg: oklch(0.11 0.025 251); --fg: oklch(0.955 0.006 253);
  --muted: oklch(0.75 0.025 252); --border: oklch(0.28 0.035 251); --card: oklch(0.18 0.03 251);
  --link: oklch(0.705 0.066 256.378); --note-bg: oklch(0.286 0.066 53.813);
  --note-fg: oklch(0.905 0.182 98.111); }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px; background: var(--bg); color: var(--fg); font-size: 14px; line-height: 1.5;
  font-family: Inter, ui-sans-serif, system-ui, -apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto,
  'Helvetica Neue', Arial, 'Noto Sans', sans-serif; }
h1 { font-size: 16px; font-weight: 600; margin: 0 0 12px; }
.summary { color: var(--muted); font-weight: 400; margin-left: 8px; }
.empty { padding: 32px; text-align: center; color: var(--muted); border: 1px dashed var(--border);
  border-radius: 6px; }
.videos { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 16px; }
.video { background: var(--card); border: 1px solid var(--border); border-radius: 6px; overflow: hidden; }
.video header { padding: 8px 12px; font-weight: 600; border-bottom: 1px solid var(--border); }
.video header .label { color: var(--muted); font-weight: 400; margin-left: 6px; }
video { display: block; width: 100%; aspect-ratio: 16 / 9; background: #000; }
.note { margin: 12px; padding: 8px 12px; border-radius: 6px; background: var(--note-bg);
  color: var(--note-fg); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; margin: 12px; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
.prompt { white-space: pre-wrap; }
a { color: var(--link); }
.download-hint { display: none; color: var(--muted); }
.downloads-blocked .download-hint { display: inline; }
code { font-family: SFMono-Regular, Menlo, Monaco, Consolas, 'Liberation Mono', 'Courier New', monospace;
  font-size: 12px; }
"""

_SCRIPT = """
(() => {
  const system = matchMedia("(prefers-color-scheme: dark)");
  let ui = null;
  try { if (window.parent !== window) ui = window.parent.document.documentElement; } catch (e) { ui = null; }
  const apply = () => {
    const followsUi = ui && (ui.classList.contains("dark") || ui.classList.contains("light"));
    const dark = followsUi ? ui.classList.contains("dark") : system.matches;
    document.documentElement.dataset.theme = dark ? "dark" : "light";
  };
  apply();
  // Airflow 3.1 frames the tab in a sandbox without "allow-downloads": a click would be dropped.
  const frame = window.frameElement;
  if (frame && frame.hasAttribute("sandbox") && !frame.sandbox.contains("allow-downloads")) {
    document.documentElement.classList.add("downloads-blocked");
  }
  system.addEventListener("change", apply);
  if (ui) new MutationObserver(apply).observe(ui, { attributes: true, attributeFilter: ["class"] });
})();
"""


#: Shown by each download link where the UI's iframe cannot download (see the script).
_DOWNLOAD_HINT = (
    ' <span class="download-hint">'
    "(Airflow's UI blocks downloads in this tab: open the link in a new tab)</span>"
)


@dataclass(frozen=True)
class Card:
    """One video as the page shows it: what was recorded, what is there now, and its URLs."""

    recorded: RecordedVideo
    check: Check
    play_url: str
    download_url: str


def content_security_policy(nonce: str) -> str:
    """Only this page's own style and script, videos from the api-server, framed by the UI only."""
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "media-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self'"
    )


def render(*, heading: str, cards: Sequence[Card], empty: str, nonce: str) -> str:
    """The whole HTML document."""
    total = sum(card.recorded.video["bytes"] for card in cards)
    count = f"{len(cards)} video{'s' * (len(cards) != 1)}, {_human_bytes(total)}" if cards else ""
    body = (
        f'<div class="videos">{"".join(_card(card) for card in cards)}</div>'
        if cards
        else f'<p class="empty">{escape(empty)}</p>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(heading)}</title>"
        f'<style nonce="{nonce}">{_STYLE}</style><script nonce="{nonce}">{_SCRIPT}</script></head>'
        f'<body><h1>{escape(heading)}<span class="summary">{escape(count)}</span></h1>{body}</body></html>'
    )


def _card(card: Card) -> str:
    recorded, video = card.recorded, card.recorded.video
    title = escape(recorded.task_id) + (f" [{recorded.map_index}]" if recorded.map_index >= 0 else "")
    label = f'<span class="label">{escape(recorded.label)}</span>' if recorded.label else ""
    if card.check.availability == "available":
        player = f'<video controls preload="metadata" src="{escape(card.play_url)}"></video>'
    else:
        player = f'<p class="note" role="note">{escape(card.check.reason)}</p>'
    width, height, duration = video.get("width"), video.get("height"), video.get("duration_seconds")
    rows = [
        ("Prompt", f'<span class="prompt">{escape(video.get("prompt") or "—")}</span>'),
        ("Model", escape(video.get("model") or "—")),
        ("Seconds", escape(video.get("seconds") or "—")),
        ("Size", escape(video.get("size") or "—")),
        ("Duration", f"{duration:.1f} s" if duration is not None else "—"),
        ("Resolution", f"{width} \N{MULTIPLICATION SIGN} {height}" if width and height else "—"),
        ("Bytes", f"{_human_bytes(video['bytes'])} ({video['bytes']:,} bytes)"),
        ("Stored", _when(recorded)),
        ("Video id", f"<code>{escape(video['video_id'])}</code>"),
        ("Location", f"<code>{escape(video.get('asset_uri') or video['uri'])}</code>"),
    ]
    if card.check.availability == "available":
        link = f'<a href="{escape(card.download_url)}" download>Download</a>'
        rows.append(("File", link + _DOWNLOAD_HINT))
    details = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<article class="video"><header>{title}{label}</header>{player}<dl>{details}</dl></article>'


def _when(recorded: RecordedVideo) -> str:
    stamp = recorded.stored_at.astimezone(timezone.utc)
    return f'<time datetime="{stamp.isoformat()}">{stamp:%Y-%m-%d %H:%M:%S} UTC</time>'


def _human_bytes(count: int) -> str:
    if count < 1000:
        return f"{count} bytes"
    size = count / 1000
    for unit in ("KB", "MB"):
        if size < 1000:
            return f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
