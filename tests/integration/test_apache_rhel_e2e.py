"""Proxy mode behind the RHEL family's httpd (issue 22, items 2 and 6) end to end, on one server-rhel
(Rocky 9): httpd and mod_ssl are the harness's stand-ins (Debian's build of Apache with the family's
layout, tests/integration/README.md, "RHEL family"); dnf, rpm, firewalld, systemd and Apache itself are real.

One server, one scenario: httpd serving its own pages on port 80 from /var/www/html (the family's main
server, no virtual host) and no mod_ssl; an install with mTLS adds mod_ssl (and records it), answers the
ACME challenge through a main-server Alias and serves wss://DOMAIN/actvt from conf.d/zz-actvt-vector.conf;
metrics with the bundle's certificate, 403 without one; a re-run changes nothing (same Vector PID, no
httpd reload); /actvt/health, `actvt status` and `actvt doctor` behind httpd; `actvt client revoke` of a
second client (httpd reloaded with the new CRL: refused at once, the first still served); the pages
are the same bytes throughout; uninstall leaves /etc/httpd exactly as it was
and removes mod_ssl (the installer added it), httpd still serving.
"""
import time

import pytest

import harness as H
from test_rhel_e2e import rhel_install, rhel_server, rpm_q  # noqa: F401 (rhel_server: the fixture)
from test_wiring_e2e import (FIRST, MTLS, MTLS_DIR, PROXY_URL, SECOND, App, assert_no_changes, assert_vector_up,
                             main_pid, wait_until)

pytestmark = pytest.mark.e2e

NO_CERT = "No required SSL certificate was sent"
SITE = "/etc/httpd/conf.d/zz-actvt-vector.conf"
ALIAS = "/etc/httpd/conf.d/zz-actvt-vector-acme-alias.conf"
ROOTS = "/root/pebble-roots.pem"  # doctor's own check of the served certificate trusts Pebble's root here

# httpd from AppStream, its own page (a day old: Apache gives a file changed less than a second before
# the request a weak ETag, so the same page read later would differ), enabled and started by its owner
HTTPD = """
set -e
dnf -y -q install httpd
printf 'the pages of %s on httpd\\n' > /var/www/html/index.html
printf 'page two\\n' > /var/www/html/two.html
touch -d '1 day ago' /var/www/html/index.html /var/www/html/two.html
systemctl enable --now httpd
""" % H.DOMAIN


def pages(server):
    """The site's pages as a visitor gets them (headers and bytes, without the date; and without the
    Server header, which names OpenSSL while mod_ssl is loaded: the front needs TLS)."""
    out = {}
    for url in ("http://%s/" % H.DOMAIN, "http://%s/two.html" % H.DOMAIN):
        r = server.exec("curl -s --resolve %s:80:127.0.0.1 -D - %s | sed '/^Date:/d; /^Server:/d'" % (H.DOMAIN, url))
        assert r.rc == 0 and "200" in r.out.splitlines()[0], r
        out[url] = r.out
    return out


def reloads(server):
    """Graceful restarts httpd logged (a reload is one)."""
    return int(server.sh("grep -c 'SIGUSR1 received' /var/log/httpd/error_log || true").out.strip() or 0)


def test_rocky9_httpd_mod_ssl_mtls_rerun_uninstall(harness, rhel_server):  # noqa: F811
    started = time.time()
    server = rhel_server("rocky9")
    server.trust_acme_ca()
    server.sh(HTTPD)
    assert rpm_q(server, "httpd").rc == 0 and rpm_q(server, "mod_ssl").rc != 0
    before, before_pages = server.snapshot(("/etc/httpd",)), pages(server)
    app = App(harness, "httpd-rocky9")

    r, summary = rhel_install(harness, server, MTLS)
    assert summary["status"] == "ok" and summary["mode"] == "proxy" and summary["webserver"] == "httpd", summary
    assert summary["url"] == PROXY_URL, summary
    assert_vector_up(server)
    assert rpm_q(server, "mod_ssl").rc == 0, "mod_ssl was not installed"
    assert server.read_text("/var/lib/actvt/apache-packages") == "mod_ssl\n"
    # the main server keeps port 80 of every name (a virtual host of ours would have redirected it)
    assert pages(server) == before_pages, "the site's pages changed"
    diff = H.diff_snapshots(before, server.snapshot(("/etc/httpd",)))
    assert diff["removed"] == [] and diff["changed"] == [], diff
    # mod_ssl's own files and ours, nothing else (every module the front needs is loaded: no file of
    # ours in conf.modules.d)
    assert set(diff["added"]) == {"/etc/httpd/conf.d/ssl.conf", "/etc/httpd/conf.modules.d/00-ssl.conf", SITE,
                                  ALIAS}, diff
    site = server.read_text(SITE)
    assert "SSLVerifyClient optional" in site and "SSLCARevocationFile" in site and "upgrade=websocket" in site
    assert "/etc/httpd/conf/httpd.conf" in server.read_text(ALIAS)

    first = app.take_bundle(server, FIRST)
    app.metrics(PROXY_URL, first)
    code, body = app.curl("https://%s/actvt" % H.DOMAIN)
    assert code == "403" and NO_CERT in body, (code, body)
    app.refused(PROXY_URL)

    # re-run: nothing changes, Vector keeps its PID, httpd is not reloaded
    pid, graceful = main_pid(server), reloads(server)
    r, summary = rhel_install(harness, server, MTLS)
    assert_no_changes(server, summary, pid)
    assert reloads(server) == graceful, "a re-run reloaded httpd"
    assert pages(server) == before_pages

    # the rest of a front behind httpd: health, status, doctor
    r = server.exec("curl -sk --resolve {d}:443:127.0.0.1 -w ' %{{http_code}}' https://{d}/actvt/health".format(d=H.DOMAIN))
    assert r.out == "OK\n 200", r
    r = server.exec(["actvt", "status"])
    assert r.rc == 0 and "Mode:           proxy behind httpd, mTLS on" in r.out, r
    server.put_file(ROOTS, harness.pebble_issuer_pem())
    r = server.exec(["actvt", "doctor", "--json"], env={"REQUESTS_CA_BUNDLE": ROOTS, "NO_COLOR": "1"}, timeout=120)
    by = {item["check"]: item for item in r.json()["checks"]}
    assert r.rc == 0 and r.json()["failed"] == 0, r
    assert by["apache.config"]["level"] == "pass" and by["mtls.refused"]["level"] == "pass"
    assert by["metrics"]["level"] == "pass", by["metrics"]

    # revocation: the CRL httpd checks, configtest, reload (and Vector's restart, which ends old tunnels)
    assert server.exec([MTLS_DIR + "/generate-client.sh", SECOND]).rc == 0
    second = app.take_bundle(server, SECOND)
    app.metrics(PROXY_URL, second)
    r = server.exec(["actvt", "client", "revoke", SECOND, "--yes"])
    assert r.rc == 0 and "httpd refuses" in r.out, r
    app.refused(PROXY_URL, second)
    wait_until(lambda: app.ws(PROXY_URL, first, count=1).rc == 0, what="the first client to connect again")
    server.sh("rm -f %s" % ROOTS)

    # uninstall: /etc/httpd as before (mod_ssl's files go with the package the installer added)
    r = server.exec(["actvt", "uninstall", "--yes"], timeout=300)
    assert r.rc == 0, r
    assert rpm_q(server, "mod_ssl").rc != 0, "mod_ssl is still installed"
    assert H.diff_snapshots(before, server.snapshot(("/etc/httpd",))) == {"added": [], "removed": [], "changed": []}
    assert server.is_active("httpd.service") and pages(server) == before_pages
    assert server.exec("curl -sk --max-time 5 --resolve %s:443:127.0.0.1 https://%s/" % (H.DOMAIN, H.DOMAIN)).rc != 0
    print("httpd rocky9 scenario: %.0f s" % (time.time() - started))
