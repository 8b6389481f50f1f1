#!/usr/bin/env bash
# Prepare everything the Docker end-to-end tests need, from nothing, without a container registry.
#
#   bash tests/integration/setup.sh
#
# Idempotent: every step is skipped when its result already exists (a running daemon, a base image,
# an up-to-date image from the build cache).  Steps:
#   1. Docker: when no daemon answers, install docker.io (+ debootstrap) from Debian and start dockerd
#      in the background.
#   2. Base images actvt-base:{bullseye,bookworm,trixie}: debootstrap + `docker import` when absent,
#      from the Debian mirror named in this host's own apt sources.
#   3. The images of Dockerfile.test (servers, acme, mirror, client), with BASE as build argument.
#
# Environment:
#   ACTVT_E2E_SUITES          Debian suites for base and bare server images (default: bullseye bookworm trixie)
#   ACTVT_E2E_VARIANT_SUITES  suites for the server variants (nginx, apache2, firewalls, ssh) (default: bookworm)
#   ACTVT_E2E_BASE_<SUITE>    use this image instead of building actvt-base:<suite>
#                             (e.g. ACTVT_E2E_BASE_BOOKWORM=debian:bookworm where a registry is reachable)
#   ACTVT_E2E_STATE           folder for logs (default: /var/tmp/actvt-e2e)
#   ACTVT_E2E_DEBIAN_MIRROR   Debian mirror for debootstrap (default: read from /etc/apt/sources*)
#   ACTVT_E2E_NO_CACHE=1      rebuild the test images without Docker's build cache
#   ACTVT_E2E_IMAGES          repository prefix of the test images (default: actvt-test)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATE=${ACTVT_E2E_STATE:-/var/tmp/actvt-e2e}
SUITES=${ACTVT_E2E_SUITES:-bullseye bookworm trixie}
VARIANT_SUITES=${ACTVT_E2E_VARIANT_SUITES:-bookworm}
IMAGES=${ACTVT_E2E_IMAGES:-actvt-test}  # repository prefix of the test images (harness.py reads the same)
mkdir -p "$STATE"

T0=$(date +%s)
say() { printf '[setup %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# 1. Docker daemon
# ---------------------------------------------------------------------------------------------
# /usr/local/bin/docker may be a newer client than Debian's daemon: prefer Debian's own client when
# present; any client negotiates the API version downwards, and DOCKER_API_VERSION is left alone.
docker_bin() {
    if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker || true; fi
}
DOCKER=$(docker_bin)
docker_ok() { [ -n "$DOCKER" ] && timeout 20 "$DOCKER" info >/dev/null 2>&1; }

apt_updated=0
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if docker_ok; then
    say "docker daemon answers ($("$DOCKER" version --format '{{.Server.Version}}'))"
else
    if ! command -v dockerd >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || die "no Docker daemon and not root: cannot install docker.io"
        say "installing docker.io from Debian"
        apt_install docker.io debootstrap iptables ca-certificates
        DOCKER=$(docker_bin)
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        say "starting dockerd (log: $STATE/dockerd.log)"
        setsid nohup dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
    fi
    for _ in $(seq 1 60); do docker_ok && break; sleep 1; done
    docker_ok || { tail -n 30 "$STATE/dockerd.log" >&2 || true; die "dockerd did not answer within 60 s"; }
    say "docker daemon answers ($("$DOCKER" version --format '{{.Server.Version}}'))"
fi

# ---------------------------------------------------------------------------------------------
# 2. Base images (debootstrap + docker import), one per suite
# ---------------------------------------------------------------------------------------------
host_debian_mirror() {
    # First Debian archive URI in the host's apt sources (deb822 or one-line format), not security.
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$f" | grep -v -e security | grep -i debian | head -n1)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f" \
              | grep -v -e security | grep -i debian | head -n1)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
}

base_image() {  # the image to use as BASE for a suite
    local var="ACTVT_E2E_BASE_$(echo "$1" | tr '[:lower:]' '[:upper:]')"
    echo "${!var:-actvt-base:$1}"
}

missing=()
for suite in $SUITES; do
    img=$(base_image "$suite")
    "$DOCKER" image inspect "$img" >/dev/null 2>&1 || missing+=("$suite")
done
if [ "${#missing[@]}" -gt 0 ]; then
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    MIRROR=${ACTVT_E2E_DEBIAN_MIRROR:-$(host_debian_mirror)}
    [ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources*; set ACTVT_E2E_DEBIAN_MIRROR"
    say "debootstrap ${missing[*]} from $MIRROR (in parallel)"
    pids=()
    for suite in "${missing[@]}"; do
        img=$(base_image "$suite")
        [ "$img" = "actvt-base:$suite" ] || die "$img is not present and is not ours to build"
        (
            dir=$(mktemp -d "$STATE/rootfs-$suite.XXXX")
            trap 'rm -rf "$dir"' EXIT
            debootstrap --variant=minbase --include=python3,ca-certificates "$suite" "$dir" "$MIRROR" \
                >"$STATE/debootstrap-$suite.log" 2>&1
            rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
            tar -C "$dir" -c . | "$DOCKER" import -c 'CMD ["/bin/bash"]' - "actvt-base:$suite" >/dev/null
        ) &
        pids+=("$!:$suite")
    done
    for p in "${pids[@]}"; do
        wait "${p%%:*}" || { tail -n 20 "$STATE/debootstrap-${p#*:}.log" >&2; die "debootstrap ${p#*:} failed"; }
        say "actvt-base:${p#*:} imported"
    done
else
    say "base images present: $(for s in $SUITES; do printf '%s ' "$(base_image "$s")"; done)"
fi

# ---------------------------------------------------------------------------------------------
# 3. Test images from Dockerfile.test (build context: tests/integration)
# ---------------------------------------------------------------------------------------------
build() {  # build TARGET TAG SUITE
    local target=$1 tag=$2 suite=$3 log="$STATE/build-${1}-${3}.log"
    local t=$(date +%s)
    local no_cache=()
    [ "${ACTVT_E2E_NO_CACHE:-0}" = 1 ] && no_cache=(--no-cache)
    if ! DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-1} "$DOCKER" build "${no_cache[@]}" -f "$ROOT/Dockerfile.test" --target "$target" \
            --build-arg "BASE=$(base_image "$suite")" --label actvt-test.infra=1 \
            -t "$tag" "$HERE" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "docker build $target ($suite) failed; log: $log"
    fi
    say "built $tag ($(( $(date +%s) - t )) s)"
}

for suite in $SUITES; do
    build server "$IMAGES/server:$suite" "$suite"
done
for suite in $VARIANT_SUITES; do
    for v in server-nginx-other server-nginx-domain server-apache server-ufw server-firewalld server-iptables \
             server-ssh; do
        build "$v" "$IMAGES/$v:$suite" "$suite"
    done
done
# Ubuntu's defaults (issue 21, item 5): Debian bookworm made to look like Ubuntu 24.04 / 22.04
for v in server-ubuntu-noble server-ubuntu-jammy; do build "$v" "$IMAGES/$v:bookworm" bookworm; done
build acme "$IMAGES/acme:latest" bookworm
# The Vector test double's package carries vrl_python (its VRL compiler, from this machine's
# pip install -e '.[test]'): staged into the mirror image's build context (vector_standin/vendor, not in git).
PYTHON="$ROOT/.venv/bin/python" sh "$HERE/vector_standin/build-deb.sh" --stage >/dev/null \
    || die "vrl_python for the Vector test double: pip install -e '.[test]' first"
build mirror "$IMAGES/mirror:latest" bookworm
build client "$IMAGES/client:latest" bookworm
build controller "$IMAGES/controller:latest" bookworm
# RHEL family (issue 21): the signed RPM repositories and the dnf server (Dockerfile.test, at its end)
build mirror-rpm "$IMAGES/mirror-rpm:bookworm" bookworm
build server-rhel "$IMAGES/server-rhel:bookworm" bookworm

say "done"
