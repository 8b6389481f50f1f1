"""nginx planners: the decision table (mode, web server, layout, domain already served), golden
renderings, quoting, and real nginx: `nginx -t` on the rendered files, then a running nginx with
the rendered site in front of a TLS upstream that requires a client certificate (as Vector does with
mTLS): health, no certificate, the first client, a revoked client (CRL), a client of another CA."""

import dataclasses
import datetime
import http.client
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from installer.concerns import mtls
from installer.concerns import nginx
from installer.core import paths
from installer.core.actions import Absent, File, Packages, Service, Symlink
from installer.core.facts import ProbeResult
from installer.concerns.nginx import NginxDump, NginxError, plan_nginx_challenge, plan_nginx_site
from installer.plans.registry import Context, ModeError, build_plan, decide

from helpers import DOMAIN, make_config, make_facts, recorded

CTX = Context(version="1.0.0", now="2026-06-01T00:00:00Z")
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "nginx")
LIVE = f"/etc/letsencrypt/live/{DOMAIN}"
DEBIAN_NGINX = dict(packages={"nginx": "1.22.1-9", "nginx-common": "1.22.1-9"}, dirs=frozenset({nginx.SITES_ENABLED}))


def dump(*files):
    """An `nginx -T` output made of (path, content) pairs."""
    text = "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"
    for path, content in files:
        text += f"# configuration file {path}:\n{content}\n\n"
    return ProbeResult(0, text)


OTHER_SITE = ("/etc/nginx/sites-enabled/monitor", f"server {{\n    listen 443 ssl;\n    server_name www.example.com {DOMAIN};\n}}")


def serving_file(output, domain):
    return NginxDump.parse(ProbeResult(0, output)).serving_file(domain)


def served_webroot(output, domain):
    return NginxDump.parse(ProbeResult(0, output)).served_webroot(domain)


def facts_for(web="nginx", probe=None, files=None, **extra):
    values = dict(DEBIAN_NGINX)
    values.update(extra)
    manager = values.pop("package_manager", "apt")
    facts = make_facts(web=web, files=files or {}, probes={"nginx_T": probe} if probe else {}, **values)
    return dataclasses.replace(facts, package_manager=manager)


def steps_of(cfg, facts):
    decisions = decide(cfg, facts)
    return plan_nginx_challenge(cfg, facts, decisions, CTX), plan_nginx_site(cfg, facts, decisions, CTX)


def described(steps):
    return [action.describe() for step in steps for action in step.actions]


def by_path(steps):
    return {getattr(a, "path", None): a for step in steps for a in step.actions}


# --- the decision table ---------------------------------------------------------------------------


def test_standalone_plans_nothing():
    assert steps_of(make_config(), make_facts()) == ([], [])
    assert steps_of(make_config(force_standalone="yes"), facts_for()) == ([], [])


def test_proxy_with_nginx_sites_layout():
    challenge, site = steps_of(make_config(), facts_for())
    assert described(challenge) == [
        f"file {nginx.CHALLENGE_SITE} (0644 root:root)",
        f"symlink {nginx.CHALLENGE_LINK} -> {nginx.CHALLENGE_SITE}",
        "run nginx -t",
        "service nginx (enabled, running)",
        "run systemctl try-reload-or-restart nginx",
    ]
    assert described(site) == [
        f"file {paths.NGINX_SITE} (0644 root:root)",
        f"symlink {paths.NGINX_SITE_LINK} -> {paths.NGINX_SITE}",
        "run nginx -t",
        "run systemctl try-reload-or-restart nginx",
    ]
    test, reload = site[0].actions[-2:]
    assert test.when_changed == reload.when_changed
    assert {paths.NGINX_SITE, paths.NGINX_SITE_LINK, f"{LIVE}/fullchain.pem", f"{LIVE}/privkey.pem"} <= set(test.when_changed)
    assert paths.CA_CERT not in test.when_changed  # mTLS off


def test_mtls_inputs_trigger_the_reload():
    _, site = steps_of(make_config(enable_mtls="yes"), facts_for())
    when = set(site[0].actions[-1].when_changed)
    assert {paths.CA_CERT, paths.MTLS_CRL, paths.PROXY_CERT, paths.PROXY_KEY} <= when


DEBIAN_NGINX_CONF = ("/etc/nginx/nginx.conf", "user www-data;\ninclude /etc/nginx/modules-enabled/*.conf;\n"
                     "events {}\nhttp { include /etc/nginx/sites-enabled/*; }")


@pytest.mark.parametrize("mtls_on,probe,expected", [
    ("yes", dump(DEBIAN_NGINX_CONF), "write"),
    ("yes", None, "write"),  # nginx -T not run, apt is to install nginx: Debian's layout is assumed
    ("yes", dump(DEBIAN_NGINX_CONF, (nginx.SHUTDOWN_FILE, "worker_shutdown_timeout 10s;")), "write"),  # ours
    ("yes", dump(DEBIAN_NGINX_CONF, ("/etc/nginx/modules-enabled/50-x.conf", "worker_shutdown_timeout 1m;")), "remove"),
    ("yes", dump(("/etc/nginx/nginx.conf", "events {}\nhttp { include /etc/nginx/conf.d/*.conf; }")), "remove"),
    ("no", dump(DEBIAN_NGINX_CONF), "remove"),
])
def test_worker_shutdown_timeout_only_with_mtls_and_where_it_can_go(mtls_on, probe, expected):
    facts = facts_for(probe=probe, files={nginx.SHUTDOWN_FILE: b"old"})
    if probe is None:
        facts = make_facts(files={nginx.SHUTDOWN_FILE: b"old"})  # no nginx yet
    _, site = steps_of(make_config(enable_mtls=mtls_on, install_mode="proxy"), facts)
    action = by_path(site)[nginx.SHUTDOWN_FILE]
    assert isinstance(action, File if expected == "write" else Absent)
    assert nginx.SHUTDOWN_FILE in site[0].actions[-1].when_changed


def test_conf_d_layout_where_there_is_no_sites_enabled():
    facts = facts_for(packages={"nginx": "1.24.0-1.el9"}, dirs=frozenset(), package_manager="dnf")
    challenge, site = steps_of(make_config(), facts)
    assert f"file {nginx.CHALLENGE_CONFD} (0644 root:root)" in described(challenge)
    assert described(site)[0] == f"file {paths.NGINX_CONFD_SITE} (0644 root:root)"
    assert not any(isinstance(a, Symlink) for step in challenge + site for a in step.actions)


def test_switching_layout_removes_the_other_copy():
    old = {paths.NGINX_CONFD_SITE: b"old", nginx.CHALLENGE_CONFD: b"old"}
    challenge, site = steps_of(make_config(), facts_for(files=old))
    assert f"remove {nginx.CHALLENGE_CONFD}" in described(challenge)
    assert f"remove {paths.NGINX_CONFD_SITE}" in described(site)


def test_explicit_proxy_without_nginx_installs_it_first():
    facts = make_facts()  # nothing listens, nginx not installed, apt
    challenge, site = steps_of(make_config(install_mode="proxy"), facts)
    first = challenge[0].actions[0]
    assert isinstance(first, Packages) and first.names == ("nginx",) and first.manager == "apt"
    assert any(isinstance(a, Service) and a.name == "nginx" for a in challenge[0].actions)
    assert by_path(challenge)[nginx.CHALLENGE_SITE]  # apt's nginx has sites-enabled
    assert by_path(site)[paths.NGINX_SITE]


def test_explicit_proxy_with_nginx_installed_but_stopped_starts_it():
    facts = facts_for(web=None)
    challenge, _ = steps_of(make_config(install_mode="proxy"), facts)
    assert not any(isinstance(a, Packages) for a in challenge[0].actions)
    actions = challenge[0].actions
    kinds = [type(a).__name__ for a in actions]
    assert kinds.index("Service") > kinds.index("Command")  # nginx -t before the start
    assert actions[-1].argv == ("systemctl", "try-reload-or-restart", "nginx")


@pytest.mark.parametrize("web,values", [("caddy", {"install_mode": "proxy"}), ("lighttpd", {"install_mode": "proxy"})])
def test_another_web_server_stops_with_instructions(web, values):
    """The mode decision refuses it once, before any planner runs."""
    cfg = make_config(**values)
    facts = make_facts(web=web)
    decisions = decide(cfg, facts)
    assert decisions.mode == "proxy" and decisions.front is None and "Nothing was changed" in decisions.refusal
    with pytest.raises(ModeError) as caught:
        build_plan(cfg, facts, CTX)
    assert str(caught.value) == decisions.refusal


def test_domain_already_served_gets_only_the_snippet():
    probe = dump(("/etc/nginx/nginx.conf", "http { include /etc/nginx/sites-enabled/*; }"), OTHER_SITE)
    challenge, site = steps_of(make_config(enable_mtls="yes"), facts_for(probe=probe))
    assert not any(isinstance(a, File) for step in challenge for a in step.actions)
    files = [a for step in site for a in step.actions if isinstance(a, File)]
    assert [f.path for f in files] == [paths.NGINX_SNIPPET]
    notes = nginx.notes(make_config(), facts_for(probe=probe), decide(make_config(), facts_for(probe=probe)))
    assert any("include /etc/nginx/snippets/actvt-vector-location.conf" in note
               and "/etc/nginx/sites-enabled/monitor" in note for note in notes)


def test_snippet_mode_removes_an_earlier_dedicated_setup():
    probe = dump(OTHER_SITE)
    ours = {paths.NGINX_SITE: b"x", paths.NGINX_SITE_LINK: b"x", nginx.CHALLENGE_SITE: b"x", nginx.CHALLENGE_LINK: b"x"}
    challenge, site = steps_of(make_config(), facts_for(probe=probe, files=ours))
    assert {f"remove {nginx.CHALLENGE_SITE}", f"remove {nginx.CHALLENGE_LINK}"} <= set(described(challenge))
    assert {f"remove {paths.NGINX_SITE}", f"remove {paths.NGINX_SITE_LINK}"} <= set(described(site))


def test_our_own_files_do_not_count_as_the_domain_being_served():
    ours = nginx.render_site(make_config(), False).decode()
    challenge = nginx.render_challenge(make_config(), "/var/www/html", False).decode()
    probe = dump((paths.NGINX_SITE_LINK, ours), (nginx.CHALLENGE_LINK, challenge), (paths.NGINX_SITE, ours))
    _, site = steps_of(make_config(), facts_for(probe=probe))
    assert paths.NGINX_SITE in by_path(site)


def test_standalone_after_proxy_removes_our_files():
    ours = {paths.NGINX_SITE: b"x", paths.NGINX_SITE_LINK: b"x", nginx.CHALLENGE_SITE: b"x"}
    challenge, site = steps_of(make_config(force_standalone="yes"), facts_for(files=ours))
    assert challenge == []
    assert described(site) == [f"remove {paths.NGINX_SITE}", f"remove {paths.NGINX_SITE_LINK}",
                               f"remove {nginx.CHALLENGE_SITE}", "run nginx -t", "run systemctl try-reload-or-restart nginx"]


@pytest.mark.parametrize("server_names,served", [
    (f"server_name {DOMAIN};", True),
    (f"server_name  www.example.com\n        {DOMAIN.upper()};", True),
    ("server_name *.example.com;", True),
    ("server_name .example.com;", True),
    (f'server_name "{DOMAIN}";', True),
    (f"# server_name {DOMAIN};\nserver_name other.example.com;", False),
    (f"server_name ~^{DOMAIN}$;", False),  # regular expressions are not evaluated
    (f"server_name x{DOMAIN};", False),
    ("server_name *.other.example.org;", False),
    (f"ssl_certificate /etc/letsencrypt/live/{DOMAIN}/fullchain.pem;", False),
])
def test_server_name_detection(server_names, served):
    output = dump(("/etc/nginx/conf.d/site.conf", f"server {{\n    listen 443 ssl;\n    {server_names}\n}}")).output
    assert (serving_file(output, DOMAIN) == "/etc/nginx/conf.d/site.conf") is served


def test_a_failing_probe_is_a_note_not_a_stop():
    probe = ProbeResult(1, "nginx: [emerg] unknown directive \"bogus\" in /etc/nginx/conf.d/x.conf:1\n"
                     "nginx: configuration file /etc/nginx/nginx.conf test failed\n")
    challenge, site = steps_of(make_config(), facts_for(probe=probe))
    notes = nginx.notes(make_config(), facts_for(probe=probe), decide(make_config(), facts_for(probe=probe)))
    assert any("does not pass `nginx -T`" in note for note in notes)
    assert paths.NGINX_SITE in by_path(site)


def test_ipv6_listens_only_when_the_kernel_has_ipv6():
    assert b"[::]:443" not in nginx.render_site(make_config(), False)
    assert b"listen [::]:443 ssl http2;" in nginx.render_site(make_config(), True)
    _, site = steps_of(make_config(), facts_for(files={nginx.IPV6_PROC: b""}))
    assert b"[::]:443" in by_path(site)[paths.NGINX_SITE].content


@pytest.mark.parametrize("webroot", ["/var/www/$host", '/srv/"quoted"', "/srv/back\\slash", "/srv/new\tline"])
def test_paths_nginx_would_misread_are_refused(webroot):
    cfg = dataclasses.replace(make_config(), nginx_webroot=webroot)  # (config itself lets most of these through)
    with pytest.raises(NginxError) as caught:
        nginx.render_challenge(cfg, cfg.nginx_webroot, False)
    assert "ACTVT_NGINX_WEBROOT" in str(caught.value)


def test_a_webroot_with_a_space_is_quoted():
    text = nginx.render_challenge(make_config(), "/srv/acme root", False).decode()
    assert 'root "/srv/acme root";' in text


def test_the_nginx_probe_and_watch_are_declared():
    assert [(probe.name, probe.argv) for probe in nginx.CONCERN.probes] == [("nginx_T", ("nginx", "-T"))]
    reads = nginx.CONCERN.reads(None)
    assert nginx.SITES_ENABLED in reads and paths.NGINX_SITE in reads


# --- golden renderings ----------------------------------------------------------------------------

GOLDEN_CASES = {
    "site-tls.conf": lambda: nginx.render_site(make_config(install_mode="proxy"), True),
    "site-mtls.conf": lambda: nginx.render_site(make_config(install_mode="proxy", enable_mtls="yes",
                                                            vector_port="9443"), False),
    "snippet-mtls.conf": lambda: nginx.render_snippet(make_config(enable_mtls="yes")),
    "snippet-tls.conf": lambda: nginx.render_snippet(make_config()),
    "challenge.conf": lambda: nginx.render_challenge(make_config(), "/var/www/html", True),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden(name):
    """Rendered files match tests/golden/nginx/ (updated only by scripts/update_golden.py)."""
    assert GOLDEN_CASES[name]().decode() == recorded(os.path.join(GOLDEN, name)).decode()


def test_every_golden_rendering_is_compared():
    assert sorted(os.listdir(GOLDEN)) == sorted(GOLDEN_CASES)


# --- real nginx -----------------------------------------------------------------------------------

needs_nginx = pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed (Debian package: nginx)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """CA, the first client, a revoked client, a client of another CA, a CRL, the server certificate, and
    the proxy's own identity (its CA and certificate, made by the installer's code)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from installer.concerns import pki

    base = tmp_path_factory.mktemp("nginx-material")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, ca_cert = pki.make_ca(30, now)
    files = {"ca.crt": pki.cert_pem(ca_cert)}
    serials = {}
    for name in ("actvt-client-001", "actvt-client-002"):
        key, cert = pki.issue_client(ca_cert, ca_key, name, 30, "ecdsa", now)
        files[f"{name}.crt"], files[f"{name}.key"] = pki.cert_pem(cert), pki.key_pem(key)
        serials[name] = cert.serial_number
    other_key, other_ca = pki.make_ca(30, now, key=pki.new_key("ecdsa"))
    key, cert = pki.issue_client(other_ca, other_key, "actvt-client-001", 30, "ecdsa", now)
    files["stranger.crt"], files["stranger.key"] = pki.cert_pem(cert), pki.key_pem(key)
    crl = pki.make_crl(ca_cert, ca_key, {serials["actvt-client-002"]: (now, pki.REVOKED_REASON)}, 1, now)
    files["crl.pem"] = pki.crl_pem(crl)
    files["crl-empty.pem"] = pki.crl_pem(pki.make_crl(ca_cert, ca_key, {}, 1, now))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    # the server's certificate (what the system's CA bundle trusts in these tests, see localize), and
    # an impostor's: self-signed for the same name, as another local user could make
    for chain, private in (("fullchain.pem", "privkey.pem"), ("impostor.crt", "impostor.key")):
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                  .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
                  .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                  .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
                  .sign(server_key, hashes.SHA256()))
        files[chain], files[private] = pki.cert_pem(server), pki.key_pem(server_key)
    identity = {action.path: action.content for action in mtls.proxy_identity({}, now) if hasattr(action, "content")}
    for path, name in ((paths.PROXY_CA_CERT, "proxy-ca.crt"), (paths.PROXY_CERT, "proxy.crt"),
                       (paths.PROXY_KEY, "proxy.key")):
        files[name] = identity[path]
    for name, data in files.items():
        (base / name).write_bytes(data)
    return base


def localize(text: str, base, https_port=None, http_port=None, crl="crl.pem") -> str:
    """The rendered configuration with the server paths pointed at the test material (and ports)."""
    for server_path, name in ((f"{LIVE}/fullchain.pem", "fullchain.pem"), (f"{LIVE}/privkey.pem", "privkey.pem"),
                              (paths.CA_CERT, "ca.crt"), (paths.MTLS_CRL, crl),
                              (paths.PROXY_CERT, "proxy.crt"), (paths.PROXY_KEY, "proxy.key"),
                              (nginx.DEFAULT_UPSTREAM_CA, "fullchain.pem")):
        text = text.replace(f'"{server_path}"', f'"{base / name}"')
    if https_port:
        text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    if http_port:
        text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    return text


def nginx_conf(workdir, includes) -> str:
    os.makedirs(workdir, exist_ok=True)
    temp = " ".join(f"{kind}_temp_path {workdir}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""
    body = "\n".join(includes)
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as handle:
        handle.write(f"{user}worker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log info;\n"
                     f"events {{ worker_connections 64; }}\n"
                     f"http {{\n    access_log off;\n    {temp}\n{body}\n}}\n")
    return conf


def nginx_test(conf):
    return subprocess.run(["nginx", "-t", "-c", conf, "-p", os.path.dirname(conf) + "/"],
                          capture_output=True, text=True, timeout=60)


@needs_nginx
@pytest.mark.parametrize("mtls_on", ["no", "yes"])
def test_real_nginx_accepts_the_rendered_site_and_challenge(tmp_path, material, mtls_on):
    cfg = make_config(install_mode="proxy", enable_mtls=mtls_on, nginx_webroot=str(tmp_path / "webroot"))
    (tmp_path / "site.conf").write_text(localize(nginx.render_site(cfg, True).decode(), material))
    (tmp_path / "acme.conf").write_bytes(nginx.render_challenge(cfg, cfg.nginx_webroot, True))
    conf = nginx_conf(str(tmp_path / "run"), [f"include {tmp_path}/site.conf;", f"include {tmp_path}/acme.conf;"])
    done = nginx_test(conf)
    assert done.returncode == 0, done.stderr


@needs_nginx
def test_real_nginx_accepts_the_worker_shutdown_timeout_at_main_level(tmp_path):
    (tmp_path / "shutdown.conf").write_bytes(nginx.render_shutdown())
    conf = nginx_conf(str(tmp_path / "run"), [])
    with open(conf) as handle:
        text = handle.read()
    with open(conf, "w") as handle:
        handle.write(f"include {tmp_path}/shutdown.conf;\n" + text)
    done = nginx_test(conf)
    assert done.returncode == 0, done.stderr


@needs_nginx
def test_real_nginx_accepts_the_snippet_inside_an_existing_server(tmp_path, material):
    cfg = make_config(install_mode="proxy", enable_mtls="yes")
    (tmp_path / "snippet.conf").write_text(localize(nginx.render_snippet(cfg).decode(), material))
    existing = (f"server {{\n    listen 443 ssl;\n    server_name {DOMAIN};\n"
                f"    ssl_certificate {material}/fullchain.pem;\n    ssl_certificate_key {material}/privkey.pem;\n"
                f"    location / {{ return 200 'site'; }}\n    include {tmp_path}/snippet.conf;\n}}")
    conf = nginx_conf(str(tmp_path / "run"), [existing])
    done = nginx_test(conf)
    assert done.returncode == 0, done.stderr


@needs_nginx
def test_real_nginx_rejects_a_site_whose_certificate_is_missing(tmp_path, material):
    """What the engine relies on: `nginx -t` fails (and the engine then puts our files back)."""
    cfg = make_config(install_mode="proxy")
    (tmp_path / "site.conf").write_bytes(nginx.render_site(cfg, False).replace(
        b"/etc/letsencrypt/live/", str(tmp_path / "missing").encode() + b"/"))
    done = nginx_test(nginx_conf(str(tmp_path / "run"), [f"include {tmp_path}/site.conf;"]))
    assert done.returncode != 0 and "fullchain.pem" in done.stderr


class _Upstream(http.server.BaseHTTPRequestHandler):
    """Stands in for Vector with mTLS: TLS, client certificate required, says whom it saw."""

    def do_GET(self):  # noqa: N802
        peer = self.connection.getpeercert() or {}
        names = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
        body = f"upstream saw {','.join(names)} upgrade={self.headers.get('Upgrade')} " \
               f"connection={self.headers.get('Connection')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def running_proxy(request, tmp_path, material):
    crl = getattr(request, "param", "crl.pem")
    # "impostor": the upstream serves a certificate of its own for the domain (not Vector's)
    chain = ("impostor.crt", "impostor.key") if crl == "impostor" else ("fullchain.pem", "privkey.pem")
    crl = "crl.pem" if crl == "impostor" else crl
    upstream_port, https_port = _free_port(), _free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", upstream_port), _Upstream)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(material / chain[0], material / chain[1])
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(material / "proxy-ca.crt")  # as Vector's ca_file behind nginx
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cfg = make_config(install_mode="proxy", enable_mtls="yes", vector_port=str(upstream_port))
    (tmp_path / "site.conf").write_text(localize(nginx.render_site(cfg, False).decode(), material, https_port,
                                                           crl=crl))
    conf = nginx_conf(str(tmp_path / "run"), [f"include {tmp_path}/site.conf;"])
    assert nginx_test(conf).returncode == 0
    process = subprocess.Popen(["nginx", "-c", conf, "-p", str(tmp_path / "run") + "/", "-g", "daemon off;"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("nginx did not start: " + process.stdout.read().decode(errors="replace")
                            + (tmp_path / "run" / "error.log").read_text())
            time.sleep(0.1)
    try:
        yield https_port
    finally:
        process.terminate()
        process.wait(timeout=15)
        server.shutdown()
        server.server_close()


def _get(port, path, client=None, material=None, headers=None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if client:
        context.load_cert_chain(material / f"{client}.crt", material / f"{client}.key")
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": DOMAIN, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


@needs_nginx
def test_real_nginx_enforces_mtls_and_the_crl(running_proxy, material):
    port = running_proxy
    assert _get(port, "/actvt/health") == (200, "OK\n")  # open to everyone
    status, body = _get(port, "/actvt")  # no certificate: our `return 496`, which nginx answers as 400
    assert status == 400 and "No required SSL certificate was sent" in body
    status, body = _get(port, "/actvt", "actvt-client-001", material,
                        {"Upgrade": "websocket", "Connection": "Upgrade"})
    assert status == 200, body
    # nginx presented its own identity (not the user's) to the upstream, with the WebSocket headers
    assert body == "upstream saw actvt-proxy upgrade=websocket connection=upgrade"
    for refused in ("actvt-client-002", "stranger"):  # revoked (in the CRL); signed by another CA
        status, body = _get(port, "/actvt", refused, material)
        assert status == 400 and "SSL certificate error" in body, (refused, body)


@needs_nginx
@pytest.mark.parametrize("running_proxy", ["crl-empty.pem"], indirect=True)
def test_real_nginx_it_is_the_crl_that_refuses_the_revoked_client(running_proxy, material):
    """Control for the test above: with a CRL that lists nothing, the same client gets through."""
    status, body = _get(running_proxy, "/actvt", "actvt-client-002", material)
    assert status == 200 and body.startswith("upstream saw actvt-proxy"), body  # nginx's own cert upstream


@needs_nginx
@pytest.mark.parametrize("running_proxy", ["impostor"], indirect=True)
def test_real_nginx_gives_no_client_to_an_upstream_it_cannot_verify(running_proxy, material):
    """Another process on Vector's port (Vector down) with a certificate of its own for the domain:
    nginx verifies the upstream's chain, so the client gets a 502, none of that process's bytes."""
    assert _get(running_proxy, "/actvt/health") == (200, "OK\n")
    status, body = _get(running_proxy, "/actvt", "actvt-client-001", material)
    assert status == 502 and "upstream saw" not in body, (status, body)


SERVED_ON_80 = ("/etc/nginx/sites-enabled/site",
                "server {\n    listen 80;\n    listen 443 ssl;\n    server_name %s;\n    root /var/www/site;\n"
                "    location / { root /var/www/elsewhere; }\n}" % DOMAIN)


def test_the_challenge_goes_to_the_webroot_of_the_site_that_serves_the_domain():
    """e2e (server-nginx-domain): certbot wrote to /var/www/html while the existing port-80 server of
    the domain served /var/www/site, so Pebble's http-01 check failed."""
    from installer.concerns import certbot

    probe = dump(("/etc/nginx/nginx.conf", "http { include /etc/nginx/sites-enabled/*; }"), SERVED_ON_80)
    cfg, facts = make_config(install_mode="proxy"), facts_for(probe=probe)
    assert certbot.authenticator(cfg, facts, decide(cfg, facts)) == ("--webroot", "-w", "/var/www/site")
    assert any("/var/www/site/.well-known/acme-challenge/" in note for note in nginx.notes(cfg, facts, decide(cfg, facts)))
    # a location for the challenge wins; ACTVT_NGINX_WEBROOT given wins over both
    with_location = SERVED_ON_80[1].replace("location / {", "location ^~ /.well-known/acme-challenge/ {")
    assert served_webroot(dump((SERVED_ON_80[0], with_location)).output, DOMAIN) == "/var/www/elsewhere"
    cfg = make_config(install_mode="proxy", nginx_webroot="/srv/acme")
    assert certbot.authenticator(cfg, facts, decide(cfg, facts)) == ("--webroot", "-w", "/srv/acme")


@pytest.mark.parametrize("site", [
    "server {\n    listen 443 ssl;\n    server_name %s;\n    root /var/www/site;\n}" % DOMAIN,  # not on 80
    "server {\n    listen 80;\n    server_name %s;\n}" % DOMAIN,  # no root
    "server {\n    listen 80;\n    server_name %s;\n    root /srv/$host;\n}" % DOMAIN,  # a variable
    "server {\n    listen 80;\n    server_name other.example.org;\n    root /var/www/site;\n}",
])
def test_without_a_usable_served_webroot_the_default_is_kept(site):
    output = dump(("/etc/nginx/sites-enabled/site", site)).output
    assert served_webroot(output, DOMAIN) is None
