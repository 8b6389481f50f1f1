#!/bin/sh
# mirror container: apt-cacher-ng on 3142 (the servers' only way to Debian's packages) and a plain
# HTTP server on 80 for /srv/mirror (install.pyz, put there by the tests, and the vector-apt repository).
set -eu
mkdir -p /run/apt-cacher-ng /var/cache/apt-cacher-ng /var/log/apt-cacher-ng
chown apt-cacher-ng:apt-cacher-ng /run/apt-cacher-ng /var/cache/apt-cacher-ng /var/log/apt-cacher-ng
# ACNG_OFFLINE=1: serve only what the cache holds (air-gapped runs with a warm cache volume)
offline=""
[ "${ACNG_OFFLINE:-0}" = 1 ] && offline="Offlinemode=1"
su -s /bin/sh apt-cacher-ng -c "/usr/sbin/apt-cacher-ng -c /etc/apt-cacher-ng ForeGround=0 \
    pidfile=/run/apt-cacher-ng/pid SocketPath=/run/apt-cacher-ng/socket $offline"
exec python3 -m http.server 80 --bind 0.0.0.0 --directory /srv/mirror
