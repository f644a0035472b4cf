"""`lojal preview`: every campaign x locale x sample customer as web pages.

A page shows the subject, preheader, the e-mail at desktop (640 px) and mobile (375 px) width and
its text part. `serve` runs a local server (stdlib http.server) that rebuilds the pages when a file
under config/ or templates/ changes (mtimes polled) and reloads the browser; `--out DIR` writes
the same pages as static files. Sample customers come from the store when it has data: one real
customer per campaign and locale who is in the audience tonight (lojal.render.store_samples);
only an empty store gets the built-in samples (lojal.render.samples). The index lists each
template's problems per locale.
"""

from __future__ import annotations

import html
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lojal.config import LOCALES, check_config
from lojal.errors import HeaderInjectionError, Problem, RenderError
from lojal.paths import Paths
from lojal.render.catalog import missing_translations
from lojal.render.samples import sample_context, samples_for
from lojal.render.store_samples import StoreSample, store_samples
from lojal.render.templates import RenderedEmail, compile_templates

DESKTOP_WIDTH = 640
MOBILE_WIDTH = 375
VERSION_PATH = "/__version"
POLL_SECONDS = 0.5


@dataclass
class PreviewSite:
    """The preview as files: site-relative path -> (content type, bytes)."""

    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def views(self) -> int:
        return sum(1 for path in self.files if path.startswith("view/"))

    def add(self, path: str, content: str, content_type: str = "text/html; charset=utf-8") -> None:
        self.files[path] = (content_type, content.encode("utf-8"))


@dataclass(frozen=True)
class PreviewEntry:
    campaign_id: str
    campaign_name: str
    template: str
    locale: str
    sample: str
    email: RenderedEmail | None
    error: str | None
    problems: tuple[Problem, ...] = ()  # of this template in this locale (compile errors, translations)

    @property
    def slug(self) -> str:
        return f"{self.campaign_id}/{self.locale}/{self.sample}"


NO_SAMPLES = object()  # build_site(samples=...): do not look into the store


def build_site(paths: Paths, live: bool = False, samples=None) -> PreviewSite:
    """Render every preview page; broken config or templates give a page listing the problems.
    `samples`: store samples already drawn (see store_samples), NO_SAMPLES for the built-in ones,
    None to draw them now."""
    site = PreviewSite()
    config, problems = check_config(paths)
    entries: list[PreviewEntry] = []
    if config is not None:
        result = compile_templates(paths, config)
        problems = [p for p in result.problems if p.severity == "error"]
        notes = problems + [w for catalog in result.catalogs.values() for w in missing_translations(catalog)]
        real = store_samples(paths, config) if samples is None else (None if samples is NO_SAMPLES else samples)
        for campaign in config.campaigns.enabled:
            for locale in LOCALES:
                own = _problems_for(notes, campaign.template, locale)
                if real is None:
                    for sample in samples_for(config, campaign, locale):
                        entries.append(_render_entry(result.template_set, campaign, locale, sample, own))
                else:
                    entries.append(_store_entry(result.template_set, campaign, locale, real.get((campaign.id, locale)), own))
    site.problems = problems
    site.add("index.html", _index_page(entries, problems, live))
    for entry in entries:
        site.add(f"view/{entry.slug}.html", _view_page(entry, live))
        if entry.email is not None:
            site.add(f"email/{entry.slug}.html", entry.email.html)
            site.add(f"text/{entry.slug}.txt", entry.email.text, "text/plain; charset=utf-8")
    return site


_LOCALE_MENTION = re.compile(r"\((en|nb|sv|da)\)|no (en|nb|sv|da) translation")


def _problems_for(problems: list[Problem], template: str, locale: str) -> tuple[Problem, ...]:
    """The problems of files `template` uses (its folder and _shared) that concern `locale`."""
    own = []
    for problem in problems:
        if f"templates/{template}/" not in problem.path and "templates/_shared/" not in problem.path:
            continue
        mention = _LOCALE_MENTION.search(problem.message)
        if mention is None or locale in mention.groups():
            own.append(problem)
    return tuple(own)


def _store_entry(templates, campaign, locale: str, sample: StoreSample | None, problems) -> PreviewEntry:
    if sample is None:
        return PreviewEntry(campaign.id, campaign.name, campaign.template, locale, "nobody", None,
                            f"no customer with locale {locale} is in this campaign's audience tonight", problems)
    return _render_context(templates, campaign, locale, sample.key, sample.context, problems)


def _render_entry(templates, campaign, locale: str, sample, problems=()) -> PreviewEntry:
    return _render_context(templates, campaign, locale, sample.key, sample_context(campaign, sample), problems)


def _render_context(templates, campaign, locale: str, key: str, context: dict, problems) -> PreviewEntry:
    email, error = None, None
    if (campaign.template, locale) not in templates.compiled:
        error = "this template did not compile; see the problems on the index page"
    else:
        try:
            email = templates.render(campaign.template, locale, context)
        except (RenderError, HeaderInjectionError) as exc:
            error = str(exc)
    return PreviewEntry(campaign.id, campaign.name, campaign.template, locale, key, email, error, tuple(problems))


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
table.list td, table.list th { padding: 4px 12px; text-align: left; vertical-align: top; }
.problems { background: #fff0f0; border: 1px solid #d88; padding: 8px 16px; white-space: pre-wrap; }
.meta dt { font-weight: 600; } .meta dd { margin: 0 0 8px 0; }
.frames { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.frames figure { margin: 0; max-width: 100%; overflow-x: auto; }
.frames iframe { border: 1px solid #ccc; background: #fff; height: 1400px; }
.issues { margin: 0; padding-left: 16px; color: #a33; font-size: 90%; }
@media (max-width: 700px) { body { margin: 8px; } table.list td, table.list th { padding: 4px; }
  .frames figure#desktop-frame { display: none; } }
pre.text { background: #fff; border: 1px solid #ccc; padding: 12px; white-space: pre-wrap; max-width: 1040px; }
"""

_RELOAD_SCRIPT = f"""
<script>
(function () {{
  var seen = null;
  function poll() {{
    fetch('{VERSION_PATH}', {{cache: 'no-store'}}).then(function (r) {{ return r.text(); }}).then(function (v) {{
      if (seen !== null && v !== seen) {{ location.reload(); }}
      seen = v;
    }}).catch(function () {{}}).finally(function () {{ setTimeout(poll, 1000); }});
  }}
  poll();
}})();
</script>
"""


def _page(title: str, body: str, live: bool, root: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
            f'<style>{_STYLE}</style></head><body><p><a href="{root}index.html">All previews</a></p>{body}'
            f'{_RELOAD_SCRIPT if live else ""}</body></html>')


def _problems_html(problems: list[Problem]) -> str:
    if not problems:
        return ""
    return f'<div class="problems" id="problems">{html.escape(chr(10).join(map(str, problems)))}</div>'


def _index_page(entries: list[PreviewEntry], problems: list[Problem], live: bool) -> str:
    rows = []
    for entry in entries:
        subject = html.escape(entry.email.subject) if entry.email else f'<em>{html.escape(entry.error or "")}</em>'
        issues = "".join(f"<li>{html.escape(str(p))}</li>" for p in entry.problems)
        rows.append(f'<tr><td>{html.escape(entry.campaign_id)}</td><td>{entry.locale}</td>'
                    f'<td><a href="view/{entry.slug}.html">{html.escape(entry.sample)}</a></td><td>{subject}</td>'
                    f'<td>{f"<ul class=issues>{issues}</ul>" if issues else ""}</td></tr>')
    table = ('<table class="list"><tr><th>Campaign</th><th>Locale</th><th>Sample customer</th><th>Subject</th>'
             '<th>Problems</th></tr>'
             + "".join(rows) + "</table>")
    body = f"<h1>E-mail previews</h1>{_problems_html(problems)}{table}"
    return _page("Lojal previews", body, live, "")


def _view_page(entry: PreviewEntry, live: bool) -> str:
    root = "../../../"
    title = f"{entry.campaign_id} · {entry.locale} · {entry.sample}"
    if entry.email is None:
        body = f"<h1>{html.escape(title)}</h1><div class=\"problems\">{html.escape(entry.error or '')}</div>"
        return _page(title, body, live, root)
    email = entry.email
    src = f"{root}email/{entry.slug}.html"
    frames = "".join(
        f'<figure id="{label.lower()}-frame"><figcaption>{label} ({width} px)</figcaption>'
        f'<iframe id="{label.lower()}" title="{label}" src="{src}" width="{width}" sandbox="{FRAME_SANDBOX}"></iframe></figure>'
        for label, width in (("Desktop", DESKTOP_WIDTH), ("Mobile", MOBILE_WIDTH)))
    body = (f"<h1>{html.escape(title)}</h1><dl class=\"meta\">"
            f"<dt>Subject</dt><dd id=\"subject\">{html.escape(email.subject)}</dd>"
            f"<dt>Preheader</dt><dd id=\"preheader\">{html.escape(email.preheader)}</dd>"
            f"<dt>Size</dt><dd>{len(email.html.encode()) / 1024:.1f} KB HTML</dd></dl>"
            f"<div class=\"frames\">{frames}</div><h2>Text part</h2><pre class=\"text\" id=\"text\">"
            f"{html.escape(email.text)}</pre>")
    return _page(title, body, live, root)


def draw_samples(paths: Paths):
    """Store samples for build_site (NO_SAMPLES for an empty store; None when the config is broken)."""
    config, _ = check_config(paths)
    if config is None:
        return None
    drawn = store_samples(paths, config)
    return NO_SAMPLES if drawn is None else drawn


def write_site(site: PreviewSite, out_dir: Path) -> int:
    """Write every page under `out_dir`; return the number of files written."""
    for relative, (_, content) in site.files.items():
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return len(site.files)


def watched_mtimes(paths: Paths) -> tuple[tuple[str, float], ...]:
    """(path, mtime) of every file the preview depends on: a change means rebuild."""
    files = [*paths.config_dir.glob("*.yaml"), *paths.templates_dir.rglob("*")]
    return tuple(sorted((str(p), p.stat().st_mtime) for p in files if p.is_file()))


# E-mails are shown in sandboxed frames: no scripts, a unique origin (they cannot read the preview
# or its server), links may open in a new tab. Served directly, an e-mail page gets the same
# sandbox from its Content-Security-Policy.
FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
EMAIL_CSP = ("sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; img-src * data:; "
             "style-src 'unsafe-inline' *; font-src * data:")


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values the server answers: its own address by name or number. Anything else is
    a page on another site reaching the server through DNS rebinding, and is refused."""
    names = {host, "localhost", "127.0.0.1", "[::1]"} if host in ("127.0.0.1", "localhost", "::1") else {host}
    return {f"{name}:{port}" for name in names} | ({*names} if port == 80 else set())


class PreviewServer:
    """Serves the preview and rebuilds it when a watched file changes."""

    def __init__(self, paths: Paths, host: str = "127.0.0.1", port: int = 8025):
        self.paths = paths
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.version = 0
        self._mtimes = watched_mtimes(paths)
        self._samples = draw_samples(paths)  # the store's samples, drawn once (restart to draw again)
        self.site = build_site(paths, live=True, samples=self._samples)
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._watcher = threading.Thread(target=self._watch, name="preview-watch", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.rebuild_if_changed()

    def rebuild_if_changed(self) -> bool:
        mtimes = watched_mtimes(self.paths)
        if mtimes == self._mtimes:
            return False
        site = build_site(self.paths, live=True, samples=self._samples)
        with self._lock:
            self._mtimes, self.site = mtimes, site
            self.version += 1
        return True

    def lookup(self, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if path == VERSION_PATH:
            return 200, "text/plain", str(self.version).encode()
        relative = path.lstrip("/") or "index.html"
        with self._lock:
            found = self.site.files.get(relative)
        if found is None:
            return 404, "text/plain", b"not found"
        return 200, found[0], found[1]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                host, port = server.httpd.server_address[:2]
                if (self.headers.get("Host") or "").lower() not in allowed_hosts(host, port):
                    status, content_type, body = 421, "text/plain", b"unknown Host: this preview answers only its own address"
                else:
                    status, content_type, body = server.lookup(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if self.path.lstrip("/").startswith("email/"):
                    self.send_header("Content-Security-Policy", EMAIL_CSP)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:
                return  # keep the terminal for the URL and rebuild notices

        return Handler

    def start(self) -> None:
        """Serve and watch in background threads (used by tests and `serve_forever`)."""
        self._watcher.start()
        threading.Thread(target=self.httpd.serve_forever, name="preview-http", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve_forever(self) -> None:
        self.start()
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

