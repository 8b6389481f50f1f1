"""SELinux against the real `semanage` (issue 21, item 3). One bookworm server, proxy mode.

What is real: Debian's `selinux-policy-default` (refpolicy) policy store, `semanage` from
`policycoreutils-python-utils` (which the installer itself installs, as it would on the RHEL family) and
every label it adds, lists and deletes in that store. semanage edits the store and rebuilds the policy
without an SELinux kernel, which neither this machine nor its containers have: nothing is loaded and
nothing is enforced, so this cannot show nginx refused or allowed. What stands in: the fact "SELinux is
enforcing", `/sys/fs/selinux/enforce` reading 1, which the installer (and doctor) see through a private
mount namespace (`unshare --mount`: a tmpfs on /sys/fs with that file, the cgroup tree bound back); the
rest of the server sees nothing of it.
"""
import pytest

import harness as H

pytestmark = pytest.mark.e2e

ENV = {"ACTVT_DOMAIN": H.DOMAIN, "ACTVT_EMAIL": H.EMAIL, "ACTVT_INSTALL_MODE": "proxy"}
RECORD = "/var/lib/actvt/selinux.added"
ENFORCING = ("mkdir -p /run/actvt-cg && mount --rbind /sys/fs/cgroup /run/actvt-cg && "
             "mount -t tmpfs -o mode=755 selinuxfs-stand-in /sys/fs && mkdir /sys/fs/cgroup /sys/fs/selinux && "
             "mount --rbind /run/actvt-cg /sys/fs/cgroup && echo 1 > /sys/fs/selinux/enforce && ")
ADD = "semanage port -a -t http_port_t -p tcp 4096"
WEBROOT_RULE = "/var/www/html(/.*)?"


def enforcing(server, command, env=None, timeout=900):
    """``command`` (sh) where /sys/fs/selinux/enforce reads 1."""
    r = server.exec(["unshare", "--mount", "--propagation", "private", "sh", "-c", ENFORCING + command],
                    env=env, timeout=timeout)
    server.harness.record(server, r)
    return r


def local_labels(server):
    return server.sh("semanage port -l -C | awk 'NR > 2 && NF'").out.split("\n")[0].split()


def local_rules(server):
    """``semanage fcontext -l -C``: (rule, type) of each local file-context rule."""
    out = server.sh("semanage fcontext -l -C | awk 'NR > 2 && NF {print $1, $NF}'").out
    return [(rule, context.split(":")[2]) for rule, context in (line.split() for line in out.splitlines())]


def doctor_selinux(server, *checks):
    """The findings of ``checks``, in that order, from one ``actvt doctor`` run."""
    r = enforcing(server, "actvt doctor --json", timeout=300)
    found = {c["check"]: c for c in r.json()["checks"]}
    return [found[check] for check in checks]


def set_type(server, path, kind):
    """The type a kernel with SELinux would show: this one keeps the xattr without one (restorecon, with
    SELinux disabled, sets nothing)."""
    server.sh(["python3", "-c", "import os, sys; os.setxattr(sys.argv[1], 'security.selinux', "
               "('system_u:object_r:%s:s0' % sys.argv[2]).encode() + b'\\0')", path, kind])


def test_the_port_is_labelled_checked_and_given_back(harness, new_server):
    server = new_server()
    server.trust_acme_ca()
    # the policy (a RHEL-family host has it always); semanage is not there: the installer brings it
    server.sh("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
              "selinux-policy-default netbase >/dev/null", timeout=900)
    assert server.exec(["sh", "-c", "command -v semanage"]).rc != 0

    env = server.installer_env(ENV)
    r = enforcing(server, "curl -fsSL %s | python3 -I - --yes --json" % H.PIPE_URL, env=env)
    assert r.rc == 0, r
    assert "SELinux: tcp/4096 as http_port_t for nginx" in r.err, r
    assert server.exec(["dpkg", "-s", "policycoreutils-python-utils"]).rc == 0
    assert local_labels(server) == ["http_port_t", "tcp", "4096"]
    # the challenge webroot: /var/www/html was not there and semanage not yet installed when the run
    # planned, so the folder is made, given the rule and restorecon'd before certbot (which then succeeded)
    assert "SELinux: /var/www/html as httpd_sys_content_t for nginx" in r.err, r
    assert local_rules(server) == [(WEBROOT_RULE, "httpd_sys_content_t")]
    assert server.read_text(RECORD).splitlines()[1:] == ["fcontext %s added" % WEBROOT_RULE, "tcp 4096 added"]
    log = server.read_text("/var/log/actvt-install.log")
    assert "restorecon -R /var/www/html" in log, log[-3000:]
    info = server.stat(RECORD)
    assert (info.mode, info.owner) == (0o600, "root"), info

    server.sh("semanage port -d -p tcp 4096")  # taken away by hand: doctor names the fix, which works
    # restorecon set no type (no SELinux kernel here): the types a kernel would show are written by hand;
    # the same doctor runs check the webroot (each doctor run costs about a minute: no run of its own)
    set_type(server, "/var/www/html", "var_t")
    port, webroot = doctor_selinux(server, "selinux.port", "selinux.webroot")
    assert (port["level"], port["fix"]) == ("fail", "sudo " + ADD), port
    assert "tcp/4096 is unreserved_port_t, not http_port_t" in port["text"], port
    assert (webroot["level"], webroot["fix"]) == ("fail", "sudo restorecon -R /var/www/html"), webroot
    assert "/var/www/html is var_t, which nginx (httpd_t) may not read" in webroot["text"], webroot
    server.sh(ADD)
    set_type(server, "/var/www/html", "httpd_sys_content_t")
    assert [item["level"] for item in doctor_selinux(server, "selinux.port", "selinux.webroot")] == ["pass", "pass"]

    # a label of the user's own stays; the installer's goes, with its record
    server.sh("semanage port -a -t http_port_t -p tcp 9999")
    server.sh("semanage fcontext -a -t httpd_sys_content_t '/srv/mine(/.*)?'")
    r = server.exec(["actvt", "uninstall", "--yes"], timeout=600)
    assert r.rc == 0, r
    assert "semanage port -d -p tcp 4096" in r.out + r.err, r
    assert server.sh("semanage port -l -C | awk 'NR > 2 && NF'").out.split() == ["http_port_t", "tcp", "9999"]
    assert local_rules(server) == [("/srv/mine(/.*)?", "httpd_sys_content_t")]
    assert not server.exists(RECORD)
