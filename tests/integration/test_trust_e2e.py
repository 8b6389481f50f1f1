"""A state folder another user owns, on a real server through the pipe (issue 18, item 1).

`/var/lib/actvt` belongs to uid 65534, and that user (a real one: `setpriv`) has planted a
`manifest.json` that names the admin's `/etc/important` as made by the installer (a later uninstall
would delete it). The installer refuses in one line naming the folder, its owner and mode and the
command that fixes it, exit 1, with /etc, /var/lib and /usr/local unchanged; after that command the
planted record itself is named; once it is moved away, the install succeeds and never records it.
"""
import json
import re

import pytest

import harness as H
from test_wiring_e2e import ENV, install

pytestmark = pytest.mark.e2e

PLANTED = json.dumps({"version": 1, "paths": {"/etc/important": {"origin": "created", "kind": "file"}}})


def refusal(result):
    """The one refusing line of a run (stdout and stderr), and the command it says fixes it."""
    lines = [line.strip() for line in (result.out + result.err).splitlines() if "refusing" in line]
    assert len(lines) == 1, result
    fix = re.search(r"`([^`]*)`", lines[0])
    return lines[0], fix.group(1) if fix else None


def test_a_state_folder_another_user_owns_is_refused_until_the_documented_fix(harness, new_server):
    server = new_server()
    server.trust_acme_ca()
    server.sh("echo 'the admin kept this' > /etc/important && mkdir -p /var/lib/actvt && "
              "chown 65534:65534 /var/lib/actvt")
    server.sh(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
               "printf '%s' \"$0\" > /var/lib/actvt/manifest.json", PLANTED])
    before = server.snapshot()

    r = server.run_installer("--yes", env=ENV)
    line, fix = refusal(r)
    assert r.rc == 1, r
    assert line == ("✗ refusing to write into /var/lib/actvt: it is owned by uid 65534 (nobody:nogroup, mode 0755), "
                    "so another user could change what the installer keeps there; fix it with "
                    "`chown root:root /var/lib/actvt; chmod go-w /var/lib/actvt`, then run again"), r
    assert H.diff_snapshots(before, server.snapshot()) == {"added": [], "removed": [], "changed": []}

    server.sh(fix)  # the folder is root's again; what the other user put in it is still not trusted
    fixed = server.snapshot()
    r = server.run_installer("--yes", env=ENV)
    line, _ = refusal(r)
    assert r.rc == 1 and line.startswith("✗ refusing to read /var/lib/actvt/manifest.json: it is owned by uid 65534 "
                                         "(nobody:nogroup, mode 0644), not written by the installer alone"), r
    assert H.diff_snapshots(fixed, server.snapshot()) == {"added": [], "removed": [], "changed": []}

    server.sh("mv /var/lib/actvt/manifest.json /root/planted-manifest.json")
    r, summary = install(server, ENV)
    assert summary["status"] == "ok", r
    recorded = json.loads(server.read_text("/var/lib/actvt/manifest.json"))["paths"]
    assert "/etc/important" not in recorded and server.read_text("/etc/important") == "the admin kept this\n"
    st = server.stat("/var/lib/actvt/manifest.json")
    assert (st.owner, st.mode) == ("root", 0o600)
