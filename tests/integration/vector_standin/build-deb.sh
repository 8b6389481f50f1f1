#!/bin/sh
# Build the TEST DOUBLE package vector_0.50.0-1_<arch>.deb (stand-in for Vector) into OUTDIR.
#   sh build-deb.sh OUTDIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-deb.sh OUTDIR}
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$here/vector" "$root/usr/bin/vector"
install -D -m 0644 "$here/debian/vector.service" "$root/lib/systemd/system/vector.service"
install -D -m 0644 "$here/debian/default" "$root/etc/default/vector"
install -D -m 0644 "$here/debian/vector.yaml" "$root/etc/vector/vector.yaml"
install -d -m 0755 "$root/usr/share/doc/vector"
echo "TEST DOUBLE: stand-in for Vector, built by actvt-installer's end-to-end tests. Not Vector." \
    > "$root/usr/share/doc/vector/README.test-double"
install -d -m 0755 "$root/DEBIAN"
sed "s/@ARCH@/$arch/" "$here/debian/control.in" > "$root/DEBIAN/control"
printf '/etc/default/vector\n/etc/vector/vector.yaml\n' > "$root/DEBIAN/conffiles"
for s in preinst postinst postrm; do install -m 0755 "$here/debian/$s" "$root/DEBIAN/$s"; done
mkdir -p "$out"
dpkg-deb --root-owner-group --build "$root" "$out/vector_0.50.0-1_${arch}.deb" >/dev/null
echo "$out/vector_0.50.0-1_${arch}.deb"
