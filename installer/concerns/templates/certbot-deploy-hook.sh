#!/bin/sh
# certbot deploy hook written by actvt-installer @VERSION@.
#
# certbot runs every executable in /etc/letsencrypt/renewal-hooks/deploy/ after it renews *any*
# certificate on this host, with RENEWED_LINEAGE set to that certificate's live folder. This hook
# acts only for @LINEAGE@: it copies the renewed certificate and key for Vector (atomically, with
# the modes and owners the installer gives them), restarts Vector (its websocket_server sink reads
# the certificate only at start: a reload is not enough) and reloads nginx or Apache when it runs.
# Re-running the installer rewrites this file.
set -eu
umask 077

LINEAGE='@LINEAGE@'
CERT_DIR='@CERT_DIR@'
GROUP='@GROUP@'

log() { echo "actvt-vector deploy hook: $*" >&2; }

if [ "${RENEWED_LINEAGE:-}" != "$LINEAGE" ]; then
    exit 0  # another certificate on this host was renewed: not ours
fi
for name in fullchain.pem privkey.pem; do
    if [ ! -s "$LINEAGE/$name" ]; then
        log "$LINEAGE/$name is missing or empty; nothing copied"
        exit 1
    fi
done
if ! getent group "$GROUP" >/dev/null 2>&1; then
    log "group $GROUP does not exist; the key is copied readable by root only"
    GROUP=root
fi

# copy SOURCE TARGET MODE GROUP: write a temporary file next to TARGET (created 0600 by umask),
# give it its final owner and mode, then rename it over TARGET, so Vector never reads half a file.
copy() {
    tmp=$(mktemp "$CERT_DIR/.actvt-hook.XXXXXX")
    if cat "$1" > "$tmp" && chown "root:$4" "$tmp" && chmod "$3" "$tmp" && mv -f "$tmp" "$2"; then
        return 0
    fi
    rm -f "$tmp"
    log "could not copy $1 to $2"
    return 1
}

mkdir -p "$CERT_DIR"
copy "$LINEAGE/fullchain.pem" "$CERT_DIR/server.crt" 0644 "$GROUP"
copy "$LINEAGE/privkey.pem" "$CERT_DIR/server.key" 0640 "$GROUP"
log "copied the renewed certificate of $LINEAGE to $CERT_DIR"

status=0
reload_front() {  # UNIT TEST-COMMAND...: reload UNIT when it runs and its configuration passes the test
    unit=$1
    shift
    if systemctl is-active --quiet "$unit"; then
        if "$@" >/dev/null 2>&1 && systemctl reload "$unit"; then
            log "$unit reloaded"
        else
            log "$unit was not reloaded (the configuration test or the reload failed); see: $*"
            status=1
        fi
    fi
}
if command -v systemctl >/dev/null 2>&1; then
    # restart (not reload): only when Vector runs; a stopped Vector reads the new files when started
    if systemctl is-active --quiet vector; then
        if systemctl restart vector; then
            log "vector restarted"
        else
            log "systemctl restart vector failed; see: journalctl -u vector"
            status=1
        fi
    fi
    # the proxy front, whichever runs: its configuration test, then a graceful reload
    reload_front nginx nginx -t
    reload_front apache2 apache2ctl configtest
    reload_front httpd apachectl configtest
fi
exit "$status"
