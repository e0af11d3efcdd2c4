"""Automation: rules (event → conditions → actions), business hours and auto-replies.

Kept import-light: `automation.outbox`, which registers a before-commit hook of `actions/base.py`
when imported, is imported by every process that runs the app or the workers.
"""
