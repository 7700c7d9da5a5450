"""`suite audit verify` and `suite model history`: MLflow's aliases against the audit trail
(:mod:`models.registry.audited` decides; this module reads MLflow)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from models.registry.audited import AliasReport, drift, expected, needs_tags, untracked
from models.registry.champion import ChampionChange, _history
from models.registry.store import client
from suite.audit.record import AuditRecord


def aliases(tracking_uri: str) -> dict[str, dict[str, str]]:
    """Every registered model's aliases in MLflow (model -> alias -> version)."""
    mc = client(tracking_uri)
    out: dict[str, dict[str, str]] = {}
    token: str | None = None
    while True:
        page = mc.search_registered_models(max_results=100, page_token=token)
        for rm in page:
            out[rm.name] = {str(k): str(v) for k, v in (rm.aliases or {}).items()}
        token = page.token
        if not token:
            return out


def histories(tracking_uri: str, names: Iterable[str]) -> dict[str, list[ChampionChange]]:
    """The history tags of ``names`` (for resolving records without a version)."""
    from mlflow.exceptions import MlflowException

    mc = client(tracking_uri)
    out: dict[str, list[ChampionChange]] = {}
    for name in names:
        try:
            out[name] = _history(mc, name)
        except MlflowException:  # a model gone from MLflow has no tags to offer
            out[name] = []
    return out


def check(records: Sequence[AuditRecord], tracking_uri: str) -> AliasReport:
    """The audit trail's aliases against MLflow's, for every model."""
    tags = histories(tracking_uri, needs_tags(records))
    want = expected(records, tags)
    have = aliases(tracking_uri)
    return AliasReport(len(want), tuple(drift(want, have)), tuple(untracked(want, have)))
