"""Browser fixtures (see helpers.py): one headless chromium per session, one context per test."""

from tests.ui.helpers import browser, context

__all__ = ["browser", "context"]
