"""Secrets stay where they were, through the pipe on a real server (issue 18, item 3).

Before the first run the admin keeps a Datadog key in Vector's environment file, 0600 as Vector's
package ships it, and has their own vector.toml with a sink's api_key. What the user observes: the
dry run and the real run (their console and --json), the log and the backups hold neither secret; the
file stays 0600 with the key in it, and Vector still gets the key from systemd (its process
environment). The Ansible role is tried against a planted secret in test_fleet_e2e.py.
"""
import pytest

from test_wiring_e2e import ENV, STANDALONE_URL, App, install, main_pid, assert_no_changes

pytestmark = pytest.mark.e2e

SECRET = "secret-value"
TOML_SECRET = "toml-secret-value"
DEFAULTS = ("# /etc/default/vector: the admin's Datadog key\nDD_API_KEY=%s\n" % SECRET).encode()
OLD_TOML = ('[sinks.datadog]\ntype = "datadog_metrics"\ninputs = ["host"]\napi_key = "%s"\n'
            % TOML_SECRET).encode()


def assert_no_secret(*texts):
    for text in texts:
        assert SECRET not in text and TOML_SECRET not in text, "a secret was printed:\n%s" % text


def test_the_secrets_in_vectors_files_are_kept_and_never_shown(harness, new_server):
    server = new_server()
    server.trust_acme_ca()
    server.put_file("/etc/default/vector", DEFAULTS, mode=0o600)
    server.put_file("/etc/vector/vector.toml", OLD_TOML, mode=0o644)

    # the dry run: the installer's lines, a count of the others, and nothing written
    before = server.snapshot()
    r = server.run_installer("--dry-run", env=ENV)
    assert r.rc == 0, r
    assert_no_secret(r.out, r.err)
    assert "+VECTOR_CONFIG=/etc/vector/vector.toml" in r.out, r
    assert "other line(s) of /etc/default/vector not shown, the installer did not write them: 2 kept" in r.out, r
    assert "other line(s) of /etc/vector/vector.toml not shown, the installer did not write them: 4 removed" in r.out
    assert server.snapshot() == before

    # the real run through the pipe, with --json
    r, summary = install(server, ENV)
    assert_no_secret(r.out, r.err, server.installer_log())
    info = server.stat("/etc/default/vector")
    assert (info.mode, info.owner, info.group) == (0o600, "root", "root")
    text = server.read_text("/etc/default/vector")
    assert "DD_API_KEY=%s\n" % SECRET in text and text.endswith("VECTOR_CONFIG=/etc/vector/vector.toml\n")
    # systemd (root) reads it for Vector, which runs as the vector user: it has the key
    environ = server.sh("tr '\\0' '\\n' < /proc/%s/environ" % main_pid(server)).out.splitlines()
    assert "DD_API_KEY=%s" % SECRET in environ and "VECTOR_CONFIG=/etc/vector/vector.toml" in environ
    # the backups: as they were, with their own modes, named in the summary
    [action] = [a for a in summary["actions"] if a["target"] == "/etc/default/vector"]
    assert action["backup"] and action["backup"].startswith(summary["backup_dir"] + "/"), action
    assert server.read_file(action["backup"]) == DEFAULTS and server.stat(action["backup"]).mode == 0o600
    assert server.stat(summary["backup_dir"]).mode == 0o700
    App(harness, "secrets").metrics(STANDALONE_URL)

    # a re-run converges and says nothing of the file
    pid = main_pid(server)
    r, summary = install(server, ENV)
    assert_no_secret(r.out, r.err, server.installer_log())
    assert_no_changes(server, summary, pid)
    assert server.stat("/etc/default/vector").mode == 0o600
