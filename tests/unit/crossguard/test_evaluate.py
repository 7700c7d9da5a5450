"""Enforcement from config, and the pure evaluation of all rules over resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.crossguard.evaluate import (
    ALL_RULES,
    ENFORCEMENT_FILE,
    blocking,
    evaluate,
    load_enforcement,
    parse_enforcement,
)
from policies.crossguard.rules import Enforcement, ResourceView, Severity
from suite.errors import ConfigError
from tests.unit.crossguard.helpers import urn

PUBLIC_CONTAINER = ResourceView("azure-native:storage:BlobContainer",
                                urn("azure-native:storage:BlobContainer", "models"),
                                {"publicAccess": "Container"})


def test_the_shipped_config_enables_every_rule() -> None:
    levels = load_enforcement(ENFORCEMENT_FILE)
    assert set(levels) == {rule.name for rule in ALL_RULES}
    assert levels["storage-no-public-access"] is Enforcement.MANDATORY
    assert levels["k8s-read-only-root-filesystem"] is Enforcement.ADVISORY


def test_all_sets_the_default_and_names_override_it() -> None:
    levels = parse_enforcement({"all": "advisory",
                                "storage-encryption-at-rest": {"enforcementLevel": "mandatory"}})
    assert levels["storage-encryption-at-rest"] is Enforcement.MANDATORY
    assert levels["required-tags"] is Enforcement.ADVISORY


@pytest.mark.parametrize(
    ("raw", "needle"),
    [({"no-such-policy": "advisory"}, "'no-such-policy' is not a CrossGuard policy (known: "),
     ({"required-tags": "warn"}, "enforcement for 'required-tags' is 'warn' (expected one of"),
     ({"all": {"enforcementLevel": "block"}}, "enforcement for 'all' is 'block'")],
)
def test_bad_enforcement_config_names_the_key(raw: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_enforcement(raw)
    assert needle in str(err.value)


def test_unreadable_config_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_enforcement(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_enforcement(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text(json.dumps(["mandatory"]))
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        load_enforcement(tmp_path / "list.json")


def test_a_public_container_is_a_blocking_violation_with_its_controls() -> None:
    (violation,) = evaluate([PUBLIC_CONTAINER])
    assert violation.rule == "storage-no-public-access"
    assert violation.urn == PUBLIC_CONTAINER.urn
    assert violation.severity is Severity.CRITICAL
    assert violation.blocking
    text = violation.describe()
    for control in ("SOC 2 CC6.1", "HIPAA 164.312(a)(1)", "GDPR Art. 25", "ISO 27001 A.8.3"):
        assert control in text
    assert "Fix: " in text


def test_advisory_violations_do_not_block_and_disabled_rules_do_not_run() -> None:
    advisory = evaluate([PUBLIC_CONTAINER],
                        enforcement={"storage-no-public-access": Enforcement.ADVISORY})
    assert [v.enforcement for v in advisory] == [Enforcement.ADVISORY]
    assert blocking(advisory) == []
    assert evaluate([PUBLIC_CONTAINER],
                    enforcement={"storage-no-public-access": Enforcement.DISABLED}) == []


def test_every_rule_maps_to_all_four_frameworks_and_has_a_fix() -> None:
    for rule in ALL_RULES:
        frameworks = {str(c.framework) for c in rule.controls}
        assert frameworks == {"SOC 2", "HIPAA", "GDPR", "ISO 27001"}, rule.name
        assert rule.remediation and rule.description, rule.name
