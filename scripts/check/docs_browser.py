"""Opens the gateway's interactive API page in a real browser, as a reader would.

Usage: docs_browser.py GATEWAY_URL TOKEN EMAIL [SCREENSHOT.png]

Debian's chromium, headless, driven by Playwright (scripts/check/demo.sh installs both):
  - every operation of /api/openapi.json renders on /api/docs/, none more, none fewer;
  - "Authorize" takes the customer's bearer token;
  - "Try it out" + "Execute" on GET /api/products answers 200 with the catalog, and on
    GET /api/auth/me answers 200 with the token's user (sent with the token);
  - no request leaves 127.0.0.1: every asset is served by the gateway, no CDN; any
    other request is refused before it goes out, and fails the check;
  - the page logs no error to its console.
Exit status 0 when all hold; otherwise the first failure is printed.
"""

import json
import sys
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 15_000


def operations(gateway):
    """(METHOD, path) of every operation of the merged document."""
    with urllib.request.urlopen(f"{gateway}/api/openapi.json", timeout=10) as answer:
        document = json.load(answer)
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return {(m.upper(), path) for path, item in document["paths"].items() for m in item if m in methods}


def execute(page, op_id, expected_status):
    """Expands one operation, presses Try it out and Execute; the response body's text."""
    block = page.locator(f"#operations-{op_id}")
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text(str(expected_status), timeout=TIMEOUT_MS)
    return block.locator(".live-responses-table .response-col_description pre").first.inner_text()


def main():
    gateway, token, email = sys.argv[1], sys.argv[2], sys.argv[3]
    screenshot = sys.argv[4] if len(sys.argv) > 4 else None
    host = urllib.parse.urlsplit(gateway).hostname
    expected = operations(gateway)

    outside, console_errors, sent = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 2000})
        page.set_default_timeout(TIMEOUT_MS)

        def guard(route):
            url = route.request.url
            if urllib.parse.urlsplit(url).hostname == host:
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        page.route("**/*", guard)
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: sent.append((r.method, r.url, r.headers.get("authorization"))))

        check_operations(page, gateway, expected)
        authorize(page, token)
        try_it_out(page, token, email, sent)

        if screenshot:
            page.screenshot(path=screenshot, full_page=False)
        browser.close()

    if outside:
        fail(f"requests that would have left {host}: {outside}")
    print(f"docs page: {len(sent)} requests, all to {host}")
    if console_errors:
        fail(f"the page logged errors: {console_errors}")


def check_operations(page, gateway, expected):
    """Every operation of the document renders on the page, and no other."""
    page.goto(f"{gateway}/api/docs/")
    page.wait_for_selector(".opblock")
    page.wait_for_load_state("networkidle")
    rendered = set()
    for block in page.locator(".opblock").all():
        method = block.locator(".opblock-summary-method").inner_text().strip().upper()
        path = block.locator(".opblock-summary-path").get_attribute("data-path")
        rendered.add((method, path))
    if rendered != expected:
        fail(f"operations on the page differ from the document: missing {sorted(expected - rendered)}, "
             f"extra {sorted(rendered - expected)}")
    print(f"docs page: all {len(rendered)} operations render")


def authorize(page, token):
    """Authorize takes the bearer token."""
    page.locator("button.authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input[type=text], input[type=password]").first.fill(token)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done, button.close-modal").first.click()
    print("docs page: authorized with a bearer token")


def try_it_out(page, token, email, sent):
    """GET /api/products and GET /api/auth/me executed from the page, the latter with the token."""
    products = json.loads(execute(page, "products-list_products", 200))
    if products.get("total", 0) < 1:
        fail(f"GET /api/products from the page listed no product: {products}")
    print(f"docs page: GET /api/products answered 200 with {products['total']} products")

    me = json.loads(execute(page, "auth-me", 200))
    if me.get("email") != email:
        fail(f"GET /api/auth/me from the page answered another user: {me}")
    with_token = [u for m, u, auth in sent if u.endswith("/api/auth/me") and auth == f"Bearer {token}"]
    if not with_token:
        fail("GET /api/auth/me was not sent with the token")
    print(f"docs page: GET /api/auth/me (authorized) answered 200 for {email}")


def fail(message):
    print(f"docs page: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
