"""actvt status: state, certificate dates, clients, and what a re-run would change."""

import json


from helpers import DOMAIN, ENV, run_cli, tree_digest


def run(argv, env):
    return run_cli(argv, env, base={"NO_COLOR": "1"})


def make_root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    return tmp_path


def test_not_installed(tmp_path):
    status, out = run(["status", "--root", str(make_root(tmp_path))], {})
    assert status == 3 and "not installed" in out


def test_status_after_an_install_changes_nothing_and_tells_what_a_rerun_would_do(tmp_path):
    root = make_root(tmp_path)
    assert run(["--root", str(root), "--yes"], {**ENV, "ACTVT_ENABLE_MTLS": "yes"})[0] == 0
    before = tree_digest(root)
    status, out = run(["status", "--root", str(root), "--json"], {})  # no variables: taken from the state
    assert status == 0
    report = json.loads(out)
    assert report["installed"] and report["domain"] == DOMAIN and report["mode"] == "standalone" and report["mtls"]
    assert report["url"] == f"wss://{DOMAIN}:4096"
    assert report["certificates"]["ca"]["days_left"] in (3649, 3650)
    assert report["certificates"]["crl"]["revoked"] == 0 and report["certificates"]["crl"]["days_left"] >= 3649
    assert [(c["name"], c["status"]) for c in report["certificates"]["clients"]] == [("actvt-client-001", "valid")]
    assert report["rerun"] == {"changes": []}
    assert report["service"] == {"active": None, "enabled": None, "main_pid": None}  # --root: not checked
    assert tree_digest(root) == before
    # a changed variable shows up as what a re-run would do
    (root / "etc/vector/vector.toml").write_text("# edited by hand\n")
    status, out = run(["status", "--root", str(root)], {})
    assert status == 0 and "a re-run would change 1 thing(s):" in out and "/etc/vector/vector.toml" in out
    assert "client actvt-client-001: valid" in out and "mTLS CA: expires" in out
