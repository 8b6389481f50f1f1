#!/bin/sh
# Build the TEST DOUBLE package vector_0.50.0-1_<arch>.deb (stand-in for Vector) into OUTDIR.
#   sh build-deb.sh OUTDIR     build the package
#   sh build-deb.sh --stage    copy vrl_python into ./vendor (the Docker build context of the mirror
#                              image has no Python with vrl_python; tests/integration/setup.sh runs this)
#
# The double compiles and runs VRL with vrl_python (PyPI vrl-python, an abi3 wheel for CPython >= 3.8 on
# manylinux_2_17 x86_64).  The servers have no PyPI, so its files go into the package, in
# /usr/lib/vector-test-double/vrl_python, where the double imports it from.  They come from ./vendor
# when staged there, else from the vrl_python that ${PYTHON:-python3} (or this checkout's .venv) imports.
# Likewise CPython's tomllib (tomli 2, MIT, pure Python that runs on 3.9), as
# /usr/lib/vector-test-double/vector_test_double_tomllib: Debian 11 has no tomllib, and its
# python3-toml 0.10.1 mangles a multi-line literal string line ending in "" (the installer's VRL has
# such lines), where Vector's toml crate reads it right.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

installed_package() {  # installed_package NAME FILE: the folder of package NAME (holding FILE) that a
                         # Python of this machine imports
    for py in ${PYTHON:-} "$here/../../../.venv/bin/python" python3; do
        [ -n "$py" ] || continue
        dir=$("$py" -c "import os, $1; print(os.path.dirname($1.__file__))" 2>/dev/null) || continue
        [ -f "$dir/$2" ] && { echo "$dir"; return 0; }
    done
    return 1
}

installed_vrl_python() { installed_package vrl_python __init__.py; }

find_vrl_python() {  # staged copy first, else the installed one
    if [ -f "$here/vendor/vrl_python/__init__.py" ]; then
        echo "$here/vendor/vrl_python"
        return 0
    fi
    installed_vrl_python && return 0
    echo "build-deb.sh: vrl_python not found (pip install vrl-python, or -e '.[test]' in this checkout's .venv;" \
         "or stage it with build-deb.sh --stage)" >&2
    return 1
}

copy_vrl_python() {  # copy_vrl_python SRC DEST
    install -d -m 0755 "$2"
    for f in __init__.py _vrl_python.pyi py.typed; do
        [ -f "$1/$f" ] && install -m 0644 "$1/$f" "$2/$f"
    done
    ls "$1"/_vrl_python*.so >/dev/null 2>&1 || { echo "build-deb.sh: no _vrl_python*.so in $1" >&2; exit 1; }
    for so in "$1"/_vrl_python*.so; do install -m 0644 "$so" "$2/"; done
    lic=$(ls -d "$1"/../vrl_python-*.dist-info/licenses/LICENSE 2>/dev/null | head -n 1 || true)
    [ -z "$lic" ] && [ -f "$1/LICENSE" ] && lic="$1/LICENSE"
    [ -n "$lic" ] && install -m 0644 "$lic" "$2/LICENSE"
    return 0
}

installed_tomllib() { installed_package tomllib _parser.py; }  # a Python >= 3.11's

find_tomllib() {
    if [ -f "$here/vendor/tomllib/_parser.py" ]; then
        echo "$here/vendor/tomllib"
        return 0
    fi
    installed_tomllib && return 0
    echo "build-deb.sh: no tomllib (Python >= 3.11) found to vendor, nor one staged with --stage" >&2
    return 1
}

copy_tomllib() {  # copy_tomllib SRC DEST
    install -d -m 0755 "$2"
    for f in __init__.py _parser.py _re.py _types.py; do install -m 0644 "$1/$f" "$2/$f"; done
}

if [ "${1:-}" = "--stage" ]; then
    if ! src=$(installed_vrl_python) || ! tsrc=$(installed_tomllib); then
        if [ -f "$here/vendor/vrl_python/__init__.py" ] && [ -f "$here/vendor/tomllib/_parser.py" ]; then
            echo "vrl_python and tomllib already staged in $here/vendor (no installed ones to refresh them from)"
            exit 0
        fi
        find_vrl_python >/dev/null && find_tomllib >/dev/null
        exit 1
    fi
    rm -rf "$here/vendor"
    copy_vrl_python "$src" "$here/vendor/vrl_python"
    copy_tomllib "$tsrc" "$here/vendor/tomllib"
    echo "vrl_python and tomllib staged in $here/vendor (from $src, $tsrc)"
    exit 0
fi

out=${1:?usage: build-deb.sh OUTDIR | build-deb.sh --stage}
vrl_src=$(find_vrl_python)
toml_src=$(find_tomllib)
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$here/vector" "$root/usr/bin/vector"
copy_vrl_python "$vrl_src" "$root/usr/lib/vector-test-double/vrl_python"
copy_tomllib "$toml_src" "$root/usr/lib/vector-test-double/vector_test_double_tomllib"
install -D -m 0644 "$here/debian/vector.service" "$root/lib/systemd/system/vector.service"
# distribution/systemd/vector.default ships as /etc/default/vector with mode 600 (Cargo.toml
# [package.metadata.deb] assets), a conffile like /etc/vector/vector.yaml
install -D -m 0600 "$here/debian/default" "$root/etc/default/vector"
install -D -m 0644 "$here/debian/vector.yaml" "$root/etc/vector/vector.yaml"
install -d -m 0755 "$root/usr/share/doc/vector"
echo "TEST DOUBLE: stand-in for Vector, built by actvt-installer's end-to-end tests. Not Vector." \
    > "$root/usr/share/doc/vector/README.test-double"
install -d -m 0755 "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/debian/control.in" > "$root/DEBIAN/control"
printf '/etc/vector/vector.yaml\n/etc/default/vector\n' > "$root/DEBIAN/conffiles"
for s in preinst postinst postrm; do install -m 0755 "$here/debian/$s" "$root/DEBIAN/$s"; done
mkdir -p "$out"
dpkg-deb -Zgzip --root-owner-group --build "$root" "$out/vector_0.50.0-1_${arch}.deb" >/dev/null
echo "$out/vector_0.50.0-1_${arch}.deb"
