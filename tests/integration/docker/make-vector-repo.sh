#!/bin/sh
# Build the signed local apt repository "<url> stable vector-0" holding the TEST DOUBLE package
# vector 0.50.0-1 (stand-in for Vector), signed with a throw-away key made here.
#   sh make-vector-repo.sh REPO_DIR STANDIN_SRC_DIR
set -eu
repo=${1:?REPO_DIR}
src=${2:?STANDIN_SRC_DIR}
arch=$(dpkg --print-architecture)
mkdir -p "$repo/pool/vector-0/v/vector" "$repo/dists/stable/vector-0/binary-$arch"
sh "$src/build-deb.sh" "$repo/pool/vector-0/v/vector"
cd "$repo"
apt-ftparchive packages pool/vector-0 > "dists/stable/vector-0/binary-$arch/Packages"
gzip -9kf "dists/stable/vector-0/binary-$arch/Packages"
apt-ftparchive \
    -o APT::FTPArchive::Release::Origin="actvt-installer tests" \
    -o APT::FTPArchive::Release::Label="TEST DOUBLE vector repository" \
    -o APT::FTPArchive::Release::Suite=stable \
    -o APT::FTPArchive::Release::Codename=stable \
    -o APT::FTPArchive::Release::Components=vector-0 \
    -o APT::FTPArchive::Release::Architectures="$arch" \
    release dists/stable > dists/stable/Release.tmp
mv dists/stable/Release.tmp dists/stable/Release
GNUPGHOME=$(mktemp -d)
export GNUPGHOME
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
gpg --batch --quiet --passphrase '' --quick-gen-key \
    'actvt-installer TEST repository key, throw-away <tests@actvt-installer.invalid>' rsa3072 sign never
gpg --batch --yes --armor --export > key.asc
gpg --batch --yes --export > key.gpg
gpg --batch --yes --clearsign -o dists/stable/InRelease dists/stable/Release
gpg --batch --yes -abs -o dists/stable/Release.gpg dists/stable/Release
echo "repository ready in $repo (key: key.asc armored, key.gpg binary)"
