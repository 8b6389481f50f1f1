"""The README's cloud-init user data run by real cloud-init (issue 6, item 2).

test_lifecycle_e2e.py runs the same examples the way cloud-init would (write_files, then runcmd by
hand); here Debian's own `cloud-init` package runs them, on a real boot:

- the images: the test server image (a fresh Debian 12 host; apt through the mirror's cache), and
  the README's Dockerfile baked (test_lifecycle_e2e's fixture `baked`, built again for this module),
  each plus `apt-get install cloud-init` (Debian's package, through the cache), Pebble's listener CA
  trusted (the test's stand-in for Let's Encrypt), `datasource_list: [NoCloud]` (what a NoCloud
  image is told; it spares the search through the other data sources) and a system locale in
  /etc/default/locale, as an installed Debian system has and the debootstrap base lacks (without one,
  cloud-init's `locale` module runs `update-locale LANG=en_US.UTF-8`, a locale that was never
  generated: exit 255, and cloud-init reports an error unrelated to the user data);
- per scenario, a NoCloud seed on the image's disk (/var/lib/cloud/seed/nocloud/meta-data with an
  instance-id, user-data = the README's example) and a boot: systemd runs cloud-init's generator
  (ds-identify finds the seed) and its four units, the example runs in cloud-final;
- what a user sees is asserted: `cloud-init status --wait --long` (done, exit 0, or error, exit 1),
  the installer's output in /var/log/cloud-init-output.log, `cloud-init schema --system`, the
  environment file's mode, the mTLS endpoint from the client with the server's client certificate,
  and a client without one refused.

The examples are taken from README.md by helpers.readme_example(); adapt() changes only what the test
network needs (the download URL -> the mirror's install.pyz, the `<sha256>` placeholder -> the published
file's sha256, the example domain and e-mail), and the harness's ACME and Vector repository settings are
added to the environment the example sets up (lines of the env file, `export` lines of the script).

Scenarios: the #cloud-config whose download fails on three machines booted at once (the mirror's
stand-in port answers 503, a port that refuses, a tampered file: cloud-init reports each, nothing is
installed), then the first of them booted again once the port serves the file; the #!/bin/bash script
on a fresh server, the #cloud-config with a domain that does not resolve (cloud-init reports the
installer's failure), the fleet's #cloud-config, and the baked image's #cloud-config (the first-boot
unit runs on the same boot, between cloud-init's write_files and runcmd). Budget: about 6 minutes on a
busy 2-core machine with a warm apt cache, 85 s of it building the cloud-init image; the failing boots
cost about a minute (curl's 25 s of retries among them).
"""
import re
import time

import pytest

import harness as H
from test_lifecycle_e2e import (DONE, ENV_FILE, HARNESS_VARS, adapt, baked, booted,  # noqa: F401 (fixtures)
                                client_connects, client_without_cert, readme_example)

pytestmark = pytest.mark.e2e

SEED = "/var/lib/cloud/seed/nocloud"
OUTPUT_LOG = "/var/log/cloud-init-output.log"


# --- the README's examples, with the harness's settings --------------------------------------------------


def with_harness_env_file(cloud_config):
    """The #cloud-config whose env file also holds the harness's variables: lines added after the
    ACTVT_EMAIL= line, at its indentation (the rest of the text is unchanged)."""
    found = re.search(r"^( +)ACTVT_EMAIL=.*\n", cloud_config, re.M)
    assert found, cloud_config
    extra = "".join("%s%s=%s\n" % (found.group(1), k, v) for k, v in HARNESS_VARS.items())
    return cloud_config[:found.end()] + extra + cloud_config[found.end():]


def with_harness_exports(script):
    """The #! script with `export` lines for the harness's variables after its `export ACTVT_EMAIL=`."""
    found = re.search(r"^export ACTVT_EMAIL=.*\n", script, re.M)
    assert found, script
    extra = "".join("export %s=%s\n" % item for item in HARNESS_VARS.items())
    return script[:found.end()] + extra + script[found.end():]


# --- the image, the seed, the boot -----------------------------------------------------------------------


def with_cloud_init(harness, base):
    """`base` + Debian's cloud-init (installed through the mirror's apt cache): an image tag."""
    dockerfile = "\n".join([
        "FROM %s" % base,
        "RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
        " cloud-init && rm -rf /var/lib/apt/lists/*",
        "RUN printf 'datasource_list: [ NoCloud ]\\n' > /etc/cloud/cloud.cfg.d/90-actvt-test.cfg"
        " && printf 'LANG=C.UTF-8\\n' > /etc/default/locale",
        "COPY actvt-test-pebble.crt /usr/local/share/ca-certificates/",
        "RUN update-ca-certificates >/dev/null",
    ]) + "\n"
    started = time.time()
    tag, _log = harness.build_image(dockerfile, files={"actvt-test-pebble.crt": harness.acme_ca_pem()})
    print("%s + cloud-init built in %.1f s" % (base, time.time() - started))
    return tag


@pytest.fixture(scope="module")
def cloud_image(harness):
    """The test server image (a fresh Debian 12 host) with cloud-init."""
    return with_cloud_init(harness, H.image_name("server"))


@pytest.fixture(scope="module")
def baked_cloud_image(harness, baked):
    """The README's Dockerfile (built by test_lifecycle_e2e's fixture `baked`) with cloud-init."""
    return with_cloud_init(harness, baked)


def boot_with_seed(harness, image, user_data, role, domain):
    """A machine of `image` whose disk holds a NoCloud seed (user-data, meta-data), booted; `domain`
    resolves to it from its first second (Pebble's http-01 must reach it while cloud-init runs)."""
    meta = "instance-id: iid-%s-%s\nlocal-hostname: %s\n" % (role, harness.session, role)
    tag, _ = harness.build_image(
        "FROM %s\nCOPY user-data meta-data %s/\nRUN chmod 600 %s/user-data\n" % (image, SEED, SEED),
        files={"user-data": user_data.encode(), "meta-data": meta.encode()})
    return harness.run_image(tag, role=role, aliases=(role, domain))


def wait_cloud_init(host, timeout=600):
    """`cloud-init status --wait --long` once systemd is up: (Result, seconds). systemd counts as booting
    until cloud-final.service, which runs the install, has finished: it gets the same bound."""
    started = time.time()
    host.wait_for_systemd(timeout=timeout)
    r = host.exec(["cloud-init", "status", "--wait", "--long"], timeout=timeout)
    return r, time.time() - started


def assert_cloud_init_succeeded(host, r):
    detail = "%s\n--- %s\n%s\n--- journal\n%s" % (r, OUTPUT_LOG, host.exec(["tail", "-n", "60", OUTPUT_LOG]).out,
                                                  host.journal(None, 60))
    assert r.rc == 0 and "status: done" in r.out, detail
    assert "DataSourceNoCloud" in r.out, detail
    result = host.read_text("/var/lib/cloud/data/result.json")
    assert '"errors": []' in result, result
    assert host.exists("/var/lib/cloud/instance/boot-finished")
    for unit in ("cloud-init-local", "cloud-init", "cloud-config", "cloud-final"):
        info = host.unit(unit + ".service")
        assert info["ActiveState"] == "active", (unit, info)


def monotonic(host, unit, *properties):
    """Timestamps (µs since boot) of a unit, from `systemctl show`; 0 means never."""
    out = host.sh(["systemctl", "show", unit, "--property=" + ",".join(properties)]).out
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    found = [int(values[p]) for p in properties]
    assert all(found), (unit, values)
    return found


def assert_mtls_endpoint(harness, host, domain):
    url = "wss://%s:4096" % domain
    r = client_connects(harness, host, url)
    assert r.rc == 0, r
    r = client_without_cert(harness, url)
    assert r.rc == 1, r


# --- scenarios --------------------------------------------------------------------------------------------


#: Stand-ins for a download server that fails, on other ports of the mirror: one answering 503 to every
#: request (a CDN in trouble) and, later, serving the mirror's files (it recovered); one nobody listens on.
BUSY_PORT, REFUSED_PORT = 8503, 8599
BUSY_503 = ("import http.server as h\n"
            "class H(h.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        self.send_response(503); self.end_headers()\n"
            "h.ThreadingHTTPServer(('0.0.0.0', %d), H).serve_forever()\n" % BUSY_PORT)
RECOVERED = "import sys; sys.argv[1:] = ['%d', '--directory', '/srv/mirror']; import runpy; " \
    "runpy.run_module('http.server', run_name='__main__')" % BUSY_PORT
#: What the installer would have made: none of it may exist after a boot whose download or check failed.
INSTALLED = ("/etc/vector", "/var/lib/actvt", "/usr/local/lib/actvt", "/usr/local/bin/actvt", "/var/cache/actvt",
             "/var/log/actvt-install.log", "/etc/systemd/system/vector.service.d", "/etc/default/vector")


def mirror_port_serving(harness, program, answers):
    """`program` (python3 -c) started in the mirror, in the background, replacing what ran there before
    (by its pid, kept in /run/actvt-test-busy.pid); returns once GET / answers with status `answers`."""
    harness.mirror.exec(["sh", "-c", "[ ! -s /run/actvt-test-busy.pid ] || kill $(cat /run/actvt-test-busy.pid) || true"])
    harness.mirror.container.exec_run(["sh", "-c", 'echo $$ > /run/actvt-test-busy.pid; exec python3 -c "$0"', program],
                                      detach=True)
    probe = ("import sys, urllib.error, urllib.request as u\ntry: u.urlopen(sys.argv[1], timeout=5)\n"
             "except urllib.error.HTTPError as e: sys.exit(e.code != %d)\nelse: sys.exit(%d != 200)\n" % (answers, answers))
    deadline = time.time() + 60
    while harness.mirror.exec(["python3", "-c", probe, "http://127.0.0.1:%d/install.pyz" % BUSY_PORT]).rc != 0:
        assert time.time() < deadline, "the mirror's port %d never answered %d" % (BUSY_PORT, answers)
        time.sleep(0.3)


def download_folders(host):
    """The folders `mktemp -d` made in /tmp (the example's download folder) that are still there."""
    return host.sh("ls -d /tmp/tmp.* 2>/dev/null || true").out.split()


def existing(harness, image, paths):
    """Those of `paths` that exist in `image` itself (a container of it, not booted)."""
    out = harness.client.containers.run(image, ["sh", "-c", 'for p; do [ ! -e "$p" ] || echo "$p"; done', "-"]
                                        + list(paths), remove=True, network_disabled=True, labels=harness.labels)
    return set(out.decode().split())


def assert_nothing_installed(host, paths=INSTALLED):
    """None of `paths` (what the installer makes) exists, no Vector package, no download folder left
    in /tmp; /etc/actvt holds only the env file cloud-init wrote."""
    present = [path for path in sorted(set(paths)) if path not in (ENV_FILE, "/etc/actvt") and host.exists(path)]
    assert present == [], present
    assert host.sh(["ls", "-A", "/etc/actvt"]).out.split() == ["install.env"]
    assert host.exec(["dpkg-query", "-W", "vector"]).rc != 0, "the vector package is installed"
    assert download_folders(host) == [], "the example's download folder is left in /tmp"


def test_readme_cloud_config_by_cloud_init(harness, cloud_image, booted):
    """The README's #cloud-config for a plain server (write the env file; download install.pyz with
    retries, check its pinned sha256, run it), booted on three machines at once whose download fails:
    the server answers 503 (A), refuses the connection (B), serves a file with another sha256 that
    would run (C). Each boot reports the error (status: error, the runcmd failed, curl's or sha256sum's
    message in the output log) and nothing is installed. Then the server recovers and A boots again
    after `cloud-init clean --logs` (a new instance, as `--reboot` would): done, and the mTLS endpoint
    serves metrics."""
    readme = readme_example("cloud-config-pipe")
    good = harness.mirror.read_file("/srv/mirror/install.pyz")
    harness.mirror.put_file("/srv/mirror/tampered/install.pyz", good + b"\n# tampered: still a valid program\n")
    mirror_port_serving(harness, BUSY_503, 503)
    failing = {  # name: (url, domain, what the output log must say)
        "ci-config": ("http://mirror:%d/install.pyz" % BUSY_PORT, "ci-config.example.com",
                      "curl: (22) The requested URL returned error: 503"),
        "ci-refused": ("http://mirror:%d/install.pyz" % REFUSED_PORT, "ci-refused.example.com",
                       "curl: (7) Failed to connect to mirror port %d" % REFUSED_PORT),
        "ci-tampered": (H.MIRROR_URL + "/tampered/install.pyz", "ci-tampered.example.com", "install.pyz: FAILED"),
    }
    hosts, user_data = {}, {}
    started = time.time()
    for name, (url, domain, _) in failing.items():
        user_data[name] = with_harness_env_file(adapt(readme, domain, url=url))
        hosts[name] = boot_with_seed(harness, cloud_image, user_data[name], name, domain)
        booted.append(hosts[name])
    for name, (url, domain, message) in failing.items():
        host = hosts[name]
        r, seconds = wait_cloud_init(host)
        print("#cloud-config, %s: boot to cloud-init done in %.1f s" % (name, seconds))
        output = host.read_text(OUTPUT_LOG)
        assert r.rc == 1 and "status: error" in r.out, "%s\n%s" % (r, output[-3000:])
        assert "('scripts-user'" in r.out and "(runcmd)" in r.out, r  # runcmd failed, not cloud-init itself
        assert host.unit("cloud-final.service")["ActiveState"] == "failed"
        assert message in output, output[-3000:]
        if name != "ci-tampered":  # curl tried 6 times (the first and 5 retries), then gave up
            assert output.count(message) == 6, output[-3000:]
        assert "Installation complete" not in output, output[-3000:]
        assert_nothing_installed(host)
    # nor is anything the plan would write that the image does not hold (the dry run writes the
    # launcher's cache: it runs on C, and A and B are checked)
    planned = hosts["ci-tampered"].planned_paths({"ACTVT_DOMAIN": failing["ci-tampered"][1], "ACTVT_EMAIL": H.EMAIL,
                                                   "ACTVT_ENABLE_MTLS": "yes"})
    assert "/etc/vector/vector.toml" in planned, planned
    planned = sorted(set(planned) - existing(harness, cloud_image, planned))
    for name in ("ci-config", "ci-refused"):
        assert_nothing_installed(hosts[name], planned)
    print("#cloud-config: three failing boots checked in %.1f s" % (time.time() - started))
    for name in ("ci-refused", "ci-tampered"):
        harness.remove(hosts[name])

    # the server recovers; A boots again as a new instance (the seed is still on its disk)
    host, domain = hosts["ci-config"], failing["ci-config"][1]
    mirror_port_serving(harness, RECOVERED, 200)
    host.sh(["cloud-init", "clean", "--logs"])
    started = time.time()
    host.container.restart(timeout=20)
    r, seconds = wait_cloud_init(host)
    print("#cloud-config: second boot to cloud-init done in %.1f s (%.1f s with the restart)"
          % (seconds, time.time() - started))
    assert_cloud_init_succeeded(host, r)

    # cloud-init's own view of the user data: valid schema, the README's text as given
    r = host.exec(["cloud-init", "schema", "--system"])
    assert r.rc == 0 and "Valid cloud-config" in r.out, r
    for example in ("cloud-config-pipe", "cloud-config-fleet", "cloud-config-baked"):
        host.put_file("/tmp/readme.yaml", readme_example(example).encode())
        r = host.exec(["cloud-init", "schema", "--config-file", "/tmp/readme.yaml"])
        assert r.rc == 0 and "Valid cloud-config" in r.out, (example, r)
    assert host.read_text("/var/lib/cloud/instance/user-data.txt") == user_data["ci-config"]

    # write_files wrote the env file 0600; runcmd checked and ran the installer, output in cloud-init's log
    info = host.stat(ENV_FILE)
    assert (info.mode, info.owner) == (0o600, "root"), info
    env = host.read_text(ENV_FILE)
    assert "ACTVT_DOMAIN=%s\n" % domain in env and "ACTVT_ENABLE_MTLS=yes\n" in env, env
    output = host.read_text(OUTPUT_LOG)
    assert "install.pyz: OK" in output, output[-4000:]
    assert "Installation complete" in output and "wss://%s:4096" % domain in output, output[-4000:]
    assert re.search(r"\[INFO\] done: \d+ change", host.installer_log()), host.installer_log()[-2000:]
    assert host.is_active("vector")
    assert download_folders(host) == [], "the download folder is removed"
    assert_mtls_endpoint(harness, host, domain)


def test_readme_user_data_script_by_cloud_init(harness, cloud_image, booted):
    """The README's #!/bin/bash user data (a script part: cloud-init runs it in scripts_user)."""
    domain = "ci-script.example.com"
    user_data = with_harness_exports(adapt(readme_example("user-data-bash"), domain))
    host = boot_with_seed(harness, cloud_image, user_data, "ci-script", domain)
    booted.append(host)
    r, seconds = wait_cloud_init(host)
    print("#!/bin/bash: boot to cloud-init done in %.1f s" % seconds)
    assert_cloud_init_succeeded(host, r)

    assert host.stat("/var/lib/cloud/instance/scripts/part-001").mode == 0o700
    output = host.read_text(OUTPUT_LOG)
    assert "Installation complete" in output, output[-4000:]
    assert host.is_active("vector")
    assert_mtls_endpoint(harness, host, domain)


def test_readme_cloud_config_failure_is_reported_by_cloud_init(harness, cloud_image, booted):
    """The same #cloud-config with a domain that does not resolve: the installer stops, and cloud-init
    reports the failure (status: error, exit 1) with the installer's message in its output log."""
    domain = "ci-nowhere.example.com"  # no host answers to it
    example = readme_example("cloud-config-pipe")
    # the example waits up to 300 s for a DNS record made after the instance; this one never comes, so the
    # wait is shortened to keep the boot short, and its end is part of what cloud-init must report
    assert "ACTVT_WAIT_FOR_DNS=300\n" in example, example
    example = example.replace("ACTVT_WAIT_FOR_DNS=300\n", "ACTVT_WAIT_FOR_DNS=10\n")
    user_data = with_harness_env_file(adapt(example, domain))
    host = boot_with_seed(harness, cloud_image, user_data, "ci-fail", "ci-fail")
    booted.append(host)
    r, seconds = wait_cloud_init(host)
    print("#cloud-config, failing: boot to cloud-init done in %.1f s" % seconds)
    assert r.rc == 1 and "status: error" in r.out, r
    assert "('scripts-user'" in r.out and "(runcmd)" in r.out, r  # runcmd failed, not cloud-init itself
    assert host.unit("cloud-final.service")["ActiveState"] == "failed"
    output = host.read_text(OUTPUT_LOG)
    assert domain in output and "does not resolve" in output, output[-4000:]
    assert "(ACTVT_WAIT_FOR_DNS=10)" in output, output[-4000:]
    assert "Installation complete" not in output
    assert not host.exists("/var/lib/actvt/install.state") and not host.is_active("vector")


def with_trust_file(cloud_config, trust_pem):
    """The README's fleet #cloud-config with its placeholder certificate replaced by a real trust file."""
    found = re.search(r"^( +)-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", cloud_config, re.M | re.S)
    assert found, cloud_config
    indented = "".join(found.group(1) + line + "\n" for line in trust_pem.decode().splitlines())
    return cloud_config[:found.start()] + indented + cloud_config[found.end():]


def test_readme_fleet_cloud_config_by_cloud_init(harness, cloud_image, booted, tmp_path):
    """The README's fleet #cloud-config: user data writes the fleet's trust file, the first boot joins
    the fleet (no CA made on the server), and a bundle of the CA folder connects."""
    import io

    from installer.commands.cli import main

    folder = tmp_path / "fleet-ca"
    assert main(["ca", "init", "--dir", str(folder)], {}, stdout=io.StringIO()) == 0
    assert main(["client", "issue", "fleet-laptop", "--ca-dir", str(folder)], {}, stdout=io.StringIO()) == 0
    domain = "ci-fleet.example.com"
    user_data = with_harness_env_file(with_trust_file(adapt(readme_example("cloud-config-fleet"), domain),
                                                      (folder / "trust.pem").read_bytes()))
    host = boot_with_seed(harness, cloud_image, user_data, "ci-fleet", domain)
    booted.append(host)
    r, seconds = wait_cloud_init(host)
    print("fleet #cloud-config: boot to cloud-init done in %.1f s" % seconds)
    assert_cloud_init_succeeded(host, r)
    assert host.read_file("/etc/vector/certs/mtls/ca.crt") == (folder / "ca.crt").read_bytes()
    assert not host.exists("/etc/vector/certs/mtls/ca.key"), "a fleet server holds no CA key"
    assert "mtls_ca_file=/etc/actvt/fleet-ca.pem" in host.read_text("/var/lib/actvt/install.state")
    client = harness.client_host
    client.put_file("/tmp/issuer.pem", harness.pebble_issuer_pem())
    for ext in ("crt", "key"):
        client.put_file("/tmp/fleet-laptop." + ext, (folder / "clients" / ("fleet-laptop." + ext)).read_bytes(),
                        mode=0o600)
    url = "wss://%s:4096" % domain
    r = client.exec(["wsclient", url, "--ca", "/tmp/issuer.pem", "--cert", "/tmp/fleet-laptop.crt",
                     "--key", "/tmp/fleet-laptop.key", "--count", "2"], timeout=60)
    assert r.rc == 0, r
    assert client_without_cert(harness, url).rc == 1


def test_readme_baked_cloud_config_by_cloud_init(harness, baked_cloud_image, booted):
    """The README's #cloud-config for a baked image: cloud-init writes the env file, the first-boot
    unit (enabled in the image) finishes the install on the same boot, and runcmd's
    `systemctl start actvt-firstboot.service` makes cloud-init report its result."""
    domain = "ci-baked.example.com"
    user_data = with_harness_env_file(adapt(readme_example("cloud-config-baked"), domain))
    host = boot_with_seed(harness, baked_cloud_image, user_data, "ci-baked", domain)
    booted.append(host)
    r, seconds = wait_cloud_init(host)
    print("baked #cloud-config: boot to cloud-init done in %.1f s" % seconds)
    assert_cloud_init_succeeded(host, r)

    assert host.stat(ENV_FILE).mode == 0o600
    unit = host.unit("actvt-firstboot.service")
    assert unit["ActiveState"] == "active", "%s\n%s" % (unit, host.journal("actvt-firstboot", 80))
    assert host.exists(DONE)
    journal = host.journal("actvt-firstboot", 300)
    assert "Installation complete" in journal, journal[-4000:]
    # the unit ran once, on this boot: started by systemd after cloud-init.service had written the env
    # file, finished before cloud-final.service (whose runcmd then found it done)
    assert journal.count("Starting actvt-firstboot.service") == 1, journal
    firstboot = monotonic(host, "actvt-firstboot.service", "ExecMainStartTimestampMonotonic",
                          "ActiveEnterTimestampMonotonic")
    written = monotonic(host, "cloud-init.service", "ActiveEnterTimestampMonotonic")
    final = monotonic(host, "cloud-final.service", "ExecMainStartTimestampMonotonic")
    assert written[0] <= firstboot[0] and firstboot[1] <= final[0], (written, firstboot, final)
    assert host.is_active("vector")
    assert_mtls_endpoint(harness, host, domain)
