"""The gallery behind an API token, and cross-site forms, in a real headless Chromium (the same
browser and skip rules as tests/test_gallery_browser.py; a module of its own because Playwright's
sync API cannot be started twice in one module's fixtures)."""

from __future__ import annotations

import httpx
from test_api import build_index
from test_gallery_browser import CHROMIUM, FLAGS, sync_playwright, thumbnails_loaded

from pixdex.api.app import create_app
from pixdex.api.server import BackgroundServer
from pixdex.config import Settings

TOKEN = "gallery-test-token-0123456789"


def _evil_site(target: str):
    """Another local web app (another port: same *site* for the browser, so SameSite cookies
    go along) whose page posts to pixdex the ways a page can without CORS: an auto-submitted
    text/plain form, an urlencoded form, and a no-cors fetch."""
    import http.server
    import threading

    page = f"""<!doctype html><html><body>
<form id=plain method=POST enctype=text/plain target=f1
      action="{target}/rekognition/detect-labels">
  <input name='{{"Image": {{"Bytes": "' value='AAAA"}}}}'></form>
<form id=url method=POST target=f2 action="{target}/webhooks/minio">
  <input name=Records value=x></form>
<iframe name=f1></iframe><iframe name=f2></iframe>
<script>
  document.getElementById('plain').submit();
  document.getElementById('url').submit();
  fetch('{target}/rekognition/detect-labels',
        {{method: 'POST', mode: 'no-cors', credentials: 'include', body: '{{}}'}});
</script></body></html>""".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_token_via_query_then_cookie_and_cross_site_posts_refused(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gallery-token")
    index, records = build_index(tmp / "index.db")
    settings = Settings(index=index.location, cache_dir=tmp / "cache", serve={"api_token": TOKEN})
    app = create_app(settings, index)
    with BackgroundServer(app) as server, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(15_000)
        refused = page.goto(server.url + "/")
        assert refused is not None and refused.status == 401
        page.goto(f"{server.url}/?token={TOKEN}&q=dog")
        thumbnails_loaded(page, 4)  # the cookie carried the token to fetch() and <img>
        assert "token" not in page.url and "q=dog" in page.url  # out of the address bar
        page.goto(server.url + "/")  # no token in the address: the cookie is enough
        thumbnails_loaded(page, 4)

        evil = _evil_site(server.url)
        try:
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
            page.wait_for_timeout(1500)
        finally:
            evil.shutdown()
        context.close()
        metrics = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        ).text
    index.close()
    refusals = [
        line
        for line in metrics.splitlines()
        if line.startswith('pixdex_http_requests_total{method="POST"')
    ]
    # every POST the page made was refused by the guard (cross-site), none reached a route
    assert refusals and all('path="<unmatched>"' in line for line in refusals), refusals
    assert all('status="403"' in line or 'status="415"' in line for line in refusals), refusals
    assert sum(float(line.rsplit(" ", 1)[1]) for line in refusals) >= 3
    print("cross-site POSTs from Chromium:", "; ".join(refusals))
