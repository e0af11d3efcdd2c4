"""The campaign and fallback loops on the test server, for the campaigns report."""

from tests.campaigns.conftest import campaign_workers

__all__ = ["campaign_workers"]
