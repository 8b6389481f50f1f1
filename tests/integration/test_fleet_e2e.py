"""Many servers, one CA, with real ansible-playbook (issue 12, item 6).

An Ansible controller (a container with Debian's ansible-core, standing in for an admin machine) holds
the fleet's CA folder (`actvt ca init`) and runs the repository's role over SSH against three systemd
servers, two standalone and one behind nginx, each with its own domain and Let's Encrypt certificate
(Pebble). What users observe: the play recap's `changed`, Vector's MainPID, every byte of the servers in
check mode, and which bundle connects to which server.
"""
import hashlib
import json
import re

import pytest

import harness as H
import installer
from installer.core import paths
from fleet import CA_DIR, PYZ, Fleet
from test_wiring_e2e import App

pytestmark = pytest.mark.e2e

SERVERS = {"srv-a": ("a.fleet.example.com", "standalone"), "srv-b": ("b.fleet.example.com", "standalone"),
           "srv-c": ("c.fleet.example.com", "proxy")}
# issue 18: a Datadog key the admin of srv-a keeps in Vector's environment file (0600, as the package
# ships it) and a password in the role's environment (no_log): neither is in any ansible-playbook output
SECRET, PROXY_SECRET = "secret-value", "proxy-secret-value"
OURS = ("/etc/vector", "/etc/default/vector", "/var/lib/actvt", "/usr/local", "/etc/nginx", "/etc/letsencrypt",
        "/etc/actvt", "/var/cache/actvt")


@pytest.fixture(scope="module")
def fleet(harness, pyz):
    f = Fleet(harness, SERVERS, pyz).start()
    f.hosts["srv-a"].put_file("/etc/default/vector", ("DD_API_KEY=%s\n" % SECRET).encode(), mode=0o600)
    assert f.actvt("ca", "init", "--dir", CA_DIR).rc == 0
    for name in ("laptop", "phone"):
        r = f.actvt("client", "issue", name, "--ca-dir", CA_DIR)
        assert r.rc == 0, r
    yield f
    for host in f.hosts.values():
        harness.remove(host)
    harness.remove(f.controller)


class Holder:
    """A user's Mac holding bundles from the CA folder (the client container)."""

    def __init__(self, harness, fleet, tag):
        self.app, self.fleet = App(harness, tag), fleet

    def take(self, name, as_name):
        dest = "%s/%s" % (self.app.dir, as_name)
        self.app.host.put_file(dest + "/bundle.tar.gz", self.fleet.bundle(name), mode=0o600)
        self.app.host.sh("cd %s && tar -xzf bundle.tar.gz" % dest)
        return ("%s/clients/%s.crt" % (dest, name), "%s/clients/%s.key" % (dest, name))

    def connects_everywhere(self, cert):
        for name in SERVERS:
            self.app.metrics(self.fleet.url(name), cert)

    def refused_everywhere(self, cert):
        for name in SERVERS:
            self.app.refused(self.fleet.url(name), cert)


def pids(fleet):
    return {name: host.unit("vector.service")["MainPID"] for name, host in fleet.hosts.items()}


def ours(host):
    """The files of ours on ``host`` as they are now: OURS and every path the installer wrote there (its
    manifest: the keyring in /usr/share/keyrings, the launcher's cache in /var/cache/actvt, ...), the
    snapshot covering each of their folders."""
    written = sorted(set(OURS) | set(host.written_paths()))
    return H.within(host.snapshot(H.snapshot_roots(written)), written, ignore=(paths.BACKUP_DIR,))


def trusted(fleet):
    """What each server trusts now (the installer's copy of the fleet's trust.pem)."""
    return {name: host.read_file("/etc/vector/certs/mtls/ca.crt") for name, host in fleet.hosts.items()}


def hand_made_client(fleet, holder, name):
    """A client certificate signed with openssl and the CA folder's key, into its clients/ (not listed
    in index.json); the holder gets the certificate and key. Returns their paths on the holder."""
    fleet.controller.sh(
        "cd %s && umask 077 && printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
        "extendedKeyUsage=clientAuth\\n' > /root/%s.ext"
        " && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=%s"
        " -keyout clients/%s.key -out /root/%s.csr 2>/dev/null"
        " && openssl x509 -req -in /root/%s.csr -CA ca.crt -CAkey ca.key -CAserial /root/%s.srl -CAcreateserial"
        " -days 30 -extfile /root/%s.ext -out clients/%s.crt 2>/dev/null && chmod 644 clients/%s.crt"
        % ((CA_DIR,) + (name,) * 9))
    dest = "%s/%s" % (holder.app.dir, name)
    paths_ = (dest + "/%s.crt" % name, dest + "/%s.key" % name)
    for source, target in zip(("clients/%s.crt" % name, "clients/%s.key" % name), paths_):
        holder.app.host.put_file(target, fleet.controller.read_file("%s/%s" % (CA_DIR, source)), mode=0o600)
    return paths_


def unchanged_by_check(host):
    """ours(host) without the launcher's cache (/var/cache/actvt: its behaviour is the launcher's, not
    the check's): what a check run must leave byte-identical."""
    return {path: value for path, value in ours(host).items() if not path.startswith("/var/cache/actvt")}


def ca_folder(fleet):
    """The whole CA folder on the controller (every file's kind, mode, owner and sha256)."""
    return fleet.controller.snapshot([CA_DIR])


def changes(out, name):
    """The installer's changes for server ``name`` as ``-v`` prints the module's result (one JSON line)."""
    found = re.search(r'^changed: \[%s\] => (\{"changed": true, "changes": .*)$' % re.escape(name), out, re.M)
    assert found, out
    return json.loads(found.group(1))["changes"]


def staging_left(host):
    """What the role's check mode staged and left on ``host`` (the root-only folders tempfile makes)."""
    return host.sh("ls -d /tmp/actvt-check-* 2>/dev/null || true").out.split()


def check_mode_rotation(fleet, *argv):
    """rotate_ca.yml --check -v with ``argv``: every server reports its trust file changing (the copy
    and the installer's ca.crt), and the controller's CA folder, its temporary folder and every server
    are as before. Returns the Result."""
    before = ca_folder(fleet), {name: unchanged_by_check(host) for name, host in fleet.hosts.items()}
    r, stats = fleet.playbook("rotate_ca.yml", "--check", "-v", *argv)
    assert r.rc == 0 and stats["localhost"]["failed"] == 0, "%s\n%s" % (stats, r)
    for name in SERVERS:
        assert stats[name]["changed"] >= 2 and stats[name]["failed"] == 0, "%s\n%s" % (stats, r)
        assert re.search(r"changed: \[%s\] => \(item=/etc/actvt/fleet-ca.pem\)" % name, r.out), r.out
        assert any(line.startswith("file /etc/vector/certs/mtls/ca.crt ") for line in changes(r.out, name)), r.out
    assert (ca_folder(fleet), {name: unchanged_by_check(host) for name, host in fleet.hosts.items()}) == before
    assert fleet.controller.sh("ls -d /tmp/actvt-ca-* 2>/dev/null || true").out.split() == []
    assert all(staging_left(host) == [] for host in fleet.hosts.values())
    return r


def test_a_fleet_with_ansible_one_ca_revocation_and_rollover(harness, fleet):
    # srv-b starts as a single server does, on its own CA (ACTVT_ENABLE_MTLS=yes, no fleet CA): the
    # README's move to the fleet's CA ("Many servers") is then checked and made with the others below
    r, stats = fleet.playbook("fleet.yml", "--limit", "srv-b", "-e", "actvt_fleet_ca_file=")
    assert r.rc == 0 and stats["srv-b"]["changed"] > 0, "%s\n%s" % (stats, r)
    own = fleet.hosts["srv-b"]
    assert own.exists("/etc/vector/certs/mtls/ca.key") and not own.exists("/etc/actvt/fleet-ca.pem")
    own_files = unchanged_by_check(own)
    # check mode (issue 20, item 4): the trust file and the installer are staged, so on the fresh servers
    # the dry run plans the whole install with the fleet's CA (before, "ACTVT_MTLS_CA_FILE: ... does not
    # exist", or "a real run installs Actvt" unplanned), and on srv-b the move to it; nothing of ours
    # written, the staging removed
    r, stats = fleet.playbook("fleet.yml", "--check", "-v")
    assert r.rc == 0 and all(stats[name]["changed"] >= 2 and stats[name]["failed"] == 0 for name in SERVERS), \
        "%s\n%s" % (stats, r)
    assert "a real run installs Actvt" not in r.out and "does not exist" not in r.out, r.out
    for name, host in fleet.hosts.items():
        assert staging_left(host) == []
        if name != "srv-b":
            assert not host.exists("/etc/actvt") and not host.exists("/etc/vector/certs")
            assert not host.exists("/var/cache/actvt/install.pyz") and not host.exists(paths.STATE_FILE)
    # srv-b: its own CA's certificate replaced by the fleet's trust file, its CA key removed (backed up)
    moved = changes(r.out, "srv-b")
    assert "file /etc/vector/certs/mtls/ca.crt (0644 root:root): content" in moved, moved
    assert "remove /etc/vector/certs/mtls/ca.key: exists" in moved, moved
    assert unchanged_by_check(own) == own_files
    # first run: every server changes
    r, stats = fleet.playbook("fleet.yml", "--diff")
    assert r.rc == 0, str(r)
    assert all(stats[name]["changed"] > 0 and stats[name]["failed"] == 0 for name in SERVERS), stats
    assert SECRET not in r.out + r.err and "1 other line(s) of /etc/default/vector not shown" in r.out, r
    for host in fleet.hosts.values():
        assert not host.exists("/etc/vector/certs/mtls/ca.key"), "a trust-only server holds no CA key"
    before = pids(fleet)
    # second run: changed=0 everywhere, Vector not restarted (-vvv: the results and the module's arguments)
    fleet.write_inventory({"actvt_environment": dict(H.MIRROR_ENV, PROXY_PASSWORD=PROXY_SECRET)})
    r, stats = fleet.playbook("fleet.yml", "-vvv")
    assert r.rc == 0 and all(stats[name]["changed"] == 0 for name in SERVERS), "%s\n%s" % (stats, r)
    assert SECRET not in r.out + r.err and PROXY_SECRET not in r.out + r.err
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in r.out and '"ACTVT_DOMAIN": "a.fleet.example.com"' in r.out
    assert fleet.hosts["srv-a"].stat("/etc/default/vector").mode == 0o600
    assert pids(fleet) == before
    # check mode with a change in sight: reported with its diff, and not one byte changed
    snapshots = {name: ours(host) for name, host in fleet.hosts.items()}
    assert all(any(path.startswith(("/usr/share/keyrings/", "/var/cache/actvt/")) for path in snapshot)
               for snapshot in snapshots.values()), "the snapshot misses folders the installer writes"
    fleet.write_inventory({"actvt_environment": dict(H.MIRROR_ENV, ACTVT_VECTOR_PORT="4097")})
    # srv-a as a host set up without Ansible (cloud-init): no install.pyz where the role keeps it. Its
    # dry run is planned all the same, from the staged installer (not "a real run installs Actvt")
    kept = fleet.hosts["srv-a"].read_file("/var/cache/actvt/install.pyz")
    fleet.hosts["srv-a"].sh("rm /var/cache/actvt/install.pyz")
    snapshots = {name: ours(host) for name, host in fleet.hosts.items()}
    r, stats = fleet.playbook("fleet.yml", "--check", "--diff", "-v")
    assert r.rc == 0, str(r)
    assert SECRET not in r.out + r.err
    # the installer's task, nothing else (and on srv-a the copy of install.pyz)
    assert {name: stats[name]["changed"] for name in SERVERS} == {"srv-a": 2, "srv-b": 1, "srv-c": 1}, (stats, r)
    assert '-address = "0.0.0.0:4096"' in r.out and '+address = "0.0.0.0:4097"' in r.out, r
    assert 'changed: [srv-a] => {"changed": true, "changes": ["file /etc/vector/vector.toml' in r.out, r.out
    assert "a real run installs Actvt" not in r.out, r.out
    assert {name: ours(host) for name, host in fleet.hosts.items()} == snapshots
    assert all(staging_left(host) == [] for host in fleet.hosts.values())
    assert pids(fleet) == before
    fleet.hosts["srv-a"].put_file("/var/cache/actvt/install.pyz", kept, mode=0o644)
    # a new install.pyz (here the same build with a byte more, which the launcher ignores) is reported
    # by check mode as the copy a real run makes; the staged copy's sha256 is checked on the server
    fleet.controller.sh("cp %s /root/new.pyz && printf '#' >> /root/new.pyz" % PYZ)
    new = fleet.controller.read_file("/root/new.pyz")
    fleet.write_inventory({"actvt_installer_src": "~/new.pyz", "actvt_installer_sha256": hashlib.sha256(new).hexdigest()})
    r, stats = fleet.playbook("fleet.yml", "--check", "--limit", "srv-a")
    assert r.rc == 0 and stats["srv-a"]["changed"] == 1, "%s\n%s" % (stats, r)
    assert re.search(r"changed: \[srv-a\] => \(item=/var/cache/actvt/install.pyz\)", r.out), r.out
    assert fleet.hosts["srv-a"].read_file("/var/cache/actvt/install.pyz") == kept and staging_left(fleet.hosts["srv-a"]) == []
    # the collection built and installed offline (ansible-galaxy, as its README shows), its playbook run by name
    fleet.write_inventory()
    r = fleet.install_collection()
    assert r.rc == 0 and "actvt.installer:%s was installed successfully" % installer.__version__ in r.out, r
    r, stats = fleet.playbook("actvt.installer.fleet", "--check")
    assert r.rc == 0 and all(stats[name]["changed"] == 0 for name in SERVERS), "%s\n%s" % (stats, r)
    assert SECRET not in r.out + r.err
    # the role's argument_specs stop a typo before any task runs on a server
    r, stats = fleet.playbook("fleet.yml", "--limit", "srv-b", "-e", "actvt_mode=prxy")
    assert r.rc != 0 and "value of actvt_mode must be one of: auto, standalone, proxy, got: prxy" in r.out, r.out
    assert stats["srv-b"]["failed"] == 1 and stats["srv-b"]["changed"] == 0, stats
    assert "Validating arguments against arg spec 'main'" in r.out and "The installer (checked above)" not in r.out, r.out

    # one bundle from the CA folder connects to every server; another CA's to none
    holder = Holder(harness, fleet, "fleet")
    laptop, phone = holder.take("laptop", "laptop"), holder.take("phone", "phone-1")
    holder.connects_everywhere(laptop)
    holder.refused_everywhere(holder.app.other_ca_cert())

    # revoke the laptop: the CRL pushed to the proxy server denies it there at once
    r = fleet.actvt("client", "revoke", "laptop", "--ca-dir", CA_DIR, "--yes")
    assert r.rc == 0, str(r)
    # check mode sees the new CRL it would push (staged), not the old one: the copy and the installer's
    # own change (before, only the copy was reported and the dry run read the stale crl.pem)
    r, stats = fleet.playbook("fleet.yml", "--check", "-v", "--limit", "srv-c")
    assert r.rc == 0 and stats["srv-c"]["changed"] == 2, "%s\n%s" % (stats, r)
    assert "file /etc/vector/certs/mtls/crl.pem (0644 root:root): content" in r.out, r.out
    r, stats = fleet.playbook()
    assert r.rc == 0 and stats["srv-c"]["changed"] > 0 and stats["srv-a"]["changed"] == 0, "%s\n%s" % (stats, r)
    holder.app.refused(fleet.url("srv-c"), laptop)
    holder.connects_everywhere(phone)

    # issue 20, item 3: a step that is not start or finish (a typo, or no -e) stops on the controller
    # before any server is touched, and before the CA folder is
    trust, ca = trusted(fleet), fleet.controller.read_file(CA_DIR + "/ca.crt")
    for argv in (["-e", "actvt_ca_step=strat"], []):
        r, stats = fleet.playbook("rotate_ca.yml", *argv)
        assert r.rc != 0 and set(stats) == {"localhost"} and stats["localhost"]["failed"] == 1, "%s\n%s" % (stats, r)
        said = "actvt_ca_step: strat is not a step" if argv else "actvt_ca_step is not set"
        assert said + "; allowed: start or finish" in r.out, r.out
    assert trusted(fleet) == trust and fleet.controller.read_file(CA_DIR + "/ca.crt") == ca
    assert not fleet.controller.exists(CA_DIR + "/previous")
    # a client made by hand with the CA's key (openssl, as before `actvt client`): index.json does not
    # list it, so the rotation does not re-issue it, and finishing would cut it off
    tablet = hand_made_client(fleet, holder, "tablet")

    # rotate_ca.yml --check (issue 20, item 4): the step runs on a temporary copy of the CA folder and
    # each server's dry run reads the copy's trust file (before, the CA step was skipped and the
    # servers' dry runs saw no change); the CA folder and every server byte-identical after
    check_mode_rotation(fleet, "-e", "actvt_ca_step=start")

    # standalone servers read no CRL: a rollover. Mid-way both CAs are trusted: old and new bundles connect
    r, stats = fleet.playbook("rotate_ca.yml", "-e", "actvt_ca_step=start")
    assert r.rc == 0, str(r)
    assert '"phone"' in r.out and '"tablet"' not in r.out, r.out  # what to hand out
    phone_new = holder.take("phone", "phone-2")
    holder.connects_everywhere(phone)
    holder.connects_everywhere(phone_new)
    holder.app.metrics(fleet.url("srv-a"), tablet)
    # finishing is refused while tablet holds only a certificate of the old CA: named, nothing changed
    trust = trusted(fleet)
    r, stats = fleet.playbook("rotate_ca.yml", "-e", "actvt_ca_step=finish")
    assert r.rc != 0 and set(stats) == {"localhost"}, "%s\n%s" % (stats, r)
    assert "tablet (expires " in r.out and "still holds only a certificate of the old CA: re-issue it with " \
        "`actvt client renew tablet --ca-dir %s`, revoke it, or pass --force" % CA_DIR in r.out, r.out
    assert trusted(fleet) == trust and fleet.controller.exists(CA_DIR + "/previous/ca.crt")
    r = check_mode_rotation(fleet, "-e", "actvt_ca_step=finish", "-e", "actvt_ca_force=true")
    assert '"tablet"' in r.out.split("Who was cut off", 1)[1], r.out
    # forced: finished, saying who was cut off; the revoked laptop and tablet are denied everywhere, the
    # re-issued phone connects
    r, stats = fleet.playbook("rotate_ca.yml", "-e", "actvt_ca_step=finish", "-e", "actvt_ca_force=true")
    assert r.rc == 0, str(r)
    assert "TASK [Who was cut off (actvt_ca_force)]" in r.out and '"tablet"' in r.out.split("Who was cut off", 1)[1]
    holder.refused_everywhere(tablet)
    holder.refused_everywhere(laptop)
    holder.refused_everywhere(phone)
    holder.connects_everywhere(phone_new)


def test_the_role_checks_the_installers_signature_on_the_controller_before_any_server(fleet):
    """actvt_installer_allowed_signers instead of a pinned sha256: a release signed by an allowed key
    passes (in check mode too); a changed byte, or a signature by another key, stops the play on the
    controller before the installer reaches a server."""
    c = fleet.controller
    c.sh("cd /root && rm -rf sign && mkdir sign && cd sign"
         " && ssh-keygen -q -t ed25519 -N '' -f release && ssh-keygen -q -t ed25519 -N '' -f other"
         " && cp /root/install.pyz . && ssh-keygen -q -Y sign -f release -n file install.pyz"
         " && cp install.pyz tampered.pyz && printf '#' >> tampered.pyz && cp install.pyz.sig tampered.pyz.sig"
         " && cp install.pyz other.pyz && ssh-keygen -q -Y sign -f other -n file other.pyz")
    allowed = 'releases@actvt.io namespaces="file" ' + " ".join(c.read_file("/root/sign/release.pub").decode().split()[:2])
    base = {"actvt_installer_sha256": "", "actvt_installer_allowed_signers": allowed}
    try:
        fleet.write_inventory({**base, "actvt_installer_src": "~/sign/install.pyz"})
        r, stats = fleet.playbook("fleet.yml", "--check", "--limit", "srv-a")
        assert r.rc == 0 and stats["srv-a"]["failed"] == 0, "%s\n%s" % (stats, r)
        assert "actvt : Refuse an install.pyz without a good signature" in r.out, r.out
        installed = "sha256sum /var/cache/actvt/install.pyz 2>&1 || true"
        before = fleet.hosts["srv-a"].sh(installed).out
        for name in ("tampered", "other"):
            fleet.write_inventory({**base, "actvt_installer_src": "~/sign/%s.pyz" % name})
            r, stats = fleet.playbook("fleet.yml", "--limit", "srv-a")
            assert r.rc != 0 and stats["srv-a"]["failed"] == 1, "%s\n%s" % (stats, r)
            assert "Refuse an install.pyz without a good signature" in r.out and "Could not verify signature" in r.out, r.out
            assert fleet.hosts["srv-a"].sh(installed).out == before
    finally:
        fleet.write_inventory()
