#!/bin/sh
# Issue an mTLS client certificate signed by this server's CA:
#   sudo @MTLS_DIR@/generate-client.sh NAME [--days N] [--force]
# It writes clients/NAME.crt, clients/NAME.key and NAME-bundle.tar.gz in @MTLS_DIR@.
# ACTVT_MTLS_CLIENT_DAYS sets the validity (default 365 days); an existing NAME is replaced only
# after a [y/N] confirmation (or with --force).
#
# Written by actvt-installer @VERSION@. The certificate is made by `actvt client issue` (the
# installer kept on this server), so there is one implementation of issuance; see also
# `actvt client list`, `actvt client show NAME` and `actvt client revoke NAME`.
set -u

ACTVT="${ACTVT_INTERNAL_COMMAND:-@COMMAND@}"  # override for tests only
ROOT="${ACTVT_INTERNAL_ROOT:-}"               # tests: act on a --root tree
MTLS_DIR="@MTLS_DIR@"

if [ "$#" -lt 1 ] || [ -z "$1" ]; then
    echo "Usage: $0 <client-name> [--days N] [--force]" >&2
    echo "Example: $0 actvt-client-002" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "Error: this script must be run as root (use sudo)" >&2
    exit 1
fi
if [ ! -f "$ROOT$MTLS_DIR/ca.crt" ] || [ ! -f "$ROOT$MTLS_DIR/ca.key" ]; then
    echo "Error: CA certificate or key not found in $MTLS_DIR" >&2
    echo "Run the installer with ACTVT_ENABLE_MTLS=yes first." >&2
    exit 1
fi
if [ ! -x "$ACTVT" ]; then
    echo "Error: $ACTVT is missing; run the installer again to restore it" >&2
    exit 1
fi

name="$1"
shift
if [ -n "$ROOT" ]; then
    set -- --root "$ROOT" "$@"
fi
exec "$ACTVT" client issue "$@" -- "$name"
