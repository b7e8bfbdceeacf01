"""Test-wide settings."""

import pytest


@pytest.fixture(autouse=True)
def _no_default_result_store(monkeypatch):
    """`hdsl check` caches results in ./.hdsl-run by default; tests that fake the planner must
    not be answered from another test's store. Tests of the store pass --store explicitly."""
    monkeypatch.setenv("HDSL_STORE", "none")
