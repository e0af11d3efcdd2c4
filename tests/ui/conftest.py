"""Browser fixtures (see helpers.py): one headless chromium per session, one context per test."""

from playwright.async_api import expect

from tests.ui.helpers import browser, context

# Assertions wait for live updates that cross the delivery worker and the SSE stream; on a
# loaded two-core CI machine Playwright's 5 s default proved too short. Waiting longer changes
# nothing when the page is right, and a wrong page still fails.
expect.set_options(timeout=15_000)

__all__ = ["browser", "context"]
