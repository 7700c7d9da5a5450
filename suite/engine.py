"""The container engine through the Docker API: the platform's podman service or ``DOCKER_HOST``.

Builds and pushes report failure in different ways (a build raises, a push does not: its error
is only an ``errorDetail`` entry in the progress stream), so this module reads every stream to
the end and turns any error entry into a :class:`~suite.errors.ProviderError` carrying the
engine's own message. A build's digest is the one its push reported (``TAG: digest: sha256:…``,
:func:`push_pinned`), never the tag read back (anyone who could push may have moved it); the
registry's ``Docker-Content-Digest`` for the tag is read right after only as a cross-check, and
a difference stops the build.

The platform's registry answers nobody without credentials: a push goes as ``builder``, every
read (digests, pulls) as ``puller`` (:mod:`suite.platform.credentials`); the password travels
only in the ``auth_config`` or ``Authorization`` header, never in a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

from suite.errors import ConfigError, ProviderError, ServiceUnavailable
from suite.platform import credentials
from suite.settings import Settings


def socket_path(settings: Settings) -> Path:
    """Where the platform's engine (podman's Docker-API service) listens."""
    return settings.dir("engine", "podman.sock")


def ping(sock: Path, timeout: float = 2.0) -> bool:
    """True when a Docker-API engine answers ``/_ping`` on ``sock``."""
    try:
        transport = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(transport=transport, timeout=timeout) as http:
            return http.get("http://engine/_ping").status_code == 200
    except (httpx.HTTPError, OSError):
        return False

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def engine_url(settings: Settings) -> str:
    return settings.docker_host or f"unix://{socket_path(settings)}"


def client(settings: Settings, timeout: int = 600) -> docker.DockerClient:
    """A Docker SDK client for ``DOCKER_HOST`` when set, else the platform's podman socket."""
    url = engine_url(settings)
    if not settings.docker_host and not ping(socket_path(settings)):
        raise ServiceUnavailable(
            f"the container engine at {url} does not answer; start it with `suite up` "
            f"(or set DOCKER_HOST to a Docker engine)"
        )
    try:
        return docker.DockerClient(base_url=url, timeout=timeout)
    except docker.errors.DockerException as exc:
        raise ServiceUnavailable(f"cannot connect to the container engine at {url}: {exc}") from exc


def registry_address(settings: Settings) -> str:
    """``host:port`` of the platform's registry, as image references name it."""
    return f"{settings.host}:{settings.port('registry')}"


def registry_login(settings: Settings, repository: str, role: str) -> tuple[str, str] | None:
    """(user, password) of ``role`` when ``repository`` is in the platform's registry, else
    None: the platform's passwords are never sent to another registry."""
    if repository.partition("/")[0] != registry_address(settings):
        return None
    return credentials.registry_login(settings, role)


def docker_auth(settings: Settings, repository: str, role: str) -> dict[str, str] | None:
    """:func:`registry_login` as the Docker SDK's ``auth_config``."""
    login = registry_login(settings, repository, role)
    return {"username": login[0], "password": login[1]} if login else None


def _stream_errors(chunks: Iterable[Mapping[str, Any]], log: list[str]) -> list[str]:
    errors: list[str] = []
    for chunk in chunks:
        if "stream" in chunk:
            log.append(str(chunk["stream"]).rstrip("\n"))
        elif "status" in chunk:
            log.append(str(chunk["status"]))
        detail = chunk.get("errorDetail") or ({"message": chunk["error"]} if "error" in chunk
                                              else None)
        if detail:
            errors.append(str(detail.get("message", detail)).strip())
    return errors


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    log: tuple[str, ...]


def build(
    engine: docker.DockerClient,
    *,
    context: Path,
    dockerfile: str,
    tag: str,
    buildargs: Mapping[str, str] | None = None,
    nocache: bool = False,
    target: str = "",
) -> BuildResult:
    """Build ``context`` and tag the result; raise with the engine's last log lines on failure."""
    log: list[str] = []
    try:
        chunks = engine.api.build(
            path=str(context), dockerfile=dockerfile, tag=tag, buildargs=dict(buildargs or {}),
            rm=True, forcerm=True, decode=True, nocache=nocache, pull=False,
            **({"target": target} if target else {}),
        )
        errors = _stream_errors(chunks, log)
    except docker.errors.APIError as exc:
        errors = [str(exc.explanation or exc)]
    if errors:
        tail = "\n".join(log[-15:])
        raise ProviderError(f"build of {tag} failed: {'; '.join(errors)}\n{tail}")
    try:
        image = engine.images.get(tag)
    except docker.errors.ImageNotFound as exc:
        raise ProviderError(f"build of {tag} reported success but the image is missing") from exc
    return BuildResult(str(image.id), tuple(log))


def split_ref(ref: str) -> tuple[str, str]:
    """``host:port/repo:tag`` -> (``host:port/repo``, ``tag``); a missing tag is ``latest``."""
    name, _, digest = ref.partition("@")
    if digest:
        return name, digest
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, "latest"


def push(engine: docker.DockerClient, repository: str, tag: str,
         auth: Mapping[str, str] | None = None) -> list[str]:
    """Push and fail on any ``errorDetail`` in the stream (the SDK itself never raises here).

    ``auth``: the Docker SDK's ``auth_config`` (the platform's registry: ``builder``'s,
    :func:`suite.platform.credentials.docker_auth`)."""
    log: list[str] = []
    try:
        chunks = engine.api.push(repository, tag=tag, stream=True, decode=True,
                                 **({"auth_config": dict(auth)} if auth else {}))
        errors = _stream_errors(chunks, log)
    except docker.errors.APIError as exc:
        errors = [str(exc.explanation or exc)]
    if errors:
        raise ProviderError(
            f"push of {repository}:{tag} failed: {'; '.join(errors)} (is the registry running "
            f"and marked insecure for the engine? `suite status`)"
        )
    return log


_PUSHED = re.compile(r"(?:^|\s)digest: (sha256:[0-9a-f]{64})(?:\s|$)")


def pushed_digest(log: Sequence[str], repository: str, tag: str) -> str:
    """The manifest digest the engine pushed, as its push stream reported it (podman and
    Docker both end with ``TAG: digest: sha256:… size: N``): what was pushed, not what the
    tag points to when read back, which anyone who can push may have changed since."""
    for line in log:
        found = _PUSHED.search(line)
        if found and line.startswith(f"{tag}:"):
            return found.group(1)
    raise ProviderError(f"the push of {repository}:{tag} reported no digest (the engine's "
                        f"stream had {len(log)} lines and no '{tag}: digest: sha256:…')")


def cross_check(repository: str, tag: str, pushed: str,
                auth: tuple[str, str] | None = None) -> str:
    """``pushed`` (the digest the push reported) when the registry serves it for ``tag`` too;
    else a ProviderError naming both: someone pushed over the tag between the push and now.
    Only a cross-check: the digest a build hands on is always the push's own."""
    served = registry_digest(repository, tag, auth=auth)
    if served != pushed:
        raise ProviderError(
            f"the push of {repository}:{tag} reported {pushed}, but the registry now serves "
            f"{served} for that tag: another image was pushed over it meanwhile (only the "
            f"build identity may push: check who holds its password); build again")
    return pushed


def push_pinned(engine: docker.DockerClient, repository: str, tag: str, *,
                push_auth: Mapping[str, str] | None = None,
                read_auth: tuple[str, str] | None = None) -> str:
    """Push and return the digest the push itself reported, cross-checked against what the
    registry serves for the tag right after (a mismatch refuses, :func:`cross_check`)."""
    log = push(engine, repository, tag, auth=push_auth)
    return cross_check(repository, tag, pushed_digest(log, repository, tag), auth=read_auth)


def ensure_pulled(engine: docker.DockerClient, settings: Settings, image: str) -> None:
    """Pull ``image`` when the engine lacks it, as the registry's ``puller`` (the registry
    answers nobody without credentials, and the puller can never push): an image named by
    the digest its registry serves is not always known to the engine by that digest."""
    if image_exists(engine, image):
        return
    repository, reference = split_ref(image)
    try:
        engine.images.pull(repository, tag=reference,
                           auth_config=docker_auth(settings, repository, "puller"))
    except docker.errors.APIError as exc:
        raise ProviderError(f"pulling {image} failed: {exc.explanation or exc}") from exc


def _registry_parts(repository: str) -> tuple[str, str]:
    host, _, path = repository.partition("/")
    if not path or ("." not in host and ":" not in host and host != "localhost"):
        raise ConfigError(
            f"image repository {repository!r} names no registry (expected host:port/name)"
        )
    return host, path


def registry_digest(repository: str, reference: str, timeout: float = 10.0,
                    auth: tuple[str, str] | None = None) -> str:
    """The manifest digest the registry serves for ``repository:reference``.

    ``auth``: (user, password) for the registry (the platform's: ``puller``,
    :func:`suite.platform.credentials.registry_login`)."""
    host, path = _registry_parts(repository)
    url = f"http://{host}/v2/{path}/manifests/{reference}"
    try:
        resp = httpx.head(url, headers={"Accept": MANIFEST_TYPES}, timeout=timeout, auth=auth)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"registry {host} does not answer ({exc})") from exc
    if resp.status_code == 404:
        raise ProviderError(f"{repository}:{reference} is not in the registry {host}")
    if resp.status_code in (401, 403):
        who = f"as {auth[0]!r}" if auth else "without credentials"
        raise ProviderError(
            f"registry {host} refused to read {repository}:{reference} {who} "
            f"({resp.status_code}); the platform's registry logins are in "
            f"SUITE_HOME/secrets/registry-*.password")
    digest = resp.headers.get("Docker-Content-Digest")
    if resp.status_code != 200 or not digest:
        raise ProviderError(
            f"registry {host} answered {resp.status_code} for {repository}:{reference} "
            f"without a digest"
        )
    return digest


def image_exists(engine: docker.DockerClient, ref: str) -> bool:
    try:
        engine.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True
