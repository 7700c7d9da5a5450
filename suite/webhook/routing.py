"""Which registered services a push is for: the payload's repository URLs against the registry.

A forge names one repository several ways (GitHub and Gitea: ``https://host/o/r.git``,
``https://host/o/r``, ``git@host:o/r.git``, ``git://host/o/r.git``; GitLab: ``git_http_url``,
``git_ssh_url``, ``web_url``; a local bare repository's hook: ``file:///srv/git/r.git``), and a
team registers its service with whichever one it typed. Each form is reduced to one identity:
the registry's own reduction (``Registry.by_repository``: no trailing ``/`` or ``.git``, lower
case, local paths resolved) with the scheme, user and port dropped too, since those are what
differ between the forms of one repository: ``host/o/r`` for a remote, the resolved absolute path
for a local one (``file://`` included).

Pure: the registrations are passed in, nothing here reads the platform.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from suite.services.registry import Registration, repository_key
from suite.webhook.verify import PushEvent

#: one key for every form of a repository's address (the registry's own reduction)
identity = repository_key


def registered(event: PushEvent, registrations: Iterable[Registration]) -> list[Registration]:
    """The registrations whose repository is the one that pushed (any of its URLs)."""
    wanted = {identity(url) for url in event.urls}
    return [r for r in registrations if identity(r.repository) in wanted]


@dataclass(frozen=True)
class Route:
    """The registered services a push starts, and those it does not start with the reason."""

    start: tuple[Registration, ...]
    ignored: tuple[tuple[str, str], ...]  # (service, reason)

    @property
    def reason(self) -> str:
        return "; ".join(f"{name}: {why}" for name, why in self.ignored)


def route(event: PushEvent, matched: Sequence[Registration]) -> Route:
    """Each matched service releases when the push is to its registered branch."""
    start: list[Registration] = []
    ignored: list[tuple[str, str]] = []
    for reg in matched:
        if event.branch == reg.branch:
            start.append(reg)
        else:
            ignored.append((reg.service, f"releases from branch {reg.branch!r}, "
                                         f"not {event.branch!r}"))
    return Route(tuple(start), tuple(ignored))


def unregistered(event: PushEvent) -> dict[str, object]:
    """The 403 answer to a push from a repository no service is registered from."""
    url = event.clone_url or event.repository
    command = f"suite services add {url}" + (f" --branch {event.branch}" if event.branch else "")
    looked_up = ", ".join(event.urls) if event.urls else "none: the payload has no repository " \
        "URL (clone_url, html_url, ssh_url, git_http_url, ...)"
    return {
        "error": f"repository {event.repository!r} is not registered on this platform "
                 f"(URLs looked up: {looked_up}); nothing was started. Register its service with "
                 f"`{command}` (reads suite.yaml at that branch), then push or redeliver",
        "repository": event.repository,
        "urls": list(event.urls),
        "register": command,
    }
