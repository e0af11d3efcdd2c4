"""Automation: rules (event → conditions → actions), business hours and auto-replies.

Kept import-light: `actions/base.py` imports `automation.outbox` on every transaction.
"""
