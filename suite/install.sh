#!/usr/bin/env bash
# Install everything Ultimate Suite needs on a Debian bookworm machine, as root. Idempotent:
# a second run with nothing changed only checks (apt packages present, install stamp current).
#   bash suite/install.sh            (what `make install` runs)
#   bash suite/install.sh --freeze   (what `make constraints` runs: re-pin constraints.txt)
# Python packages install at the exact versions of constraints.txt (every transitive package,
# checked in), so two installs months apart get the same versions. pip's own output goes to
# .venv/install.log; the terminal shows one line per step and, when pip fails, its errors.
# Environment: PYTHON (default python3), SUITE_SKIP_APT=1 to skip the apt step.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH="torch==2.13.0"  # alone and first: an unpinned resolution pulls a multi-GB CUDA build

APT_PACKAGES=(
  ca-certificates git make python3 python3-venv
  podman buildah skopeo umoci runc uidmap   # container engine behind the docker SDK
  iptables                                   # replicas answer only the platform user (owner match)
  docker-registry                            # OCI registry
  debootstrap                                # local base image (no public registries here)
  haproxy socat                              # traffic router for canaries
  prometheus                                 # metrics for canary analysis
  postgresql                                 # optional Prefect backend: suite up --database postgres
  chromium-headless-shell                    # the release report checked as the Prefect UI renders it
)

log() { printf '[install] %s\n' "$*"; }

# pip_quiet LOG ARGS...: pip with its output in LOG, a progress line every 30 s while it runs
# (seconds, packages collected so far), and on failure its errors and the log's last lines.
pip_quiet() {
  local logfile=$1; shift
  local began=$SECONDS rc=0 from
  from=$(($(wc -l <"$logfile" 2>/dev/null || echo 0) + 1))
  "$@" >>"$logfile" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      local collected state
      collected=$(tail -n "+$from" "$logfile" | grep -c '^Collecting ' || true)
      state="$collected packages collected"
      if tail -n "+$from" "$logfile" | grep -q '^Installing collected packages'; then
        state="installing the $collected packages"
      fi
      log "  … $((SECONDS - began)) s, $state"
    fi
  done
  wait "$pid" || rc=$?
  if [ "$rc" != 0 ]; then
    log "pip failed (exit $rc): $*"
    grep -E '^(ERROR|error:|  ×|╰─>)' "$logfile" | tail -n 20 >&2 || true
    log "last lines of $logfile:"; tail -n 15 "$logfile" >&2
    exit 1
  fi
}

# --freeze: resolve pyproject.toml afresh in a throw-away venv and write every version it got
# (pip freeze --all: pip, setuptools and wheel too) to constraints.txt.
if [ "${1:-}" = "--freeze" ]; then
  fresh=$(mktemp -d /tmp/suite-freeze.XXXXXX)
  trap 'rm -rf "$fresh"' EXIT
  log "resolving pyproject.toml in a fresh venv ($fresh); pip's output: $fresh/pip.log"
  : > "$fresh/pip.log"
  "${PYTHON:-python3}" -m venv "$fresh/venv"
  pip_quiet "$fresh/pip.log" "$fresh/venv/bin/pip" install --progress-bar off --upgrade pip setuptools wheel
  pip_quiet "$fresh/pip.log" "$fresh/venv/bin/pip" install --progress-bar off "$TORCH"
  pip_quiet "$fresh/pip.log" "$fresh/venv/bin/pip" install --progress-bar off -e ".[dev]"
  {
    echo "# Every Python package of a fresh install, pinned. Produced by \`make constraints\`"
    echo "# (bash suite/install.sh --freeze) from pyproject.toml; used by suite/install.sh."
    "$fresh/venv/bin/pip" freeze --all --exclude-editable | grep -v '^ultimate-suite' \
      | LC_ALL=C sort -f
  } > constraints.txt.new
  mv constraints.txt.new constraints.txt
  log "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
  exit 0
fi

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

# What differs between .venv and constraints.txt (read from the packages' metadata: no import,
# so the check of an unchanged install takes a second, not the minute torch and mlflow need).
drift() {
  .venv/bin/python - <<'PY' 2>&1
import importlib.metadata as md
bad = []
for line in open("constraints.txt", encoding="utf-8"):
    name, _, want = line.split("#", 1)[0].strip().partition("==")
    if not name:
        continue
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = "missing"
    if have != want:
        bad.append(f"{name} {have} (constraints.txt: {want})")
try:
    md.version("ultimate-suite")
except md.PackageNotFoundError:
    bad.append("ultimate-suite missing")
print(f"{len(bad)} differ: {', '.join(bad[:4])}{' …' if len(bad) > 4 else ''}" if bad else "")
PY
}

if [ ! -f constraints.txt ]; then
  log "constraints.txt is missing: \`make constraints\` writes it from pyproject.toml"; exit 1
fi
stamp=.venv/.suite-install-stamp
want=$(cat pyproject.toml constraints.txt suite/install.sh | sha256sum | cut -d' ' -f1)
differ=$(drift)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -z "$differ" ]; then
  log "python packages up to date ($(grep -vc '^#' constraints.txt) as pinned in constraints.txt)"
else
  if [ -f "$stamp" ] && [ -n "$differ" ]; then
    log "installed versions against constraints.txt: $differ"
  fi
  piplog=.venv/install.log
  : > "$piplog"
  pip=(.venv/bin/pip install --progress-bar off --disable-pip-version-check -c constraints.txt)
  log "pip, setuptools, wheel (pip's output: $piplog)"
  pip_quiet "$piplog" "${pip[@]}" --upgrade pip setuptools wheel
  log "$TORCH (CPU, from pip's local wheel)"
  pip_quiet "$piplog" "${pip[@]}" "$TORCH"
  log "ultimate-suite and its dependencies (.[dev], $(grep -vc '^#' constraints.txt) pinned packages)"
  pip_quiet "$piplog" "${pip[@]}" -e ".[dev]"
  log "pip check: every requirement of every package satisfied"
  pip_quiet "$piplog" .venv/bin/pip check
  echo "$want" > "$stamp"
fi
log "done: $(.venv/bin/suite --help >/dev/null && echo 'suite CLI ready')"
