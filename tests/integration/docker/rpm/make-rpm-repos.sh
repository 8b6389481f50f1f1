#!/bin/sh
# Build the signed RPM repositories of the RHEL-family harness (tests/integration/README.md, "RHEL family"):
#   sh make-rpm-repos.sh OUT STANDIN_SRC_DIR DEBS_DIR
# OUT/vector-rpm/   the Vector TEST DOUBLE as vector-0.50.0-1.<arch>.rpm, laid out as Vector's own spec
#                   (signed by the "vector" key: OUT/vector-rpm/key.asc, its fingerprint in key.fpr)
# OUT/appstream/    nginx, httpd and mod_ssl: Debian's builds of nginx and Apache repackaged with the family's
#                   layout (distro key), and actvt-test-slow, whose installation sleeps (another dnf holding its lock)
# OUT/extras/       epel-release: /etc/yum.repos.d/epel.repo (-> http://rpmmirror/epel/) and EPEL's key
# OUT/epel/         certbot: Debian's build of certbot repackaged with EPEL's unit names (EPEL key)
# OUT/amzn/         nginx, certbot and actvt-test-slow in one repository, as Amazon Linux 2023 has them
#                   (no EPEL there; distro key)
# OUT/distro-key.asc  the key of appstream, extras and amzn (a server installs it as its distribution's key)
# OUT/wrong-key.asc   a key that signs nothing (the "wrong repository key" scenario)
# Every repository's repomd.xml is signed (repomd.xml.asc: repo_gpgcheck=1), every package with rpmsign.
# The RPMs declare no automatic dependencies: the libraries and Python modules of Debian's builds are in
# the server image already (Dockerfile.test, server-rhel).
set -eu
out=${1:?OUT}
src=${2:?STANDIN_SRC_DIR}
debs=${3:?DEBS_DIR}
here=$(cd "$(dirname "$0")" && pwd)
arch=$(uname -m)
work=$(mktemp -d)
GNUPGHOME=$work/gnupg
export GNUPGHOME
mkdir -m 0700 "$GNUPGHOME"
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir -p "$out"

newkey() {  # newkey NAME FILE: a throw-away signing key, exported armored to FILE; prints its fingerprint
    gpg --batch --quiet --passphrase '' --quick-gen-key "$1 <tests@actvt-installer.invalid>" rsa3072 sign never
    gpg --batch --yes --armor --export "$1" > "$2"
    gpg --batch --with-colons --list-keys "$1" | awk -F: '$1 == "fpr" { print $10; exit }'
}
VECTOR_FPR=$(newkey "actvt-installer TEST Vector RPM repository key, throw-away" "$work/vector.asc")
DISTRO_FPR=$(newkey "actvt-installer TEST distribution key, throw-away" "$out/distro-key.asc")
EPEL_FPR=$(newkey "actvt-installer TEST EPEL key, throw-away" "$work/epel.asc")
newkey "actvt-installer TEST key that signs nothing, throw-away" "$out/wrong-key.asc" > "$out/wrong-key.fpr"

rpmbuild_tree() {  # rpmbuild_tree SPEC ROOT OWN: build SPEC from the files under ROOT (each file of /etc a
                   # %config(noreplace), the folders whose path matches the regex OWN owned); prints the RPM
    top=$work/rpmbuild
    mkdir -p "$top/RPMS"
    list=$work/files-$(basename "$1" .spec)
    (cd "$2" && find . ! -type d | sed -e 's|^\.||' -e 's|^/etc/|%config(noreplace) /etc/|'
     cd "$2" && find . -mindepth 1 -type d | sed 's|^\.||' | grep -E "$3" | sed 's|^|%dir |') > "$list"
    rpmbuild --quiet -bb --define "_topdir $top" --define "payload_root $2" --define "file_list $list" \
        --define "_build_id_links none" --define "__os_install_post %{nil}" --define "debug_package %{nil}" \
        "$1" >&2
    ls -t "$top"/RPMS/*/*.rpm | head -n 1
}

sign_repo() {  # sign_repo DIR FINGERPRINT: sign the packages, make the metadata, sign repomd.xml
    for rpm in "$1"/*.rpm; do
        rpmsign --addsign --define "__gpg $(command -v gpg)" --define "_gpg_name $2" --define "_gpg_path $GNUPGHOME" "$rpm" >/dev/null
    done
    createrepo_c --quiet "$1"
    gpg --batch --yes --local-user "$2" --armor --detach-sign -o "$1/repodata/repomd.xml.asc" "$1/repodata/repomd.xml"
}

# --- Vector (the test double), as Vector's rpm spec lays it out ------------------------------------
root=$work/vector
install -D -m 0755 "$src/vector" "$root/usr/bin/vector"
cp -r "$src/vendor/vrl_python" "$src/vendor/tomllib" "$work/"
install -d "$root/usr/lib/vector-test-double"
cp -r "$work/vrl_python" "$root/usr/lib/vector-test-double/vrl_python"
cp -r "$work/tomllib" "$root/usr/lib/vector-test-double/vector_test_double_tomllib"
install -D -m 0644 "$src/debian/vector.service" "$root/usr/lib/systemd/system/vector.service"
install -D -m 0600 "$src/debian/default" "$root/etc/default/vector"
install -D -m 0644 "$src/debian/vector.yaml" "$root/etc/vector/vector.yaml"
mkdir -p "$out/vector-rpm"
cp "$(rpmbuild_tree "$here/vector.spec" "$root" "vector")" "$out/vector-rpm/"
sign_repo "$out/vector-rpm" "$VECTOR_FPR"
cp "$work/vector.asc" "$out/vector-rpm/key.asc"
echo "$VECTOR_FPR" > "$out/vector-rpm/key.fpr"

# --- nginx and certbot: Debian's builds, the family's layout ---------------------------------------
unpack() {  # unpack DIR DEB...: the payload of Debian packages into DIR
    d=$1; shift
    mkdir -p "$d"
    for deb in "$@"; do dpkg-deb -x "$deb" "$d"; done
}
root=$work/nginx
unpack "$root" "$debs"/nginx_*.deb "$debs"/nginx-common_*.deb
# Debian's site layout, init script, logrotate and default page give way to the family's
rm -rf "$root/etc/nginx/sites-available" "$root/etc/nginx/sites-enabled" "$root/etc/nginx/modules-enabled" \
       "$root/etc/init.d" "$root/etc/default" "$root/etc/ufw" "$root/lib/systemd" "$root/var/www" \
       "$root/usr/share/nginx/html" "$root/usr/share/nginx/modules" "$root/etc/nginx/snippets" \
       "$root/etc/nginx/nginx.conf"
install -D -m 0644 "$here/nginx.conf" "$root/etc/nginx/nginx.conf"
install -D -m 0644 "$here/nginx.service" "$root/usr/lib/systemd/system/nginx.service"
install -d -m 0755 "$root/etc/nginx/conf.d" "$root/etc/nginx/default.d" "$root/usr/share/nginx/html" \
    "$root/usr/share/nginx/modules" "$root/var/log/nginx" "$root/var/lib/nginx"
echo '<html><body>Test page of the RHEL-family harness nginx</body></html>' > "$root/usr/share/nginx/html/index.html"
mkdir -p "$out/appstream" "$out/amzn"
rpm=$(rpmbuild_tree "$here/nginx.spec" "$root" "nginx")
cp "$rpm" "$out/appstream/"
cp "$rpm" "$out/amzn/"

# httpd and mod_ssl: Debian's apache2-bin (the binary, its modules), the family's files around them
# (docker/rpm/httpd/); modules in /usr/lib64/httpd/modules, reached as /etc/httpd/modules
a2=$work/apache2
unpack "$a2" "$debs"/apache2-bin_*.deb
root=$work/httpd
h=$here/httpd
install -D -m 0755 "$a2/usr/sbin/apache2" "$root/usr/libexec/actvt-test-httpd/httpd"
install -D -m 0755 "$h/httpd.sh" "$root/usr/sbin/httpd"
install -D -m 0755 "$h/apachectl.sh" "$root/usr/sbin/apachectl"
install -d -m 0755 "$root/usr/lib64/httpd/modules" "$root/etc/httpd/conf.d" "$root/etc/httpd/conf.modules.d" \
    "$root/var/www/html" "$root/var/www/cgi-bin" "$root/usr/share/httpd"
install -d -m 0700 "$root/var/log/httpd"
cp -a "$a2"/usr/lib/apache2/modules/*.so "$root/usr/lib64/httpd/modules/"
rm "$root/usr/lib64/httpd/modules/mod_ssl.so"
ln -s ../../usr/lib64/httpd/modules "$root/etc/httpd/modules"
ln -s ../../var/log/httpd "$root/etc/httpd/logs"
ln -s /run/httpd "$root/etc/httpd/run"
install -D -m 0644 "$h/httpd.conf" "$root/etc/httpd/conf/httpd.conf"
for f in 00-base.conf 00-mpm.conf 00-proxy.conf; do install -m 0644 "$h/$f" "$root/etc/httpd/conf.modules.d/$f"; done
echo 'Files here ending in .conf are included by httpd.conf (IncludeOptional conf.d/*.conf).' > "$root/etc/httpd/conf.d/README"
install -D -m 0644 "$h/httpd.service" "$root/usr/lib/systemd/system/httpd.service"
cp "$(rpmbuild_tree "$here/httpd.spec" "$root" "httpd|^/var/www")" "$out/appstream/"
root=$work/mod_ssl
install -D -m 0755 "$a2/usr/lib/apache2/modules/mod_ssl.so" "$root/usr/lib64/httpd/modules/mod_ssl.so"
install -D -m 0644 "$h/00-ssl.conf" "$root/etc/httpd/conf.modules.d/00-ssl.conf"
install -D -m 0644 "$h/ssl.conf" "$root/etc/httpd/conf.d/ssl.conf"
cp "$(rpmbuild_tree "$here/mod_ssl.spec" "$root" "^$")" "$out/appstream/"

root=$work/certbot
unpack "$root" "$debs"/certbot_*.deb "$debs"/python3-certbot_*.deb
# EPEL's certbot names its renewal units certbot-renew.{service,timer}, in /usr/lib/systemd/system
rm -rf "$root/lib/systemd" "$root/etc/cron.d"
install -D -m 0644 "$here/certbot-renew.service" "$root/usr/lib/systemd/system/certbot-renew.service"
install -D -m 0644 "$here/certbot-renew.timer" "$root/usr/lib/systemd/system/certbot-renew.timer"
mkdir -p "$out/epel"
rpm=$(rpmbuild_tree "$here/certbot.spec" "$root" "certbot|/acme")
cp "$rpm" "$out/epel/"
cp "$rpm" "$out/amzn/"

root=$work/epel-release
install -D -m 0644 "$work/epel.asc" "$root/etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-9"
install -D -m 0644 "$here/epel.repo" "$root/etc/yum.repos.d/epel.repo"
mkdir -p "$out/extras"
cp "$(rpmbuild_tree "$here/epel-release.spec" "$root" "^$")" "$out/extras/"

# a package whose installation takes a while (the "another dnf holds its lock" scenario)
root=$work/slow
install -D -m 0644 /dev/null "$root/usr/share/doc/actvt-test-slow/README"
rpm=$(rpmbuild_tree "$here/actvt-test-slow.spec" "$root" "actvt-test-slow")
cp "$rpm" "$out/appstream/"
cp "$rpm" "$out/amzn/"

sign_repo "$out/appstream" "$DISTRO_FPR"
sign_repo "$out/extras" "$DISTRO_FPR"
sign_repo "$out/epel" "$EPEL_FPR"
sign_repo "$out/amzn" "$DISTRO_FPR"
echo "RPM repositories ready in $out"
