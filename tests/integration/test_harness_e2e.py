"""The harness itself, proven by hand-made steps (no installer): what later scenarios rely on.

On each Debian release: apt reaches Debian only through the mirror's apt-cacher-ng; the signed local
repository installs the Vector TEST DOUBLE; certbot gets a certificate from Pebble with a real http-01
challenge; the stand-in then serves a wss:// sink under systemd, with and without client certificates,
to the client container.
"""
import json
import textwrap

import pytest

import harness as H

pytestmark = pytest.mark.e2e

MTLS_SETUP = """
set -e
d=/etc/vector/certs/mtls
mkdir -p $d/clients
cd $d
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ca.key 2>/dev/null
openssl req -new -x509 -sha256 -days 30 -key ca.key -out ca.crt -subj "/CN=Actvt-CA/O=Actvt/C=US"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out clients/c1.key 2>/dev/null
openssl req -new -key clients/c1.key -out clients/c1.csr -subj "/CN=c1/O=Actvt"
printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > ext.cnf
openssl x509 -req -days 30 -sha256 -in clients/c1.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out clients/c1.crt -extfile ext.cnf 2>/dev/null
chmod 0644 ca.crt
"""

VECTOR_TOML = """
[api]
enabled = true

[sources.host]
type = "host_metrics"
scrape_interval_secs = 1

[transforms.shape]
type = "metric_to_log"
inputs = ["host"]

[sinks.websocket_out]
type = "websocket_server"
inputs = ["shape"]
address = "0.0.0.0:4096"
encoding.codec = "json"

[sinks.websocket_out.tls]
enabled = true
crt_file = "/etc/vector/certs/server.crt"
key_file = "/etc/vector/certs/server.key"
ca_file = "/etc/vector/certs/mtls/ca.crt"
verify_certificate = true
"""


@pytest.mark.parametrize("suite", H.SUITES)
def test_harness_end_to_end_by_hand(harness, new_server, suite):
    server = new_server(suite=suite)
    client = harness.client_host

    # apt: Debian through apt-cacher-ng only; the Vector repository from the mirror, signed
    server.sh("apt-get update -q", timeout=600)
    server.sh("curl -fsSLo /usr/share/keyrings/vector-test.asc %s" % H.VECTOR_KEY_URL)
    server.put_file("/etc/apt/sources.list.d/vector.list",
                    ("deb [signed-by=/usr/share/keyrings/vector-test.asc] %s stable vector-0\n"
                     % H.VECTOR_APT_URL).encode())
    server.sh("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
              "--no-install-recommends certbot openssl vector=0.50.0-1", timeout=900)
    assert "test-double" in server.sh("vector --version").out
    assert server.sh("id -u vector").rc == 0
    assert "ExecStartPre=/usr/bin/vector validate" in server.read_text("/lib/systemd/system/vector.service")

    # certbot against Pebble: real http-01 challenge on the server's port 80
    server.trust_acme_ca()
    r = server.sh("certbot certonly --standalone -d %s --email %s --agree-tos --non-interactive "
                  "--no-eff-email --server %s" % (H.DOMAIN, H.EMAIL, H.ACME_DIRECTORY), timeout=300)
    live = "/etc/letsencrypt/live/%s" % H.DOMAIN
    assert server.exists(live + "/fullchain.pem"), r

    # the stand-in under systemd, with the files and modes of the real package (vector 0.50.0-1)
    server.sh(MTLS_SETUP)
    server.sh("install -o root -g vector -m 0644 %s/fullchain.pem /etc/vector/certs/server.crt && "
              "install -o root -g vector -m 0640 %s/privkey.pem /etc/vector/certs/server.key" % (live, live))
    server.put_file("/etc/vector/vector.toml", VECTOR_TOML.encode())
    server.put_file("/etc/default/vector", b"VECTOR_CONFIG=/etc/vector/vector.toml\n")
    server.sh("vector validate /etc/vector/vector.toml")
    server.sh("systemctl enable --now vector", timeout=120)
    assert server.unit("vector.service")["ActiveState"] == "active"
    server.sh("for i in $(seq 50); do curl -fs http://127.0.0.1:8686/health && exit 0; sleep 0.2; done; exit 1")

    # the client: trusts Pebble's issuing root, presents the client certificate
    client.put_file("/tmp/root.pem", harness.pebble_issuer_pem())
    for name in ("c1.crt", "c1.key"):
        client.put_file("/tmp/" + name, server.read_file("/etc/vector/certs/mtls/clients/" + name))
    url = "wss://%s:4096" % H.DOMAIN
    r = client.exec(["wsclient", url, "--ca", "/tmp/root.pem", "--cert", "/tmp/c1.crt", "--key", "/tmp/c1.key",
                     "--count", "3"])
    assert r.rc == 0, r
    messages = [json.loads(line) for line in r.out.splitlines()]
    # no remap here: what metric_to_log makes of Vector's host metrics (the installer's config adds metric_type)
    assert len(messages) == 3 and all(m.get("name") and m.get("namespace") == "host" and m.get("host")
                                      for m in messages), messages
    r = client.exec(["wsclient", url, "--ca", "/tmp/root.pem", "--count", "1"])
    assert r.rc == 1, "connected without a client certificate:\n%s" % r
    r = client.exec(textwrap.dedent("""\
        curl -sS -o /dev/null -w '%%{http_code}' --max-time 5 --cacert /tmp/root.pem \
            --cert /tmp/c1.crt --key /tmp/c1.key -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
            -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' https://%s:4096/
        """ % H.DOMAIN))
    assert r.out.startswith("101"), r

    # reload runs the unit's ExecReload (validate --no-environment, then HUP) and keeps the service up
    pid = server.unit("vector.service")["MainPID"]
    server.sh("systemctl reload vector")
    assert server.unit("vector.service")["MainPID"] == pid
    assert server.is_active("vector.service")


def test_build_image_runs_its_steps_on_the_internal_network(harness):
    """For image-baking scenarios: RUN steps reach http://mirror (and its apt cache), the tag is cleaned up."""
    dockerfile = ("FROM %s\n"
                  "RUN curl -fsSL %s | python3 - --version > /root/version\n"
                  "RUN apt-get update -q && apt-get install -y -q --no-install-recommends gnupg >/dev/null\n"
                  % (H.image_name("server"), H.PIPE_URL))
    tag, _log = harness.build_image(dockerfile)
    host = harness.run_image(tag)
    try:
        host.wait_for_systemd()
        assert host.read_text("/root/version").startswith("actvt-installer ")
        assert host.sh("gpg --version").rc == 0
    finally:
        harness.remove(host)
    assert tag in harness.images


def test_server_variants_boot_and_serve(harness, new_server):
    """The server variants are what their names say, seen from the client container."""
    client = harness.client_host
    other = new_server("server-nginx-other", domain="other.example.net")
    assert "other site" in client.sh("curl -fsS http://other.example.net/").out
    assert "other site" in client.sh("curl -fsSk https://other.example.net/").out

    site = new_server("server-nginx-domain")
    assert ("existing site of %s" % H.DOMAIN) in client.sh("curl -fsSk https://%s/" % H.DOMAIN).out
    assert "server_name %s;" % H.DOMAIN in site.sh("nginx -T 2>/dev/null").out

    apache = new_server("server-apache", domain="apache.example.net")
    assert apache.is_active("apache2.service")
    assert client.sh("curl -fsS -o /dev/null -w '%{http_code}' http://apache.example.net/").out == "200"

    ufw = new_server("server-ufw", domain=None)
    assert "inactive" in ufw.sh("ufw status").out
    ufw.sh("ufw allow 22/tcp && ufw --force enable")
    status = ufw.sh("ufw status").out
    assert "Status: active" in status and "22/tcp" in status
    assert other.is_active("nginx.service")
