"""Browser tests: the portal on a loopback port, Debian Chromium, axe on every page."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from werkzeug.serving import make_server

from portal import create_app
from portal.cli.demo import DEMO_TOTP_SECRET, load_demo_accounts
from portal.consent.document_format import read_all
from portal.consent.documents import import_documents
from portal.core import audit
from portal.extensions import db
from tests.conftest import TEST_CONFIG, unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM.exists():
        unavailable(f"Debian Chromium not found at {CHROMIUM} (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url() -> None:
    """Replaces pytest-base-url's fixture (deprecated fixture style); pages use portal_page.goto."""
    return None


class LiveServer:
    """The real app served by Werkzeug on a free loopback port, in a background thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.app.extensions["portal.database"][0].dispose()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, sqlite_template) -> Iterator[LiveServer]:
    """One server per test module, on a migrated SQLite database holding the demo accounts."""
    directory = tmp_path_factory.mktemp("live")
    database = directory / "portal.db"
    shutil.copyfile(sqlite_template, database)
    app = create_app(
        {
            **TEST_CONFIG,
            "DATABASE_URL": f"sqlite:///{database}",
            "TESTING": False,
            "MFA_REQUIRED_FOR_STAFF": True,
        }
    )
    app.instance_path = str(directory)
    with app.app_context():
        report = import_documents(
            db.session, read_all(Path(app.config["CONSENT_DOCS_PATH"])), audit.SYSTEM
        )
        assert report.imported, "the shipped consent documents were imported"
        load_demo_accounts(db.session)
        db.session.commit()
    with LiveServer(app) as server:
        yield server


class CheckedPage:
    """A Playwright page whose every loaded document must pass axe (WCAG 2.2 A/AA)."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.loaded: list[str] = []
        self.checked = 0
        self.console_errors: list[str] = []
        page.on("load", lambda p: self.loaded.append(p.url))
        page.on("console", self._on_console)
        page.on("response", self._on_response)
        self._axe = Axe()

    def _on_console(self, message) -> None:
        # A 4xx document (a form with errors, a 404 page) is logged as a failed load: the
        # status is asserted by the tests; failed sub-resources are caught in _on_response.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.console_errors.append(message.text)

    def _on_response(self, response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.console_errors.append(f"{response.status} for {response.url}")

    def check_accessibility(self) -> None:
        self.page.wait_for_load_state("load")
        results = self._axe.run(
            self.page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS}}
        )
        assert results.violations_count == 0, (
            f"{self.page.url}: {results.violations_count} accessibility violations\n"
            + results.generate_report()
        )
        self.checked = len(self.loaded)

    def goto(self, path: str):
        response = self.page.goto(self.base_url + path)
        self.check_accessibility()
        return response

    def submit(self, button_name: str) -> None:
        """Press a button that submits a form, wait for the next page, check it."""
        with self.page.expect_navigation():
            self.page.get_by_role("button", name=button_name, exact=True).click()
        self.check_accessibility()

    def sign_in(self, email: str, password: str) -> None:
        """Sign in as a person would, with the demo key's code when a second step is asked.

        Fields are found by id, so this works in either language.
        """
        self.goto("/account/sign-in")
        self.page.locator("#email").fill(email)
        self.page.locator("#password").fill(password)
        self._press_main_button()
        if self.page.url.endswith("/account/two-factor"):
            self.page.locator("#code").fill(_fresh_demo_code(email))
            self._press_main_button()

    def _press_main_button(self) -> None:
        with self.page.expect_navigation():
            self.page.locator("main button.nhsuk-button").first.click()
        self.check_accessibility()

    def assert_all_pages_checked(self) -> None:
        assert self.checked == len(self.loaded), (
            f"pages loaded without an accessibility check: {self.loaded[self.checked :]}"
        )
        assert not self.console_errors, f"browser console errors: {self.console_errors}"


_last_step_used: dict[str, int] = {}


def _fresh_demo_code(email: str) -> str:
    """A code for a time step this account has not used yet (each code works only once)."""
    step = int(time.time() // 30)
    if _last_step_used.get(email, -1) >= step:
        time.sleep((step + 1) * 30 - time.time() + 0.5)
        step += 1
    _last_step_used[email] = step
    return pyotp.TOTP(DEMO_TOTP_SECRET).at(step * 30)


@pytest.fixture
def portal_page(page, live_server) -> Iterator[CheckedPage]:
    checked = CheckedPage(page, live_server.url)
    yield checked
    checked.assert_all_pages_checked()
