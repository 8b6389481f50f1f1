"""Proxy mode behind Apache (issue 22) end to end, on Debian 12's apache2 (the shared server-apache image).

Two servers, each shared by the scenarios that continue on it:

- Apache with an existing HTTPS site of the domain (made here as its owner would: a2enmod ssl, a site
  on 80 and 443): a broken configuration of someone else's is refused first (nothing written, the
  configtest output shown); then a TLS-only install writes only the snippet, the challenge Alias and
  the module links, the site's pages are the same bytes; the owner includes the snippet and /actvt
  upgrades to Vector; uninstall (after the owner takes the Include out) leaves /etc/apache2 and
  a2enmod's state in /var/lib/apache2 as they were and the pages the same bytes.
- Apache with no site of the domain, mTLS: a site of its own; metrics with the bundle (a client without
  TLS 1.3 post-handshake auth), 403 without a certificate, another CA's refused in the handshake;
  /actvt/health answered; with Vector stopped, another user's TLS listener on its port gets no client
  (a 5xx, not its bytes); a re-run changes nothing (same Vector PID, no Apache reload); `actvt doctor`
  passes; revocation of a second client while both hold a WebSocket: the revoked one ends within the
  stated bound and is refused, the first reconnects; uninstall with Apache stopped succeeds and leaves
  /etc/apache2 and /var/lib/apache2 as before (ssl's dependency socache_shmcb disabled too).
"""
import time

import pytest

import harness as H
from test_wiring_e2e import (FIRST, PROXY_URL, SECOND, App, assert_impostor_gets_no_client, assert_no_changes,
                             assert_vector_up, install, main_pid, start_background_ws, wait_until)

pytestmark = pytest.mark.e2e

ENV = {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL}
MTLS = dict(ENV, ACTVT_ENABLE_MTLS="yes")
MTLS_DIR = "/etc/vector/certs/mtls"
SNIPPET = "/etc/apache2/actvt-vector-location.conf"
SITE = "/etc/apache2/sites-available/actvt-vector.conf"
NO_CERT = "No required SSL certificate was sent"
REVOKE_BOUND = 20  # seconds: Apache's reload, then Vector's restart (README: "within 20 s")
ROOTS = "/root/pebble-roots.pem"
STATE = ("/etc/apache2", "/var/lib/apache2")  # the configuration, and a2enmod's record of what the admin enabled


EXISTING_SITE = r"""
set -e
D=%(domain)s
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=$D -keyout /etc/ssl/private/site.key \
    -out /etc/ssl/certs/site.crt 2>/dev/null
mkdir -p /var/www/site
echo "existing site of $D" > /var/www/site/index.html
printf 'page two\n' > /var/www/site/two.html
# a day old: Apache gives a file changed less than a second before the request a weak ETag (W/"…"), so
# pages read right after they were written would differ from the same pages read later
touch -d '1 day ago' /var/www/site/index.html /var/www/site/two.html
cat > /etc/apache2/sites-available/site.conf <<EOF
<VirtualHost *:80>
    ServerName $D
    DocumentRoot /var/www/site
</VirtualHost>
<VirtualHost *:443>
    ServerName $D
    DocumentRoot /var/www/site
    SSLEngine on
    SSLCertificateFile /etc/ssl/certs/site.crt
    SSLCertificateKeyFile /etc/ssl/private/site.key
</VirtualHost>
EOF
a2enmod -q ssl
a2ensite -q site
apache2ctl configtest
systemctl restart apache2
""" % {"domain": H.DOMAIN}


def pages(server):
    """The existing site's pages as a visitor gets them (bytes, http and https)."""
    out = {}
    for url in ("http://%s/" % H.DOMAIN, "https://%s/" % H.DOMAIN, "https://%s/two.html" % H.DOMAIN):
        r = server.exec("curl -sk --resolve %s:80:127.0.0.1 --resolve %s:443:127.0.0.1 -D - %s | sed '/^Date:/d'"
                        % (H.DOMAIN, H.DOMAIN, url))
        assert r.rc == 0 and "200" in r.out.splitlines()[0], r
        out[url] = r.out
    return out


def loaded_modules(server):
    return set(server.sh("apache2ctl -M 2>/dev/null | awk '{print $1}'").out.split())


def reloads(server):
    """Graceful restarts Apache logged (a reload is one)."""
    return int(server.sh("grep -c 'SIGUSR1 received' /var/log/apache2/error.log || true").out.strip() or 0)


def test_existing_https_site_on_apache_snippet_then_uninstall(harness, new_server):
    server = new_server("server-apache")
    server.trust_acme_ca()
    server.sh(EXISTING_SITE)
    before, before_pages = server.snapshot(STATE), pages(server)

    # a broken configuration of someone else's: refused before anything is written, with its output
    server.put_file("/etc/apache2/conf-enabled/broken.conf", b"ThisIsNotADirective on\n")
    whole = server.snapshot()
    r, summary = install(server, ENV, rc=1)
    assert summary["status"] == "failed" and "ThisIsNotADirective" in summary["error"], summary
    assert "broken.conf" in summary["error"] and "Nothing was changed" in summary["error"], summary
    assert H.diff_snapshots(whole, server.snapshot()) == {"added": [], "removed": [], "changed": []}
    server.sh("rm /etc/apache2/conf-enabled/broken.conf")

    started = time.time()
    r, summary = install(server, ENV)
    print("install behind an existing Apache site: %.1f s" % (time.time() - started))
    assert summary["mode"] == "proxy" and summary["webserver"] == "apache" and summary["url"] == PROXY_URL, summary
    assert_vector_up(server)
    diff = H.diff_snapshots(before, server.snapshot(STATE))
    assert diff["removed"] == [] and diff["changed"] == [], diff
    assert set(diff["added"]) == {SNIPPET, "/etc/apache2/conf-available/actvt-vector-acme.conf",
                                  "/etc/apache2/conf-enabled/actvt-vector-acme.conf",
                                  "/etc/apache2/mods-enabled/proxy.load", "/etc/apache2/mods-enabled/proxy.conf",
                                  "/etc/apache2/mods-enabled/proxy_http.load",
                                  "/var/lib/apache2/module/enabled_by_admin/proxy",
                                  "/var/lib/apache2/module/enabled_by_admin/proxy_http"}, diff
    assert server.read_text("/var/lib/actvt/apache-modules") == "proxy\nproxy_http\n"
    assert pages(server) == before_pages, "the site's pages changed"
    notes = " ".join(summary["notes"]) + r.err
    assert "Include %s" % SNIPPET in notes and "/etc/apache2/sites-enabled/site.conf" in notes, notes

    # the owner includes the snippet in the 443 virtual host: /actvt upgrades to Vector's WebSocket
    original = server.read_file("/etc/apache2/sites-available/site.conf")
    server.sh("sed -i '$ i\\    Include %s' /etc/apache2/sites-available/site.conf && apache2ctl configtest "
              "&& systemctl reload apache2" % SNIPPET)
    upgrade = ("curl -sk --max-time 5 --resolve {d}:443:127.0.0.1 -o /dev/null -w '%{{http_code}}' -H 'Connection: Upgrade' "
               "-H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "
               "https://{d}/actvt").format(d=H.DOMAIN)
    assert server.exec(upgrade).out == "101"
    assert pages(server) == before_pages

    # uninstall, once the owner took the Include out again: /etc/apache2 as before, the pages the same
    server.put_file("/etc/apache2/sites-available/site.conf", original)
    r = server.exec(["actvt", "uninstall", "--yes"], timeout=300)
    assert r.rc == 0, r
    assert H.diff_snapshots(before, server.snapshot(STATE)) == {"added": [], "removed": [], "changed": []}
    assert "proxy_module" not in loaded_modules(server) and "ssl_module" in loaded_modules(server)
    assert server.is_active("apache2.service") and pages(server) == before_pages


def test_apache_without_a_site_of_the_domain_mtls_rerun_doctor_revocation(harness, new_server):
    server = new_server("server-apache")
    server.trust_acme_ca()
    before = server.snapshot(STATE)
    app = App(harness, "apache")
    # the app's TLS stack offers no post-handshake auth; neither does this client (Python's default)
    r = app.host.exec(["python3", "-c", "import ssl; print(ssl.create_default_context().post_handshake_auth)"])
    assert r.out.strip() == "False", r

    started = time.time()
    r, summary = install(server, MTLS)
    print("install on Apache with mTLS: %.1f s" % (time.time() - started))
    assert summary["mode"] == "proxy" and summary["webserver"] == "apache" and summary["url"] == PROXY_URL, summary
    assert_vector_up(server)
    site = server.read_text(SITE)
    assert "SSLVerifyClient optional" in site and "SSLCARevocationFile" in site and "upgrade=websocket" in site
    assert server.stat("/etc/apache2/sites-enabled/actvt-vector.conf").kind == "link"
    assert server.stat("/etc/vector/certs/proxy/apache.pem").mode == 0o600

    first = app.take_bundle(server, FIRST)
    app.metrics(PROXY_URL, first)
    code, body = app.curl("https://%s/actvt" % H.DOMAIN)
    assert code == "403" and NO_CERT in body, (code, body)
    app.refused(PROXY_URL)
    code, _ = app.curl("https://%s/actvt" % H.DOMAIN, app.other_ca_cert())
    assert code == "000", code  # the handshake itself fails
    assert app.ws("wss://%s:4096" % H.DOMAIN, first, count=1, timeout=5).rc == 1, "Vector's port is reachable"
    # /actvt/health is answered by Apache itself, without a client certificate, as behind nginx
    r = server.exec("curl -sk --resolve {d}:443:127.0.0.1 -w ' %{{http_code}}' https://{d}/actvt/health".format(d=H.DOMAIN))
    assert r.out == "OK\n 200", r

    # Vector down and another user's process (uid 65534) on its port: Apache verifies the upstream
    assert_impostor_gets_no_client(server, app, first)

    # re-run: nothing changes, Vector keeps its PID, Apache is not reloaded
    pid, graceful = main_pid(server), reloads(server)
    r, summary = install(server, MTLS)
    assert_no_changes(server, summary, pid)
    assert reloads(server) == graceful, "a re-run reloaded Apache"

    r = server.exec(["actvt", "status"])
    assert r.rc == 0 and "Mode:           proxy behind apache, mTLS on" in r.out, r

    server.put_file(ROOTS, harness.pebble_issuer_pem())
    r = server.exec(["actvt", "doctor", "--json"], env={"REQUESTS_CA_BUNDLE": ROOTS, "NO_COLOR": "1"}, timeout=120)
    by = {item["check"]: item for item in r.json()["checks"]}
    print("\n".join("%s %s: %s" % (item["level"], name, item["text"]) for name, item in by.items()))
    assert r.rc == 0 and r.json()["failed"] == 0, r
    assert by["apache.config"]["level"] == "pass" and by["mtls.refused"]["level"] == "pass"
    assert by["metrics"]["level"] == "pass" and by["metrics.upstream"]["level"] == "pass"

    # revocation while both clients hold a WebSocket: Apache reloads (new handshakes meet the new CRL),
    # then Vector restarts, which ends the tunnels old Apache children keep
    assert server.exec([MTLS_DIR + "/generate-client.sh", SECOND]).rc == 0
    second = app.take_bundle(server, SECOND)
    out, rc = start_background_ws(app, PROXY_URL, second, "apache-second")
    first_out, first_rc = start_background_ws(app, PROXY_URL, first, "apache-first")
    started = time.time()
    r = server.exec(["actvt", "client", "revoke", SECOND, "--yes"])
    assert r.rc == 0 and "apache refuses" in r.out, r
    returned = time.time() - started
    wait_until(lambda: app.host.exec("test -s %s" % rc).rc == 0, timeout=REVOKE_BOUND + 10,
               what="the revoked client's open WebSocket to be closed")
    closed = time.time() - started
    print("`client revoke` took %.1f s; the revoked client's WebSocket closed %.1f s after it started"
          % (returned, closed))
    assert closed < REVOKE_BOUND
    assert main_pid(server) != pid, "Vector was not restarted: old Apache children keep the revoked tunnel"
    app.refused(PROXY_URL, second)
    code, _ = app.curl("https://%s/actvt" % H.DOMAIN, second)
    assert code == "000", code
    wait_until(lambda: app.ws(PROXY_URL, first, count=1).rc == 0, what="the first client to connect again")
    app.metrics(PROXY_URL, first)

    # uninstall with Apache stopped: the run does not fail on the reload (Apache stays stopped), and
    # every module a2enmod enabled (socache_shmcb behind ssl too) and its marker are gone
    server.sh("systemctl stop apache2")
    r = server.exec(["actvt", "uninstall", "--yes"], timeout=300)
    assert r.rc == 0, r
    assert H.diff_snapshots(before, server.snapshot(STATE)) == {"added": [], "removed": [], "changed": []}
    assert not server.is_active("apache2.service")
