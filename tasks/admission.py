"""Admission: only what this release's build stage built, signed and pushed ever runs.

Before any container of a release starts (its tests, its canary, its stable replicas), the
image is checked: named by digest (the digest the push itself reported, never a tag read
back), with a provenance envelope for that very digest signed by the build identity's key
(``suite-provenance``), naming the suite's builder, and built from the release's commit of
its checkout of the registered repository. Anything else — a look-alike pushed under the same
tag, an image pushed from outside the build stage, provenance of another commit — is refused
with an ``admission.refused`` audit record naming every failed check, and the release fails
before it has started a thing.
"""

from __future__ import annotations

from typing import Any

import hvac
from prefect import task
from prefect.cache_policies import NO_CACHE

from suite import audit
from suite.errors import DeployError
from suite.settings import Settings
from tasks.evidence import Check, VerifyReport, verify_image

ACTOR = "admission"


def check(settings: Settings, image: str, *, commit: str, source: str,
          vault: hvac.Client | None = None) -> VerifyReport:
    """Every admission check of ``image`` (``repository@sha256:…``), passed or failed."""
    if "@sha256:" not in image:
        return VerifyReport(image, "", (Check(
            "digest", False, f"{image!r} names no digest: a release runs the image its build "
                             f"pushed, by digest (repository@sha256:…), never a tag"),))
    if vault is None:
        from suite import vault as vault_mod

        vault = vault_mod.client(settings)
    return verify_image(settings, image, vault, commit=commit, source=source)


def admit(settings: Settings, image: str, *, service: str, release: str, commit: str,
          source: str, vault: hvac.Client | None = None) -> VerifyReport:
    """:func:`check`, and on any failure an ``admission.refused`` record and a DeployError
    that names each failed check."""
    report = check(settings, image, commit=commit, source=source, vault=vault)
    if report.ok:
        return report
    inputs: dict[str, Any] = {"service": service, "release": release, "image": image,
                              "commit": commit, "failed": report.failures}
    audit.append(settings, actor=ACTOR, action="admission.refused", subject=image,
                 inputs=inputs, outcome="refused")
    raise DeployError(f"{image} is not admitted for release {release} of {service}: "
                      + "; ".join(report.failures))


@task(name="admit", cache_policy=NO_CACHE)
def admit_task(settings: Settings, image: str, service: str, release: str, commit: str,
               source: str) -> list[str]:
    """The release's admission stage; returns the checks that passed (for the report)."""
    report = admit(settings, image, service=service, release=release, commit=commit,
                   source=source)
    return [f"{c.name}: {c.detail}" for c in report.checks]
