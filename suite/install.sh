#!/usr/bin/env bash
# Install everything Ultimate Suite needs on a Debian bookworm machine, as root. Idempotent:
# a second run with nothing changed only checks (apt packages present, install stamp current).
#   bash suite/install.sh            (what `make install` runs)
# Environment: PYTHON (default python3), SUITE_SKIP_APT=1 to skip the apt step.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  ca-certificates git make python3 python3-venv
  podman buildah skopeo umoci runc uidmap   # container engine behind the docker SDK
  docker-registry                            # OCI registry
  debootstrap                                # local base image (no public registries here)
  haproxy socat                              # traffic router for canaries
  prometheus                                 # metrics for canary analysis
  postgresql                                 # optional Prefect backend: suite up --database postgres
  chromium-headless-shell                    # the release report checked as the Prefect UI renders it
)

log() { printf '[install] %s\n' "$*"; }

if [ "${SUITE_SKIP_APT:-0}" != "1" ]; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != "0" ]; then
      log "missing apt packages: ${missing[*]} — run this script as root (or install them)"; exit 1
    fi
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "apt packages present"
  fi
  # The Debian services must not hold our ports; the suite starts its own on loopback.
  for svc in prometheus docker-registry haproxy postgresql prometheus-node-exporter; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.suite-install-stamp
want=$(cat pyproject.toml suite/install.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import suite, prefect, mlflow, torch" 2>/dev/null; then
  log "python packages up to date"
else
  log "pip install -e .[dev] (torch==2.13.0 CPU comes from pip's local wheel)"
  .venv/bin/pip install -q --upgrade pip setuptools wheel
  # torch first, alone and pinned: an unpinned resolution would pull a multi-GB CUDA build.
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
log "done: $(.venv/bin/suite --help >/dev/null && echo 'suite CLI ready')"
