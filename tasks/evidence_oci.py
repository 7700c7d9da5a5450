"""Evidence in the registry, next to the image: OCI artifacts under cosign-style tags.

The platform's registry (distribution 2.8) has no referrers API, so each artifact is an OCI
image manifest with an ``artifactType``, an empty config, one layer holding the document and a
``subject`` naming the image (read by registries that do support referrers), tagged
``sha256-<hex>.<kind>`` — the tag scheme the OCI 1.1 spec gives as the fallback and cosign uses.
Plain HTTP: this speaks only to the platform's loopback registry.
"""

from __future__ import annotations

import hashlib
import json

import httpx

from suite.errors import ProviderError

EMPTY = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
KINDS = {
    "att": "application/vnd.dsse.envelope.v1+json",
    "sbom": "application/vnd.cyclonedx+json",
}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def artifact_tag(subject_digest: str, kind: str) -> str:
    return subject_digest.replace(":", "-") + f".{kind}"


def _base(repository: str) -> tuple[str, str]:
    host, _, name = repository.partition("/")
    return f"http://{host}/v2/{name}", host


def _upload(http: httpx.Client, base: str, data: bytes) -> dict[str, object]:
    digest = _digest(data)
    if http.head(f"{base}/blobs/{digest}").status_code != 200:
        start = http.post(f"{base}/blobs/uploads/")
        if start.status_code != 202:
            raise ProviderError(f"registry refused a blob upload ({start.status_code})")
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        put = http.put(f"{location}{sep}digest={digest}", content=data,
                       headers={"Content-Type": "application/octet-stream"})
        if put.status_code != 201:
            raise ProviderError(f"registry refused blob {digest} ({put.status_code})")
    return {"digest": digest, "size": len(data)}


def push_artifact(
    repository: str, subject_digest: str, kind: str, data: bytes, timeout: float = 30.0,
    auth: tuple[str, str] | None = None,
) -> str:
    """Push ``data`` as a ``kind`` artifact of ``repository@subject_digest``; return its tag.
    ``auth``: the registry login that may push (the platform's ``builder``)."""
    base, host = _base(repository)
    try:
        with httpx.Client(timeout=timeout, auth=auth) as http:
            head = http.head(f"{base}/manifests/{subject_digest}",
                             headers={"Accept": MANIFEST_TYPE + ", application/vnd.docker."
                                      "distribution.manifest.v2+json"})
            config = _upload(http, base, EMPTY)
            layer = _upload(http, base, data)
            manifest = {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "artifactType": KINDS[kind],
                "config": {"mediaType": EMPTY_TYPE, **config},
                "layers": [{"mediaType": KINDS[kind], **layer}],
                "subject": {"mediaType": head.headers.get("Content-Type", MANIFEST_TYPE),
                            "digest": subject_digest,
                            "size": int(head.headers.get("Content-Length", 0))},
                "annotations": {"org.opencontainers.image.title": kind},
            }
            tag = artifact_tag(subject_digest, kind)
            resp = http.put(f"{base}/manifests/{tag}", content=json.dumps(manifest).encode(),
                            headers={"Content-Type": MANIFEST_TYPE})
    except httpx.HTTPError as exc:
        raise ProviderError(f"pushing {kind} evidence to registry {host} failed: {exc}") from exc
    if resp.status_code != 201:
        raise ProviderError(f"registry {host} refused the {kind} artifact for {subject_digest}: "
                            f"{resp.status_code} {resp.text[:200]}")
    return tag


def fetch_artifact(
    repository: str, subject_digest: str, kind: str, timeout: float = 30.0,
    auth: tuple[str, str] | None = None,
) -> bytes | None:
    """The ``kind`` document stored for ``subject_digest``, or None when there is none.
    ``auth``: a registry login that may pull (the platform's ``puller``)."""
    base, host = _base(repository)
    try:
        with httpx.Client(timeout=timeout, auth=auth) as http:
            resp = http.get(f"{base}/manifests/{artifact_tag(subject_digest, kind)}",
                            headers={"Accept": MANIFEST_TYPE})
            if resp.status_code == 404:
                return None
            resp.raise_for_status()
            layer = resp.json()["layers"][0]
            blob = http.get(f"{base}/blobs/{layer['digest']}")
            blob.raise_for_status()
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        raise ProviderError(f"reading {kind} evidence from registry {host} failed: {exc}"
                            ) from exc
    if _digest(blob.content) != layer["digest"]:
        raise ProviderError(f"{kind} evidence blob from {host} does not match its digest")
    return blob.content
