"""A server's whole life (issue 6): baked image + first boot, cloud-init, migration from the bash
installer, upgrade, uninstall and reinstall.

The README's examples are the ones run here: `readme_example()` (tests/helpers.py) takes the text
between the `<!-- example:NAME:start/end -->` markers and `adapt()` changes only what the test network
needs (the download URL -> http://mirror/install.pyz, the `<sha256>` placeholder -> that file's sha256,
the example domain and e-mail -> the test ones, the
harness's ACME and Vector repository settings added to the environment file). cloud-init itself is
not installed in the servers: its user data is run the way cloud-init runs it (`write_files`, then
`runcmd` in order, stopping at the first failure; a `#!` script executed as a file), as root without a
terminal.

Budget: one baked image per module (built with `docker build` from the README's Dockerfile), booted
twice at the same time; the older installer is built once and cached under ACTVT_E2E_STATE.
"""
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import harness as H
from helpers import readme_example  # noqa: F401 (used here and by test_cloudinit_e2e)
from installer import __version__

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("ACTVT_E2E_STATE", "/var/tmp/actvt-e2e"))

MTLS_DIR = "/etc/vector/certs/mtls"
FIRST = "actvt-client-001"
ENV_FILE = "/etc/actvt/install.env"
DONE = "/var/lib/actvt/firstboot.done"
OVERRIDE = "/etc/systemd/system/vector.service.d/override.conf"
HOOK = "/etc/letsencrypt/renewal-hooks/deploy/actvt-vector.sh"
KEPT_PYZ = "/usr/local/lib/actvt/actvt.pyz"
COMMAND = "/usr/local/bin/actvt"

#: The older installer the upgrade starts from: there is no release tag yet, so a fixed earlier commit
#: (full installs work there and its renewal dry run asks Pebble, not Let's Encrypt). Its vector.toml
#: template is given one extra comment line, so that the upgrade has a template change to apply.
OLD_COMMIT = "04cec265c60d6cda417d95ea591da4cc56666077"
OLD_TEMPLATE_MARK = "# (template of the older installer)"

HARNESS_VARS = H.MIRROR_ENV  # with the mirror key's fingerprint once the harness has started
MTLS = {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL, "ACTVT_ENABLE_MTLS": "yes"}


# --- the README's examples --------------------------------------------------------------------------------


#: The versioned URL of the README's download-check-run examples, and the placeholder of its sha256.
RELEASE_URL = "https://actvt.io/%s/install.pyz" % __version__
SHA256_PLACEHOLDER = "<sha256>"


def published_sha256():
    """The sha256 of the install.pyz the harness publishes on the mirror (conftest's dist/install.pyz)."""
    return hashlib.sha256((REPO / "dist" / "install.pyz").read_bytes()).hexdigest()


def adapt(text, domain=H.DOMAIN, url=H.PIPE_URL, sha256=None):
    """The README's example for the test network: its URLs -> `url` (the mirror's install.pyz), the
    `<sha256>` placeholder -> `sha256` (the published file's), the example domain and e-mail."""
    return (text.replace(RELEASE_URL, url).replace("https://actvt.io/install.pyz", url)
            .replace(SHA256_PLACEHOLDER, sha256 or published_sha256())
            .replace("monitor.example.com", domain).replace("you@example.com", H.EMAIL))


def env_lines(extra=None):
    return "".join("%s=%s\n" % item for item in dict(HARNESS_VARS, **(extra or {})).items())


def run_cloud_config(host, text, extra_env=None, timeout=900):
    """Run #cloud-config user data as cloud-init would: write_files, then runcmd (stop at a failure).
    The harness's variables are added to the environment file the example writes."""
    import yaml

    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    for item in data.get("write_files", []):
        content = item["content"]
        if item["path"] == ENV_FILE:
            content += env_lines(extra_env)
        host.put_file(item["path"], content.encode(), mode=int(item.get("permissions", "0644"), 8))
    result = None
    for command in data.get("runcmd", []):
        argv = command if isinstance(command, list) else ["sh", "-c", command]
        result = host.exec([str(a) for a in argv], timeout=timeout)
        host.harness.record(host, result)
        if result.rc != 0:
            break
    return result


def run_user_data_script(host, text, timeout=900):
    """Run a #! user-data script as cloud-init does: written to a file and executed, as root."""
    assert text.startswith("#!")
    path = "/var/lib/cloud/instance/scripts/part-001"
    host.put_file(path, text.encode(), mode=0o700)
    result = host.exec([path], env=dict(HARNESS_VARS), timeout=timeout)
    host.harness.record(host, result)
    return result


# --- small helpers ----------------------------------------------------------------------------------------


def client_connects(harness, server, url, name=FIRST, cert_from=None, count=2):
    """wsclient from the client container with a client's certificate (from `cert_from`'s mTLS folder)."""
    client = harness.client_host
    source = cert_from or server
    tag = hashlib.sha256((source.name + name).encode()).hexdigest()[:8]
    client.put_file("/tmp/issuer.pem", harness.pebble_issuer_pem())
    for ext in ("crt", "key"):
        client.put_file("/tmp/%s.%s" % (tag, ext), source.read_file("%s/clients/%s.%s" % (MTLS_DIR, name, ext)),
                        mode=0o600)
    return client.exec(["wsclient", url, "--ca", "/tmp/issuer.pem", "--cert", "/tmp/%s.crt" % tag,
                        "--key", "/tmp/%s.key" % tag, "--count", str(count)], timeout=60)


def client_without_cert(harness, url):
    harness.client_host.put_file("/tmp/issuer.pem", harness.pebble_issuer_pem())
    return harness.client_host.exec(["wsclient", url, "--ca", "/tmp/issuer.pem", "--count", "1"], timeout=60)


def wait_unit(host, unit, states=("active", "failed"), timeout=300):
    deadline = time.time() + timeout
    info = {}
    while time.time() < deadline:
        info = host.unit(unit)
        if info.get("ActiveState") in states:
            return info
        time.sleep(1)
    raise AssertionError("%s on %s stayed %s:\n%s" % (unit, host.name, info, host.journal(unit, 60)))


def private_keys(host):
    """Files holding a PEM private key anywhere an image keeps configuration or state."""
    r = host.exec("grep -rlsI -- '-----BEGIN .*PRIVATE KEY-----' /etc /var/lib /usr/local /root /opt /srv || true")
    return [line for line in r.out.splitlines() if line]


def pipe_from(host, url, args, env):
    """curl -fsSL URL | python3 - ARGS, as the README's pipe command."""
    script = "curl -fsSL %s | python3 - %s" % (url, " ".join(shlex.quote(a) for a in args))
    r = host.exec(["sh", "-c", script], env=host.installer_env(env), timeout=900)
    host.harness.record(host, r)
    return r


def changed_targets(summary):
    return {a["target"] for a in summary["actions"] if a["status"] == "changed"}


# --- fixtures: the baked image, the older installer -------------------------------------------------------


@pytest.fixture(scope="module")
def baked(harness):
    """The README's Dockerfile, built with `docker build` on the internal network: FROM the test server
    image (systemd; apt through the mirror) instead of debian:bookworm, the harness's variables as
    build ARGs (not kept in the image), Pebble's listener CA trusted (the test's stand-in for Let's
    Encrypt), and the test image's CMD (systemd on a cgroup v1 host) instead of the example's."""
    lines = []
    for line in adapt(readme_example("dockerfile")).splitlines():
        if line.startswith("FROM "):
            lines.append("FROM %s" % H.image_name("server"))
            lines += ["ARG %s=%s" % item for item in HARNESS_VARS.items()]
            # unique per build: the RUN steps below miss Docker's layer cache, which would otherwise serve
            # the bake step of an earlier build (another module or run: an older install.pyz, no log)
            lines.append("ARG ACTVT_TEST_BUILD=%s" % uuid.uuid4().hex)
            lines += ["COPY actvt-test-pebble.crt /usr/local/share/ca-certificates/",
                      "RUN update-ca-certificates >/dev/null"]
        elif not line.startswith("CMD "):
            lines.append(line)
    assert any(H.PIPE_URL in line for line in lines) and any("ACTVT_BAKE=yes python3 -I" in line for line in lines), lines
    started = time.time()
    tag, log = harness.build_image("\n".join(lines) + "\n", files={"actvt-test-pebble.crt": harness.acme_ca_pem()})
    print("baked image built in %.1f s" % (time.time() - started))
    assert "Image prepared" in log, log[-3000:]
    return tag


@pytest.fixture(scope="module")
def old_pyz(harness):
    """install.pyz of OLD_COMMIT (git archive + that commit's build.py), cached by commit; published on
    the mirror as http://mirror/old/install.pyz."""
    commit = subprocess.run(["git", "rev-parse", OLD_COMMIT], cwd=str(REPO), capture_output=True, text=True,
                            check=True).stdout.strip()
    cached = STATE_DIR / ("old-install-%s.pyz" % commit[:12])
    if not cached.exists():
        work = Path(tempfile.mkdtemp(prefix="actvt-old-"))
        try:
            archive = subprocess.run(["git", "archive", commit], cwd=str(REPO), capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
            template = work / "installer/templates/vector.toml"
            template.write_text(template.read_text() + OLD_TEMPLATE_MARK + "\n")
            (work / "build").mkdir()
            for name in ("venv", "wheels"):  # the build environment and pinned wheels, shared
                if (REPO / "build" / name).exists():
                    os.symlink(REPO / "build" / name, work / "build" / name)
            r = subprocess.run([sys.executable, "build.py"], cwd=str(work), capture_output=True, text=True)
            assert r.returncode == 0, "building %s failed:\n%s\n%s" % (commit, r.stdout[-2000:], r.stderr[-2000:])
            STATE_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / "dist/install.pyz", str(cached) + ".tmp")
            os.replace(str(cached) + ".tmp", cached)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    harness.mirror.put_file("/srv/mirror/old/install.pyz", cached.read_bytes())
    return H.MIRROR_URL + "/old/install.pyz"


# --- bake, first boot, cloud-init on a baked image ------------------------------------------------------


@pytest.fixture
def booted(request, harness):
    """Containers of built images started by a test; removed after it (diagnostics first on failure)."""
    hosts = request.node._actvt_hosts = []
    yield hosts
    for host in hosts:
        harness.remove(host)


def test_baked_image_first_boot(harness, baked, booted):
    """The same image booted twice: A with no env file at boot (then the README's baked #cloud-config),
    B with an env file whose domain does not resolve yet (first boot fails visibly; the next boot,
    with DNS, finishes without anybody logging in). Two servers, two different CAs."""
    domain_a, domain_b = "boot-a.example.com", "boot-b.example.com"
    # B: the env file is on the machine before it boots (as an operator or a provisioning tool puts it)
    env_b = "ACTVT_DOMAIN=%s\nACTVT_EMAIL=%s\nACTVT_ENABLE_MTLS=yes\n%s" % (domain_b, H.EMAIL, env_lines())
    tag_b, _ = harness.build_image("FROM %s\nCOPY install.env %s\nRUN chmod 600 %s\n" % (baked, ENV_FILE, ENV_FILE),
                                   files={"install.env": env_b.encode()})
    a = harness.run_image(baked, role="boot-a", aliases=("boot-a", domain_a))
    booted.append(a)
    b = harness.run_image(tag_b, role="boot-b", aliases=("boot-b",))  # domain_b does not resolve yet
    booted.append(b)

    # --- A: the image as built, booted without an env file
    a.wait_for_systemd()
    assert private_keys(a) == []
    for path in ("/var/lib/actvt/install.state", "/var/lib/actvt/domain", "/var/lib/actvt/manifest.json",
                 "/etc/vector/certs", "/etc/letsencrypt/live", ENV_FILE, DONE):
        assert not a.exists(path), path
    assert a.exists(KEPT_PYZ) and a.stat(COMMAND).mode == 0o755
    unit = a.unit("actvt-firstboot.service")
    assert unit["UnitFileState"] == "enabled" and unit["ActiveState"] == "inactive", unit
    assert "actvt-installer" in a.sh([COMMAND, "--version"]).out
    assert a.exec([COMMAND, "status"]).rc == 3  # not installed yet
    assert "test-double" in a.sh("vector --version").out and a.sh("certbot --version").rc == 0

    # the README's #cloud-config for a baked image, run as cloud-init would
    started = time.time()
    r = run_cloud_config(a, adapt(readme_example("cloud-config-baked"), domain_a))
    print("A: first boot's install via cloud-config in %.1f s" % (time.time() - started))
    assert r.rc == 0, "%s\n%s" % (r, a.journal("actvt-firstboot", 80))
    assert a.stat(ENV_FILE).mode == 0o600
    assert a.exists(DONE) and a.unit("actvt-firstboot.service")["ActiveState"] == "active"
    assert a.is_active("vector")
    assert "Installation complete" in a.journal("actvt-firstboot", 200)
    r = client_connects(harness, a, "wss://%s:4096" % domain_a)
    assert r.rc == 0, r
    assert client_without_cert(harness, "wss://%s:4096" % domain_a).rc == 1
    # it runs once: starting it again does nothing (the marker exists)
    log_size = a.stat("/var/log/actvt-install.log").size
    a.sh("systemctl restart actvt-firstboot.service")
    assert a.unit("actvt-firstboot.service").get("ActiveState") in ("active", "inactive")
    assert a.stat("/var/log/actvt-install.log").size == log_size

    # --- B: first boot with the env file, but its domain does not resolve: a visible failure
    b.wait_for_systemd(timeout=120)
    info = wait_unit(b, "actvt-firstboot.service", ("failed",), timeout=300)
    assert info["ActiveState"] == "failed", info
    assert not b.exists(DONE) and not b.exists("/var/lib/actvt/install.state")
    journal = b.journal("actvt-firstboot", 100)
    assert domain_b in journal and "does not resolve" in journal, journal
    assert "does not resolve" in b.installer_log()
    assert private_keys(b) == []  # nothing made before it stopped

    # DNS fixed; the next boot tries again and finishes (nobody logs in)
    harness.give_domain(b, domain_b)
    started = time.time()
    b.container.restart(timeout=20)
    b.wait_for_systemd(timeout=300)
    info = wait_unit(b, "actvt-firstboot.service", ("active", "failed"), timeout=600)
    print("B: second boot's install in %.1f s" % (time.time() - started))
    assert info["ActiveState"] == "active", "%s\n%s" % (info, b.journal("actvt-firstboot", 80))
    assert b.exists(DONE)
    r = client_connects(harness, b, "wss://%s:4096" % domain_b)
    assert r.rc == 0, r

    # two servers from one image: two CAs; A's client is refused by B
    assert a.sha256(MTLS_DIR + "/ca.crt") != b.sha256(MTLS_DIR + "/ca.crt")
    key_a = a.sh("openssl x509 -in %s/ca.crt -noout -pubkey" % MTLS_DIR).out
    key_b = b.sh("openssl x509 -in %s/ca.crt -noout -pubkey" % MTLS_DIR).out
    assert key_a != key_b
    assert client_connects(harness, b, "wss://%s:4096" % domain_b, cert_from=a).rc == 1


# --- migration from the bash installer --------------------------------------------------------------------

# What the bash installer leaves (its state, unit override, vector.toml, hook, nginx site, CA), made by hand.
BASH_VECTOR_TOML = """\
[api]
enabled = true

[sources.host_metrics]
type = "host_metrics"
scrape_interval_secs = 1

[transforms.metrics_to_logs]
type = "metric_to_log"
inputs = ["host_metrics"]

[sinks.websocket_out]
type = "websocket_server"
inputs = ["metrics_to_logs"]
address = "0.0.0.0:4096"
encoding.codec = "json"

[sinks.websocket_out.tls]
enabled = true
crt_file = "/etc/vector/certs/server.crt"
key_file = "/etc/vector/certs/server.key"
ca_file = "/etc/vector/certs/mtls/ca.crt"
verify_certificate = true
"""
BASH_OVERRIDE = "[Service]\nExecStart=\nExecStart=/usr/bin/vector --config /etc/vector/vector.toml\n"
BASH_HOOK = """\
#!/bin/bash
# Actvt Vector certificate renewal hook
cp "$RENEWED_LINEAGE/fullchain.pem" /etc/vector/certs/server.crt
cp "$RENEWED_LINEAGE/privkey.pem" /etc/vector/certs/server.key
chown vector:vector /etc/vector/certs/server.crt /etc/vector/certs/server.key
systemctl reload vector 2>/dev/null || true
systemctl reload nginx 2>/dev/null || true
"""
BASH_STATE = ("version=1.0.0\ninstalled_at=2024-05-01T10:00:00Z\nmode=standalone\nwebserver=none\n"
              "mtls=enabled\nmtls_client_cn=%s\n" % FIRST)

# The old guide's manual mTLS steps 1 and 2 and its bundle (docs/mtls.md), as written there (bash: process substitution).
SEED_MTLS_STEPS = r"""
set -e
mkdir -p /etc/vector/certs/mtls/clients
chmod 755 /etc/vector/certs/mtls
chmod 755 /etc/vector/certs/mtls/clients
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out /etc/vector/certs/mtls/ca.key 2>/dev/null
openssl req -new -x509 -sha256 -days 3650 -key /etc/vector/certs/mtls/ca.key \
  -out /etc/vector/certs/mtls/ca.crt -subj "/CN=Actvt-CA/O=Actvt/C=US"
chmod 644 /etc/vector/certs/mtls/ca.crt
chmod 600 /etc/vector/certs/mtls/ca.key
chown -R vector:vector /etc/vector/certs/mtls
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
  -out /etc/vector/certs/mtls/clients/actvt-client-001.key 2>/dev/null
openssl req -new -key /etc/vector/certs/mtls/clients/actvt-client-001.key \
  -out /etc/vector/certs/mtls/clients/actvt-client-001.csr -subj "/CN=actvt-client-001/O=Actvt"
openssl x509 -req -days 365 -sha256 -in /etc/vector/certs/mtls/clients/actvt-client-001.csr \
  -CA /etc/vector/certs/mtls/ca.crt -CAkey /etc/vector/certs/mtls/ca.key -CAcreateserial \
  -out /etc/vector/certs/mtls/clients/actvt-client-001.crt \
  -extfile <(printf "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth") 2>/dev/null
chmod 644 /etc/vector/certs/mtls/clients/actvt-client-001.crt
chmod 600 /etc/vector/certs/mtls/clients/actvt-client-001.key
chown -R vector:vector /etc/vector/certs/mtls
rm /etc/vector/certs/mtls/clients/actvt-client-001.csr
cd /etc/vector/certs/mtls
tar -czf actvt-client-001-bundle.tar.gz clients/actvt-client-001.crt clients/actvt-client-001.key
chmod 644 actvt-client-001-bundle.tar.gz
"""


def make_bash_installed_host(server):
    """A host as the bash installer leaves it (standalone, mTLS): Vector from the signed repository, a
    Let's Encrypt lineage (Pebble), copies for Vector, the old guide's CA and first client, its vector.toml,
    the ExecStart override, the renewal hook, install.state and domain; Vector running."""
    server.sh("curl -fsSLo /usr/share/keyrings/vector-archive-keyring.asc %s" % H.VECTOR_KEY_URL)
    server.put_file("/etc/apt/sources.list.d/vector.list",
                    ("deb [signed-by=/usr/share/keyrings/vector-archive-keyring.asc] %s stable vector-0\n"
                     % H.VECTOR_APT_URL).encode())
    server.sh("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
              "--no-install-recommends certbot openssl vector=0.50.0-1", timeout=900)
    server.trust_acme_ca()
    server.sh("certbot certonly --standalone -d %s --email %s --agree-tos --non-interactive --no-eff-email "
              "--server %s" % (H.DOMAIN, H.EMAIL, H.ACME_DIRECTORY), timeout=300)
    live = "/etc/letsencrypt/live/%s" % H.DOMAIN
    server.sh("mkdir -p /etc/vector/certs && cp %s/fullchain.pem /etc/vector/certs/server.crt && "
              "cp %s/privkey.pem /etc/vector/certs/server.key && chmod 644 /etc/vector/certs/server.crt && "
              "chmod 640 /etc/vector/certs/server.key && chown vector:vector /etc/vector/certs/server.*"
              % (live, live))
    server.sh(["bash", "-c", SEED_MTLS_STEPS])
    server.put_file("/etc/vector/vector.toml", BASH_VECTOR_TOML.encode())
    server.put_file(OVERRIDE, BASH_OVERRIDE.encode())
    server.put_file(HOOK, BASH_HOOK.encode(), mode=0o755)
    server.sh("mkdir -p /var/lib/actvt/backups && chmod 700 /var/lib/actvt /var/lib/actvt/backups")
    server.put_file("/var/lib/actvt/install.state", BASH_STATE.encode())
    server.put_file("/var/lib/actvt/domain", (H.DOMAIN + "\n").encode())
    server.sh("systemctl daemon-reload && systemctl enable --now vector", timeout=120)
    assert server.is_active("vector")


def test_migration_from_the_bash_installer(harness, new_server):
    server = new_server()
    make_bash_installed_host(server)
    url = "wss://%s:4096" % H.DOMAIN
    # the old client bundle, as handed out by the bash installer, works before
    client = harness.client_host
    client.put_file("/tmp/old-bundle.tar.gz", server.read_file(MTLS_DIR + "/%s-bundle.tar.gz" % FIRST))
    client.sh("rm -rf /tmp/old && mkdir /tmp/old && tar -xzf /tmp/old-bundle.tar.gz -C /tmp/old")
    client.put_file("/tmp/issuer.pem", harness.pebble_issuer_pem())
    old_client = ["wsclient", url, "--ca", "/tmp/issuer.pem", "--cert", "/tmp/old/clients/%s.crt" % FIRST,
                  "--key", "/tmp/old/clients/%s.key" % FIRST, "--count", "2"]
    assert client.exec(old_client, timeout=60).rc == 0
    ca_key = server.sha256(MTLS_DIR + "/ca.key")
    client_crt = server.sha256(MTLS_DIR + "/clients/%s.crt" % FIRST)

    # install with only the e-mail: domain, mode and mTLS come from the bash installer's state
    started = time.time()
    r = server.run_installer("--yes", "--json", env={"ACTVT_EMAIL": H.EMAIL})
    print("migration run: %.1f s" % (time.time() - started))
    assert r.rc == 0, r
    for line in ("ACTVT_DOMAIN=%s (not set; taken from /var/lib/actvt/domain)" % H.DOMAIN,
                 "ACTVT_INSTALL_MODE=standalone (not set; taken from /var/lib/actvt/install.state)",
                 "ACTVT_ENABLE_MTLS=yes (not set; taken from /var/lib/actvt/install.state)"):
        assert line in r.err, r
    summary = r.json()
    assert summary["mode"] == "standalone" and summary["mtls"] is True and summary["url"] == url

    # the override is gone (backed up), systemd forgot it (only our file limit is left in the folder),
    # VECTOR_CONFIG wires the unit
    assert not server.exists(OVERRIDE)
    assert server.unit("vector.service").get("LoadState") == "loaded"
    assert server.sh("systemctl show vector -p DropInPaths").out.strip() == \
        "DropInPaths=/etc/systemd/system/vector.service.d/actvt-limits.conf"
    assert server.sh("systemctl show vector -p LimitNOFILESoft").out.strip() == "LimitNOFILESoft=65536"
    assert "VECTOR_CONFIG=/etc/vector/vector.toml" in server.read_text("/etc/default/vector")
    backups = server.sh("find /var/lib/actvt/backups -type f | sort").out.split()
    backup_of = {path: [b for b in backups if b.endswith(path)] for path in
                 (OVERRIDE, HOOK, "/etc/vector/vector.toml")}
    assert all(backup_of.values()), backups
    assert server.read_text(backup_of[OVERRIDE][0]) == BASH_OVERRIDE
    assert server.read_text(backup_of[HOOK][0]) == BASH_HOOK
    assert server.read_text(HOOK) != BASH_HOOK and "restart" in server.read_text(HOOK)
    # the CA and the client are adopted, not replaced
    assert server.sha256(MTLS_DIR + "/ca.key") == ca_key
    assert server.sha256(MTLS_DIR + "/clients/%s.crt" % FIRST) == client_crt
    assert server.stat(MTLS_DIR + "/ca.key").owner == "root"
    assert server.is_active("vector")

    # the old bundle still connects; no certificate: refused
    r = client.exec(old_client, timeout=60)
    assert r.rc == 0, r
    assert client_without_cert(harness, url).rc == 1
    state = server.read_text("/var/lib/actvt/install.state")
    assert "installed_at=2024-05-01T10:00:00Z" in state and "mtls_client_cn=%s" % FIRST in state

    # a re-run changes nothing
    r = server.run_installer("--yes", "--json", env={"ACTVT_EMAIL": H.EMAIL})
    assert r.rc == 0 and r.json()["changed"] == 0, r

    # the bash installer's files were adopted: uninstall removes them (backups kept), puts none back
    r = server.exec([COMMAND, "uninstall"], timeout=300)
    assert r.rc == 0, r
    for path in (HOOK, "/etc/vector/vector.toml", OVERRIDE, "/var/lib/actvt/install.state"):
        assert not server.exists(path), path
    assert not server.is_active("vector") and server.exists(MTLS_DIR + "/ca.key")
    assert server.read_text(backup_of[HOOK][0]) == BASH_HOOK


# --- upgrade, uninstall, reinstall ------------------------------------------------------------------------


def test_upgrade_uninstall_reinstall(harness, new_server, old_pyz):
    server = new_server()
    server.trust_acme_ca()
    url = "wss://%s:4096" % H.DOMAIN
    r = pipe_from(server, old_pyz, ["--yes"], MTLS)
    assert r.rc == 0, r
    assert OLD_TEMPLATE_MARK in server.read_text("/etc/vector/vector.toml")
    old_kept, old_command = server.sha256(KEPT_PYZ), server.sha256(COMMAND)
    pid = server.unit("vector.service")["MainPID"]
    ca = server.sha256(MTLS_DIR + "/ca.crt")
    assert client_connects(harness, server, url).rc == 0

    # the newer installer: the changed template is applied, Vector restarted for it, the kept copy updated
    r = server.run_installer("--yes", "--json", env=MTLS)
    assert r.rc == 0, r
    changed = changed_targets(r.json())
    assert "/etc/vector/vector.toml" in changed and KEPT_PYZ in changed, changed
    assert OLD_TEMPLATE_MARK not in server.read_text("/etc/vector/vector.toml")
    assert server.unit("vector.service")["MainPID"] != pid
    assert server.sha256(KEPT_PYZ) != old_kept and server.sha256(COMMAND) != old_command
    assert server.sha256(MTLS_DIR + "/ca.crt") == ca
    assert "actvt-installer" in server.sh([COMMAND, "--version"]).out
    assert server.sh([COMMAND, "status"]).rc == 0
    assert client_connects(harness, server, url).rc == 0

    # the same version again: nothing changes, Vector is not restarted
    pid = server.unit("vector.service")["MainPID"]
    r = server.run_installer("--yes", "--json", env=MTLS)
    assert r.rc == 0 and r.json()["changed"] == 0, r
    assert server.unit("vector.service")["MainPID"] == pid

    # uninstall: dry run first (changes nothing), then for real with the kept `actvt` command
    # (every folder of what the installer wrote, from its manifest: /usr/share/keyrings, /var/cache, ...;
    # the bytecode of the uninstall modules, imported for the first time, lands in the launcher's cache)
    roots = H.snapshot_roots(server.written_paths())
    before = H.without_bytecode(server.snapshot(roots))
    r = server.exec([COMMAND, "uninstall", "--dry-run"])
    assert r.rc == 0 and "remove /etc/vector/vector.toml" in r.out, r
    assert H.diff_snapshots(before, H.without_bytecode(server.snapshot(roots)), H.SELF_CHANGING + (
        "/var/lib/apt/", "/var/cache/apt/", "/etc/ld.so.cache")) == {"added": [], "removed": [], "changed": []}
    r = server.exec([COMMAND, "uninstall"], timeout=300)
    assert r.rc == 0, r
    vector = server.unit("vector.service")
    assert vector["ActiveState"] == "inactive" and vector["UnitFileState"] == "disabled", vector
    for path in ("/etc/vector/vector.toml", "/var/lib/actvt/install.state", "/var/lib/actvt/domain", KEPT_PYZ,
                 COMMAND, HOOK, "/etc/vector/certs/server.key"):
        assert not server.exists(path), path
    assert "VECTOR_CONFIG" not in server.read_text("/etc/default/vector")
    for path in (MTLS_DIR + "/ca.key", MTLS_DIR + "/clients/%s.key" % FIRST,
                 "/etc/letsencrypt/live/%s/fullchain.pem" % H.DOMAIN, "/var/lib/actvt/backups"):
        assert server.exists(path), path
    assert server.exists("/usr/bin/vector")  # the package stays unless --remove-vector

    # reinstall with the README's #cloud-config for a plain server, as cloud-init runs it
    r = run_cloud_config(server, adapt(readme_example("cloud-config-pipe")))
    assert r.rc == 0, r
    assert server.is_active("vector") and server.sha256(MTLS_DIR + "/ca.crt") == ca
    assert client_connects(harness, server, url).rc == 0  # the same bundle as before the uninstall


# --- uninstall in proxy mode leaves the site nginx served before ----------------------------------------


def test_proxy_install_from_user_data_then_uninstall_keeps_the_other_site(harness, new_server):
    server = new_server("server-nginx-other")
    server.trust_acme_ca()
    other = "curl -fsSk --resolve other.example.net:443:127.0.0.1 https://other.example.net/"
    assert server.sh(other).out.strip() == "other site"
    roots = ("/etc/nginx", "/var/www")
    before = server.snapshot(roots)

    # the README's #!/bin/bash user data (mode auto: nginx listens, so proxy)
    r = run_user_data_script(server, adapt(readme_example("user-data-bash")))
    assert r.rc == 0, r
    assert server.exists("/etc/nginx/sites-enabled/actvt-vector")
    r = client_connects(harness, server, "wss://%s/actvt" % H.DOMAIN)
    assert r.rc == 0, r
    assert server.sh(other).out.strip() == "other site"

    r = server.exec([COMMAND, "uninstall"], timeout=300)
    assert r.rc == 0, r
    assert server.is_active("nginx")
    assert server.sh(other).out.strip() == "other site"
    assert H.diff_snapshots(before, server.snapshot(roots)) == {"added": [], "removed": [], "changed": []}
    assert not server.is_active("vector")
