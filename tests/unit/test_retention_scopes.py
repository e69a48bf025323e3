"""Which executions each retention setting governs: the most specific key wins."""

from __future__ import annotations

from pathlib import Path

from pausepoint.service.retention import retention_scopes
from pausepoint.testing import fast_settings

DAY = 86400.0


def test_each_key_leaves_out_what_a_more_specific_key_governs(tmp_path: Path) -> None:
    retention = {
        "*": "P90D",
        "acme": "P30D",
        "acme/prod": "P365D",
        "acme/prod.eu": "P1D",
        "acme/production": "P2D",
        "globex": "PT1H",
    }
    settings = fast_settings(tmp_path / "x.db", retention=retention, audit_retention="P400D")
    now = 1_000_000_000.0
    scopes = dict(retention_scopes(settings, now))
    assert scopes["*"].org_id is None and scopes["*"].ended_before == now - 90 * DAY
    assert set(scopes["*"].excluded) == {
        ("acme", None),
        ("acme", "prod"),
        ("acme", "prod.eu"),
        ("acme", "production"),
        ("globex", None),
    }
    assert set(scopes["acme"].excluded) == {
        ("acme", "prod"),
        ("acme", "prod.eu"),
        ("acme", "production"),
    }
    # "production" is not below "prod": a namespace prefix ends at a dot.
    assert scopes["acme/prod"].excluded == (("acme", "prod.eu"),)
    assert scopes["acme/prod"].namespace == "prod" and scopes["acme/prod"].org_id == "acme"
    assert scopes["acme/prod.eu"].excluded == () and scopes["globex"].excluded == ()
    assert all(scope.audit_before == now - 400 * DAY for scope in scopes.values())


def test_no_retention_setting_purges_nothing(tmp_path: Path) -> None:
    assert retention_scopes(fast_settings(tmp_path / "x.db"), 0.0) == []
