"""Docker end-to-end harness: hosts on an internal network, driven as users drive them.

Hosts (images built by tests/integration/setup.sh from Dockerfile.test):
  mirror   http://mirror/install.pyz, http://mirror/vector-apt (signed repo "stable vector-0" holding the
           Vector TEST DOUBLE) and apt-cacher-ng on mirror:3142, the servers' only way to Debian's
           packages; the only container also attached to a network with a route out.
  acme     Pebble at https://acme:14000/dir (its listener CA: Harness.acme_ca_pem()).
  client   curl, openssl, wsclient (python3-websockets).
  server   systemd as PID 1, fresh for each scenario; answers to DOMAIN and "server" on the network.

Everything created here carries the label LABEL=<session id> (and LABEL_PID=<pid of the test run>), and is
removed by Harness.close(), also when a test fails; leftovers of a run that died are removed at the next start.
"""
import io
import json
import os
import shlex
import sys
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass

try:
    import docker
    import docker.errors
except ImportError:  # the e2e tests then skip (or fail under CI=true); the stand-in's tests still run
    docker = None

HERE = os.path.dirname(os.path.abspath(__file__))
LABEL = "actvt-test.session"
LABEL_PID = "actvt-test.pid"
# apt-cacher-ng's cache, kept between runs (label actvt-test.cache)
CACHE_VOLUME = os.environ.get("ACTVT_E2E_CACHE_VOLUME", "actvt-e2e-apt-cache")
DOMAIN = "actvt-e2e.example.com"  # also ACTVT_TEST_DOMAIN of Dockerfile.test (server-nginx-domain)
EMAIL = "admin@example.com"
SUITES = ("bullseye", "bookworm", "trixie")  # Debian 11, 12, 13
MIRROR_URL = "http://mirror"
PIPE_URL = MIRROR_URL + "/install.pyz"
VECTOR_APT_URL = MIRROR_URL + "/vector-apt"
VECTOR_KEY_URL = VECTOR_APT_URL + "/key.asc"  # ASCII-armored, like the real signing key; key.gpg is binary
ACME_DIRECTORY = "https://acme:14000/dir"
ACME_CA_PATH = "/etc/pebble-test/ca.crt"  # in the acme image: the CA of Pebble's listener certificate
MIRROR_KEY_FILE = "/srv/mirror/vector-apt/key.asc"  # VECTOR_KEY_URL's file in the mirror container

#: The variables every installer run of the harness gets (installer_env, and the scenarios that write
#: them into an env file, a Dockerfile or an inventory): the ACME server, the mirror's Vector repository
#: and its signing key. The key is made when the mirror image is built, so its fingerprint
#: (ACTVT_VECTOR_KEY_FINGERPRINTS, without which the installer refuses a key that is not Datadog's) is
#: added here when the harness starts, read from the running mirror.
MIRROR_ENV = {
    "ACTVT_ACME_SERVER": ACME_DIRECTORY,
    "ACTVT_VECTOR_APT_URL": VECTOR_APT_URL,
    "ACTVT_VECTOR_KEY_URL": VECTOR_KEY_URL,
}

# Paths compared by snapshot(), and the only things there that change on an idle host by themselves
# (measured: nothing changed in 20 s on idle Debian 11/12/13 servers; these two change when a timer
# fires or systemd-random-seed runs, which can happen during a long scenario).
SNAPSHOT_ROOTS = ("/etc", "/var/lib", "/usr/local")
SELF_CHANGING = (
    "/var/lib/systemd/timers/",
    "/var/lib/systemd/random-seed",
)

# Files Docker or systemd make per container: they differ between two hosts, not within one.
PER_CONTAINER = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/machine-id", "/var/lib/dbus/machine-id")

SERVER_CAPS = ["SYS_ADMIN"]
FIREWALL_CAPS = ["NET_ADMIN", "NET_RAW"]
FIREWALL_KINDS = ("server-ufw", "server-firewalld", "server-iptables")


class HarnessUnavailable(Exception):
    """Docker or the test images cannot be used: the e2e tests skip (or fail under CI=true)."""


# ACTVT_E2E_IMAGES: the repository prefix of the test images (setup.sh builds the same), so that a
# second checkout can build and test its own images beside the first one's.
IMAGES = os.environ.get("ACTVT_E2E_IMAGES", "actvt-test")


def image_name(kind, suite="bookworm"):
    if kind in ("acme", "mirror", "client", "controller"):
        return "%s/%s:latest" % (IMAGES, kind)
    return "%s/%s:%s" % (IMAGES, kind, suite)


def connect(timeout=1800):
    """A Docker client that answers, with the API version negotiated with the daemon."""
    if docker is None:
        raise HarnessUnavailable("the Python package `docker` is not installed (pip install -e .[test])")
    try:
        client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
    except Exception as exc:  # DockerException, requests' connection errors, missing socket
        raise HarnessUnavailable("no Docker daemon answers (%s); run tests/integration/setup.sh" % exc)
    return client


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True


def remove_leftovers(client):
    """Remove containers, image tags and networks of earlier test runs whose process is gone."""
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        if not _pid_alive(c.labels.get(LABEL_PID, "")):
            c.remove(force=True, v=True)
    for img in client.images.list(filters={"label": LABEL}):
        if not _pid_alive(img.labels.get(LABEL_PID, "")):
            for tag in img.tags or [img.id]:
                try:
                    client.images.remove(tag, force=True)
                except docker.errors.APIError:
                    pass
    for n in client.networks.list(filters={"label": LABEL}):
        if not _pid_alive(n.attrs.get("Labels", {}).get(LABEL_PID, "")):
            try:
                n.remove()
            except docker.errors.APIError:
                pass


@dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float = 0.0
    command: str = ""

    def json(self):
        return json.loads(self.out)

    def __str__(self):
        return "$ %s\n[exit %d after %.1f s]\n--- stdout\n%s\n--- stderr\n%s" % (
            self.command, self.rc, self.seconds, self.out, self.err)


@dataclass
class FileInfo:
    path: str
    mode: int  # permission bits, e.g. 0o640
    owner: str
    group: str
    size: int
    kind: str  # "file", "dir", "link", ...


class Host:
    """One container, used through `docker exec` as root."""

    def __init__(self, harness, container, name):
        self.harness, self.container, self.name = harness, container, name
        self.aliases = []  # names that resolve to this host on the internal network

    # -- commands ---------------------------------------------------------------------------------
    def exec(self, argv, env=None, user=None, timeout=600, stdin=None, workdir=None):
        """Run argv (list, or a shell string run by sh -c); returns Result. timeout via coreutils."""
        if isinstance(argv, str):
            command = argv
            argv = ["sh", "-c", argv]
        else:
            command = " ".join(shlex.quote(a) for a in argv)
        if stdin is not None:
            return self._exec_stdin(argv, command, env, user, timeout, stdin)
        full = ["timeout", "-k", "5", str(int(timeout))] + list(argv)
        t = time.time()
        rc, (out, err) = self.container.exec_run(full, environment=env or {}, user=user or "root",
                                                 demux=True, workdir=workdir)
        return Result(rc, (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace"),
                      time.time() - t, command)

    def _exec_stdin(self, argv, command, env, user, timeout, data):
        # stdin goes through a temporary file: docker exec's attach with stdin is not demultiplexable.
        path = "/tmp/.actvt-test-stdin-%s" % uuid.uuid4().hex[:8]
        self.put_file(path, data if isinstance(data, bytes) else data.encode(), mode=0o600)
        sh = "%s < %s; rc=$?; rm -f %s; exit $rc" % (" ".join(shlex.quote(a) for a in argv), path, path)
        r = self.exec(["sh", "-c", sh], env=env, user=user, timeout=timeout)
        r.command = command
        return r

    def sh(self, script, check=True, **kw):
        r = self.exec(script, **kw)
        if check and r.rc != 0:
            raise AssertionError("command failed on %s:\n%s" % (self.name, r))
        return r

    # -- files ------------------------------------------------------------------------------------
    def put_file(self, path, data, mode=0o644):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        self.exec(["mkdir", "-p", os.path.dirname(path)])
        self.container.put_archive(os.path.dirname(path), buf.getvalue())

    def read_file(self, path):
        bits, _stat = self.container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
            member = tar.next()
            return tar.extractfile(member).read()

    def read_text(self, path):
        return self.read_file(path).decode()

    def exists(self, path):
        return self.exec(["test", "-e", path]).rc == 0

    def stat(self, path):
        r = self.exec(["stat", "-c", "%a|%U|%G|%s|%F", path])
        if r.rc != 0:
            return None
        mode, owner, group, size, kind = r.out.strip().split("|")
        kind = {"regular file": "file", "regular empty file": "file", "directory": "dir",
                "symbolic link": "link"}.get(kind, kind)
        return FileInfo(path, int(mode, 8), owner, group, int(size), kind)

    def sha256(self, path):
        r = self.sh(["sha256sum", path])
        return r.out.split()[0]

    # -- snapshots: a listing with hashes, to prove that nothing changed ---------------------------
    def snapshot(self, roots=SNAPSHOT_ROOTS):
        """{path: (kind, mode, uid, gid, sha256 or link target)} for everything under roots."""
        r = self.sh(["python3", "-c", _SNAPSHOT_PY] + list(roots), timeout=300)
        return json.loads(r.out)

    def planned_paths(self, env=None, warm_cache=True):
        """Every path the plan of an install with ``env`` (see installer_env) writes or removes: the
        targets of the actions of ``--dry-run --json`` that are paths (files, folders, links, keyrings,
        removals; a service's target is its unit's name), with the installer's own (run_writes). The dry
        run writes nothing (test_foundation_e2e); with warm_cache, a `--version` run first fills the
        launcher's cache as every real run does before the installer reads its input (a refused one
        too), so that a snapshot taken next shows only what the run after it changes, and the dry run
        then runs from that cache (no second unpacking: well under a second added)."""
        if warm_cache:
            r = self.run_installer("--version")
            assert r.rc == 0, r
        r = self.run_installer("--dry-run", "--json", "--yes", env=env)
        assert r.rc == 0, r
        return sorted({action["target"] for action in r.json()["actions"] if (action["target"] or "").startswith("/")}
                      | set(run_writes()))

    def written_paths(self):
        """Every path the installer's runs wrote on this host (its manifest), with run_writes()."""
        manifest = json.loads(self.read_text(_installer_paths().MANIFEST))
        return sorted(set(manifest["paths"]) | set(run_writes()))

    # -- systemd ----------------------------------------------------------------------------------
    def wait_for_systemd(self, timeout=60):
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            state = self.exec(["systemctl", "is-system-running"]).out.strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.5)
        raise AssertionError("systemd on %s did not finish booting: %r\n%s"
                             % (self.name, state, self.exec("systemctl --failed --no-pager").out))

    def unit(self, name):
        """{'ActiveState': ..., 'SubState': ..., 'UnitFileState': ..., 'MainPID': ..., ...}"""
        props = "ActiveState,SubState,UnitFileState,MainPID,ExecMainStartTimestamp,NRestarts,LoadState"
        out = self.exec(["systemctl", "show", name, "--property=" + props]).out
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def is_active(self, name):
        return self.exec(["systemctl", "is-active", "--quiet", name]).rc == 0

    def journal(self, unit=None, lines=50):
        argv = ["journalctl", "--no-pager", "-n", str(lines)]
        if unit:
            argv += ["-u", unit]
        return self.exec(argv).out

    # -- the installer, driven as users drive it --------------------------------------------------
    def installer_env(self, env=None):
        """The harness's ACTVT_ACME_SERVER / ACTVT_VECTOR_APT_URL / ACTVT_VECTOR_KEY_URL and the
        fingerprint of the mirror's key (ACTVT_VECTOR_KEY_FINGERPRINTS), then env (full variable
        names; a value of None removes a variable)."""
        full = dict(MIRROR_ENV, ACTVT_VECTOR_KEY_FINGERPRINTS=self.harness.vector_key_fingerprint)
        full.update(env or {})
        return {k: str(v) for k, v in full.items() if v is not None}

    def run_installer(self, *args, env=None, via="pipe", timeout=900):
        """Run the installer with args and env (see installer_env) as a user would, as root.

        via="pipe":  curl -fsSL http://mirror/install.pyz | python3 - ARGS   (the documented way)
        via="file":  downloads it to /root/install.pyz, then ./install.pyz ARGS
        via="python": python3 /root/install.pyz ARGS
        """
        full_env = self.installer_env(env)
        quoted = " ".join(shlex.quote(a) for a in args)
        if via == "pipe":
            script = "curl -fsSL %s | python3 - %s" % (PIPE_URL, quoted)
        elif via == "file":
            script = ("cd /root && curl -fsSLo install.pyz %s && chmod +x install.pyz && ./install.pyz %s"
                      % (PIPE_URL, quoted))
        elif via == "python":
            script = "cd /root && curl -fsSLo install.pyz %s && python3 install.pyz %s" % (PIPE_URL, quoted)
        else:
            raise ValueError(via)
        r = self.exec(["sh", "-c", script], env=full_env, timeout=timeout)
        self.harness.record(self, r)
        return r

    def installer_log(self):
        for path in ("/var/log/actvt-install.log", "/tmp/actvt-install.log"):
            if self.exists(path):
                return self.read_text(path)
        return ""

    def trust_acme_ca(self):
        """Add Pebble's listener CA (certbot talks to it) and the root Pebble issues under (the fronts
        verify Vector's certificate against the system store, as a real server's holds Let's Encrypt's
        root) to the server's system store (update-ca-certificates)."""
        self.put_file("/usr/local/share/ca-certificates/actvt-test-pebble.crt", self.harness.acme_ca_pem())
        self.put_file("/usr/local/share/ca-certificates/actvt-test-pebble-issuer.crt", self.harness.pebble_issuer_pem())
        self.sh("update-ca-certificates >/dev/null")

    def install_nvidia_smi_double(self, path="/usr/local/bin/nvidia-smi", delay=None):
        """Put the nvidia-smi TEST DOUBLE (one fake GPU, docker/nvidia-smi) on the server's PATH; each query
        takes DELAY seconds (as a busy driver's)."""
        with open(os.path.join(HERE, "docker", "nvidia-smi"), "rb") as fh:
            self.put_file(path, fh.read(), mode=0o755)
        if delay is not None:
            self.put_file("/etc/nvidia-smi-double/delay", b"%s\n" % str(delay).encode(), mode=0o644)

    def diagnostics(self, units=("vector", "nginx", "apache2", "actvt-firstboot", "certbot")):
        parts = ["==== %s: /var/log/actvt-install.log (last 200 lines)" % self.name,
                 "\n".join(self.installer_log().splitlines()[-200:])]
        for unit in units:
            if self.unit(unit + ".service").get("LoadState") == "loaded":
                parts += ["==== %s: journalctl -u %s (last 40 lines)" % (self.name, unit), self.journal(unit, 40)]
        parts += ["==== %s: systemctl --failed" % self.name, self.exec("systemctl --failed --no-pager").out]
        return "\n".join(parts)


class Harness:
    """Networks + mirror + acme + client for a test session; servers are made per scenario."""

    def __init__(self, client, pyz_path=None):
        self.client = client
        self.session = uuid.uuid4().hex[:8]
        self.labels = {LABEL: self.session, LABEL_PID: str(os.getpid())}
        self.containers = []
        self.networks = []
        self.images = []  # tags built by build_image()
        self._hosts = []
        self.runs = []  # (host name, Result) of installer runs, for diagnostics
        self._lock = threading.Lock()
        missing = [img for img in (image_name("mirror"), image_name("acme"), image_name("client"))
                   if not self.has_image(img)]
        if missing:
            raise HarnessUnavailable("images %s are missing; run tests/integration/setup.sh" % ", ".join(missing))
        remove_leftovers(client)
        try:
            self._start_infra(pyz_path)
        except BaseException:
            self.close()
            raise

    def _start_infra(self, pyz_path):
        # ACTVT_E2E_APT_OFFLINE=1: no network with a route out at all; apt-cacher-ng serves its cache only
        offline = os.environ.get("ACTVT_E2E_APT_OFFLINE", "0") == "1"
        self.net = self._network("actvt-e2e-%s" % self.session, internal=True)
        self._ensure_cache_volume()
        self.mirror = self._start("mirror", image_name("mirror"), aliases=["mirror"],
                                  volumes={CACHE_VOLUME: {"bind": "/var/cache/apt-cacher-ng", "mode": "rw"}},
                                  environment={"ACNG_OFFLINE": "1" if offline else "0"})
        if not offline:
            self.outbound = self._network("actvt-e2e-%s-out" % self.session, internal=False)
            self.outbound.connect(self.mirror.container)
        self.acme = self._start("acme", image_name("acme"), aliases=["acme"])
        self.client_host = self._start("client", image_name("client"), aliases=["client"])
        # the checkout's own tools, so that a change to them needs no image rebuild
        for tool in ("wsclient.py", "flood.py"):
            with open(os.path.join(HERE, "docker", tool), "rb") as handle:
                self.client_host.put_file("/usr/local/bin/" + tool.rsplit(".", 1)[0], handle.read(), mode=0o755)
        if pyz_path:
            self.publish_pyz(pyz_path)
        self._wait_http(self.mirror, "http://127.0.0.1/vector-apt/dists/stable/InRelease")
        self._wait_http(self.acme, "https://localhost:14000/dir")
        self.vector_key_fingerprint = self.mirror_key_fingerprint()
        MIRROR_ENV["ACTVT_VECTOR_KEY_FINGERPRINTS"] = self.vector_key_fingerprint

    def mirror_key_fingerprint(self):
        """The primary key's fingerprint of the mirror's signing key, as gpg (in the mirror) prints it."""
        r = self.mirror.sh(["gpg", "--batch", "--show-keys", "--with-colons", MIRROR_KEY_FILE])
        lines = [line.split(":") for line in r.out.splitlines()]
        kinds = [fields[0] for fields in lines]
        if "pub" not in kinds or kinds.index("pub") + 1 >= len(lines) or lines[kinds.index("pub") + 1][0] != "fpr":
            raise AssertionError("no fingerprint in gpg's listing of the mirror's key:\n%s" % r)
        return lines[kinds.index("pub") + 1][9]

    # -- plumbing ---------------------------------------------------------------------------------
    def has_image(self, name):
        try:
            self.client.images.get(name)
            return True
        except docker.errors.ImageNotFound:
            return False

    def _network(self, name, internal):
        net = self.client.networks.create(name, driver="bridge", internal=internal, labels=self.labels)
        self.networks.append(net)
        return net

    def _ensure_cache_volume(self):
        try:
            self.client.volumes.get(CACHE_VOLUME)
        except docker.errors.NotFound:
            self.client.volumes.create(CACHE_VOLUME, labels={"actvt-test.cache": "1"})

    def _start(self, role, image, aliases=(), hostname=None, systemd=False, caps=(), volumes=None, tmpfs=None,
               environment=None):
        api = self.client.api
        name = "actvt-e2e-%s-%s-%s" % (self.session, role, uuid.uuid4().hex[:4])
        binds = dict(volumes or {})
        host_kw = {}
        if systemd:
            binds["/sys/fs/cgroup"] = {"bind": "/sys/fs/cgroup", "mode": "rw"}
            tmpfs = dict(tmpfs or {}, **{"/run": "", "/run/lock": ""})
            host_kw["security_opt"] = ["seccomp=unconfined", "apparmor=unconfined"]
            caps = list(SERVER_CAPS) + list(caps)
        host_config = api.create_host_config(binds=binds or None, tmpfs=tmpfs or None, cap_add=list(caps) or None,
                                             **host_kw)
        net_config = api.create_networking_config(
            {self.net.name: api.create_endpoint_config(aliases=list(aliases) or None)})
        created = api.create_container(image, name=name, hostname=hostname or role, labels=self.labels,
                                       host_config=host_config, networking_config=net_config, detach=True,
                                       environment=environment)
        container = self.client.containers.get(created["Id"])
        self.containers.append(container)
        container.start()
        host = Host(self, container, name)
        host.aliases = list(aliases)
        self._hosts.append(host)
        return host

    def _wait_http(self, host, url, timeout=30):
        deadline = time.time() + timeout
        args = ["python3", "-c", "import ssl, sys, urllib.request as u; "
                "u.urlopen(sys.argv[1], timeout=5, context=ssl._create_unverified_context())", url]
        while time.time() < deadline:
            if host.exec(args, timeout=10).rc == 0:
                return
            time.sleep(0.3)
        raise AssertionError("%s never answered on %s:\n%s" % (host.name, url, host.container.logs()[-2000:]))

    def record(self, host, result):
        with self._lock:
            self.runs.append((host.name, result))

    # -- what tests use ---------------------------------------------------------------------------
    def publish_pyz(self, path):
        with open(path, "rb") as fh:
            self.mirror.put_file("/srv/mirror/install.pyz", fh.read(), mode=0o644)

    def acme_ca_pem(self):
        return self.acme.read_file(ACME_CA_PATH)

    def pebble_issuer_pem(self):
        """The root that signs the certificates Pebble issues (random per Pebble start)."""
        return self.acme.sh(["curl", "-fsSk", "https://localhost:15000/roots/0"]).out.encode()

    def server(self, kind="server", suite="bookworm", domain=DOMAIN, firewall=False, wait=True):
        """A fresh systemd server (kind: server, server-nginx-other, server-nginx-domain, server-apache,
        server-ufw, server-firewalld, server-iptables, server-ssh) answering to "server" and, alone, to `domain` (None: no domain; see give_domain)."""
        image = image_name(kind, suite)
        if not self.has_image(image):
            raise HarnessUnavailable("image %s is missing; run tests/integration/setup.sh "
                                     "(ACTVT_E2E_VARIANT_SUITES for variants)" % image)
        if domain:
            self._drop_alias(domain)
        aliases = ["server"] + ([domain] if domain else [])
        host = self._start("server", image, aliases=aliases, hostname="actvt-server", systemd=True,
                           caps=FIREWALL_CAPS if firewall or kind in FIREWALL_KINDS else ())
        host.aliases = aliases
        if wait:
            host.wait_for_systemd()
        return host

    def _drop_alias(self, alias):
        for host in self.hosts:
            if alias in host.aliases:
                self._reconnect(host, [a for a in host.aliases if a != alias])

    def _reconnect(self, host, aliases):
        self.net.disconnect(host.container)
        self.net.connect(host.container, aliases=aliases)
        host.aliases = aliases

    def give_domain(self, host, domain=DOMAIN):
        """Make `domain` resolve to host alone (Pebble's http-01 must reach one server): the other servers
        that answered to it are reconnected without it. A server keeps running through this."""
        if domain in host.aliases:
            return
        self._drop_alias(domain)
        self._reconnect(host, host.aliases + [domain])

    @property
    def hosts(self):
        return [h for h in self._hosts if h.container in self.containers]

    def build_image(self, dockerfile, tag=None, files=None, buildargs=None, timeout=1200):
        """Build an image from Dockerfile text (+ {name: bytes} context files) with its RUN steps on the
        internal network, so they reach http://mirror (e.g. the pipe command in bake mode) and nothing else.
        The tag is removed by close(). Returns (tag, build log)."""
        tag = tag or "%s/built-%s-%s:latest" % (IMAGES, self.session, uuid.uuid4().hex[:6])
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in dict(files or {}, Dockerfile=dockerfile.encode()).items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        self.images.append(tag)
        log = []
        try:
            for chunk in self.client.api.build(fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True,
                                               network_mode=self.net.name, labels=self.labels,
                                               buildargs=buildargs, timeout=timeout, decode=True):
                log.append(chunk.get("stream") or chunk.get("status") or "")
                if "error" in chunk:
                    raise AssertionError("docker build failed: %s\n%s" % (chunk["error"], "".join(log)[-4000:]))
        except docker.errors.APIError as exc:
            raise AssertionError("docker build failed: %s\n%s" % (exc, "".join(log)[-4000:]))
        return tag, "".join(log)

    def run_image(self, tag, role="baked", aliases=("server", DOMAIN), systemd=True, **kw):
        """Start a container of an image made by build_image (systemd by default) on the internal network."""
        host = self._start(role, tag, aliases=list(aliases), hostname="actvt-server", systemd=systemd, **kw)
        return host

    def remove(self, host):
        try:
            host.container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        if host.container in self.containers:
            self.containers.remove(host.container)

    def close(self):
        for c in reversed(self.containers):
            try:
                c.remove(force=True, v=True)
            except docker.errors.APIError:
                pass
        self.containers.clear()
        for tag in self.images:
            try:
                self.client.images.remove(tag, force=True)
            except docker.errors.APIError:
                pass
        self.images.clear()
        for n in self.networks:
            try:
                n.reload()
                for c in n.containers:
                    n.disconnect(c, force=True)
                n.remove()
            except docker.errors.APIError:
                pass
        self.networks.clear()


def _installer_paths():
    """installer/core/paths.py: where the installer writes (the harness also runs outside pytest, from bench/)."""
    repo = os.path.dirname(os.path.dirname(HERE))
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from installer.core import paths

    return paths


def run_writes():
    """What a run writes besides its plan's actions: the launcher's cache of the unpacked zipapp (made
    before there is a plan) and the state folder (backups, the manifest)."""
    paths = _installer_paths()
    return (paths.CACHE_DIR, paths.STATE_DIR)


def snapshot_roots(written):
    """The folders a snapshot must cover so that no write to ``written`` (paths, e.g. planned_paths())
    escapes it: SNAPSHOT_ROOTS and the folder of every path, fewest first (none inside another)."""
    roots = []
    for folder in sorted(set(SNAPSHOT_ROOTS) | {os.path.dirname(path.rstrip("/")) or "/" for path in written}):
        if not any(folder == root or folder.startswith(root.rstrip("/") + "/") for root in roots):
            roots.append(folder)
    return tuple(roots)


def without_bytecode(snapshot):
    """``snapshot`` without the bytecode Python writes into the launcher's cache the first time a run
    imports one of the installer's modules (the zipapp carries no .pyc: one file serves every Python
    minor): the program's own cache, not a change a run makes to the host."""
    cache = _installer_paths().CACHE_DIR + "/"
    return {path: value for path, value in snapshot.items()
            if not (path.startswith(cache) and "/__pycache__" in path)}


def within(snapshot, written, ignore=()):
    """The entries of ``snapshot`` at or under one of the paths ``written``, minus the ``ignore`` prefixes."""
    def under(path, prefix):
        return path == prefix or path.startswith(prefix.rstrip("/") + "/")

    return {path: value for path, value in snapshot.items()
            if any(under(path, prefix) for prefix in written) and not any(under(path, p) for p in ignore)}


def diff_snapshots(before, after, ignore=SELF_CHANGING):
    """Paths added, removed or changed between two snapshots, minus the ignored prefixes and the
    bytecode in the launcher's cache (without_bytecode: a real run, a refused one too, writes it for
    the modules it imports; a dry run writes none, so planned_paths() no longer leaves it there)."""
    cache = _installer_paths().CACHE_DIR + "/"

    def keep(path):
        return not any(path.startswith(p) for p in ignore) and not (path.startswith(cache) and "/__pycache__" in path)

    added = sorted(p for p in after if p not in before and keep(p))
    removed = sorted(p for p in before if p not in after and keep(p))
    changed = sorted(p for p in before if p in after and before[p] != after[p] and keep(p))
    return {"added": added, "removed": removed, "changed": changed}


_SNAPSHOT_PY = r"""
import hashlib, json, os, stat, sys
out = {}
for root in sys.argv[1:]:
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for name in [d] + [os.path.join(d, f) for f in sorted(files)] + [
                os.path.join(d, x) for x in dirs if os.path.islink(os.path.join(d, x))]:
            try:
                st = os.lstat(name)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                out[name] = ["link", 0, st.st_uid, st.st_gid, os.readlink(name)]
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                try:
                    with open(name, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                    digest = h.hexdigest()
                except OSError as e:
                    digest = "unreadable: %s" % e
                out[name] = ["file", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, digest]
            elif stat.S_ISDIR(st.st_mode):
                out[name] = ["dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, ""]
            else:
                out[name] = ["other", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, ""]
json.dump(out, sys.stdout)
"""


# --- RHEL family (issue 21): the rpmmirror container and dnf servers (Dockerfile.test, at its end) -------
RPM_MIRROR_URL = "http://rpmmirror"
VECTOR_YUM_URL = RPM_MIRROR_URL + "/vector-rpm/"
VECTOR_RPM_KEY_URL = VECTOR_YUM_URL + "key.asc"
RHEL_SYSTEMS = ("rocky9", "alma9", "amzn2023", "rocky8")  # os-release files of the server-rhel image


def rpm_mirror(harness):
    """The harness's rpmmirror container (image mirror-rpm: the signed RPM repositories), started once."""
    if getattr(harness, "rpm_mirror_host", None) is None:
        image = image_name("mirror-rpm")
        if not harness.has_image(image):
            raise HarnessUnavailable("image %s is missing; run tests/integration/setup.sh" % image)
        host = harness._start("rpmmirror", image, aliases=["rpmmirror"])
        harness._wait_http(host, "http://127.0.0.1/vector-rpm/repodata/repomd.xml")
        harness.rpm_mirror_host = host
        harness.vector_rpm_key_fingerprint = host.read_text("/srv/rpm/vector-rpm/key.fpr").strip()
    return harness.rpm_mirror_host


def rhel_env(harness, env=None):
    """The installer's variables on a server-rhel host: Vector's repository and key on the rpmmirror
    (pinned by the fingerprint the mirror image made), then env."""
    rpm_mirror(harness)
    full = {"ACTVT_VECTOR_YUM_URL": VECTOR_YUM_URL, "ACTVT_VECTOR_KEY_URL": VECTOR_RPM_KEY_URL,
            "ACTVT_VECTOR_KEY_FINGERPRINTS": harness.vector_rpm_key_fingerprint}
    full.update(env or {})
    return full


def rhel_server(harness, system="rocky9", domain=DOMAIN):
    """A fresh server-rhel host that is `system` (RHEL_SYSTEMS): its os-release and its distribution's
    repository file, the distribution's key from the rpmmirror; firewalld running."""
    rpm_mirror(harness)
    host = harness.server("server-rhel", domain=domain, firewall=True)
    host.sh(["actvt-test-become", system])
    # the RHEL family's CA bundle path (its ca-certificates package makes it; the fronts verify Vector
    # with it, core/front.py), here the Debian bundle that update-ca-certificates keeps
    host.sh("mkdir -p /etc/pki/tls/certs && ln -sfn /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt")
    host.sh("for i in $(seq 120); do firewall-cmd --state >/dev/null 2>&1 && exit 0; sleep 0.5; done; exit 1")
    return host
