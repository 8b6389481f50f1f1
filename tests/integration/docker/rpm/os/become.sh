#!/bin/sh
# actvt-test-become OS: make this RHEL-family harness server the system OS (rocky9, alma9, amzn2023, rocky8):
# its os-release and its distribution's repository file, with the distribution's key from the rpmmirror
# container (made when that image was built). Run by tests/integration/test_rhel_e2e.py at start.
set -eu
os=${1:?OS}
d=/usr/share/actvt-test/rhel
[ -f "$d/$os" ] || { echo "no such system: $os" >&2; exit 2; }
rm -f /etc/os-release /etc/yum.repos.d/*.repo
install -m 0644 "$d/$os" /etc/os-release
install -m 0644 "$d/$os.repo" /etc/yum.repos.d/distribution.repo
install -d -m 0755 /etc/pki/rpm-gpg /etc/dnf/vars
curl -fsS -o /etc/pki/rpm-gpg/RPM-GPG-KEY-actvt-test-distribution http://rpmmirror/distro-key.asc
sed -n 's/^VERSION_ID="\{0,1\}\([0-9]*\).*/\1/p' /etc/os-release > /etc/dnf/vars/releasever
