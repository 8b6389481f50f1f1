"""The repository key is the one we expect (issue 14, item 2): fingerprints as gpg computes them, a
downloaded key of another fingerprint refused with nothing changed, the keyring refreshed on a re-run
when the pinned set or the mirror changes, and Datadog's keys pinned as their own tools list them."""


import pytest

from installer.concerns import vector
from installer.core import openpgp
from installer.core.actions import Keyring, Plan, Step
from installer.core.errors import ApplyError
from installer.core.facts import ProbeResult, gather
from installer.core.paths import Root
from installer.engine import engine
from installer.plans.registry import Context, Decisions

from helpers import RecordingRunner, make_config, make_facts, serving, tree_digest

# Two ed25519 keys made with `gpg --quick-gen-key … ed25519 sign never`; the fingerprints are what
# `gpg --show-keys --with-colons` printed for them (an oracle independent of installer/core/openpgp.py).
PINNED = b"""-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaw9f9BYJKwYBBAHaRw8BAQdAoQFZ7aED9JV6fpWTMzcHDcNPanY2903cvEy7
ZMLiJie0O2FjdHZ0LWluc3RhbGxlciB1bml0IHRlc3Qga2V5IHBpbm5lZCA8cGlu
bmVkQHRlc3RzLmludmFsaWQ+iJAEExYIADgWIQT5eMETDd5sjwex/j1SHUksMVU7
rgUCaw9f9AIbAwULCQgHAgYVCgkICwIEFgIDAQIeAQIXgAAKCRBSHUksMVU7roL8
AQCz92zC+B+klCKQJQnoEV3GRskgwaNwNAR2nRWAvf4HpQD+PeNbVYeYyG2dBOiF
2kiSS/pliH1Gw5OhbwuOIQLdSwE=
=C1Ds
-----END PGP PUBLIC KEY BLOCK-----
"""
PINNED_FPR = "F978C1130DDE6C8F07B1FE3D521D492C31553BAE"
OTHER = b"""-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaw9f9BYJKwYBBAHaRw8BAQdAGRQS+In4frKK5nKlikDpC0TXU6LGX2Zx4mp8
9tBhkoq0OWFjdHZ0LWluc3RhbGxlciB1bml0IHRlc3Qga2V5IG90aGVyIDxvdGhl
ckB0ZXN0cy5pbnZhbGlkPoiQBBMWCAA4FiEE1S9zp1gs2UMLOYIHUTn5woptEvkF
AmsPX/QCGwMFCwkIBwIGFQoJCAsCBBYCAwECHgECF4AACgkQUTn5woptEvlZAgEA
vPieFqs2O0b2l8JTwqSZg5SrNbZdhiqUJdhTMLYUgVcBAKNbpDqhFuDWS8ws6Q52
2yS9ycJMCTuCz3qBU/KrGCgO
=Ufmt
-----END PGP PUBLIC KEY BLOCK-----
"""
OTHER_FPR = "D52F73A7582CD9430B3982075139F9C28A6D12F9"
# RFC 9580 appendix A.3, the sample version 6 certificate (no armor checksum), and its fingerprint
V6 = b"""-----BEGIN PGP PUBLIC KEY BLOCK-----

xioGY4d/4xsAAAAg+U2nu0jWCmHlZ3BqZYfQMxmZu52JGggkLq2EVD34laPCsQYf
GwoAAABCBYJjh3/jAwsJBwUVCg4IDAIWAAKbAwIeCSIhBssYbE8GCaaX5NUt+mxy
KwwfHifBilZwj2Ul7Ce62azJBScJAgcCAAAAAK0oIBA+LX0ifsDm185Ecds2v8lw
gyU2kCcUmKfvBXbAf6rhRYWzuQOwEn7E/aLwIwRaLsdry0+VcallHhSu4RN6HWaE
QsiPlR4zxP/TP7mhfVEe7XWPxtnMUMtf15OyA51YBM4qBmOHf+MZAAAAIIaTJINn
+eUBXbki+PSAld2nhJh/LVmFsS+60WyvXkQ1wpsGGBsKAAAALAWCY4d/4wKbDCIh
BssYbE8GCaaX5NUt+mxyKwwfHifBilZwj2Ul7Ce62azJAAAAAAQBIKbpGG2dWTX8
j+VjFM21J0hqWlEg+bdiojWnKfA5AQpWUWtnNwDEM0g12vYxoWM8Y81W+bHBw805
I8kWVkXU6vFOi+HWvv/ira7ofJu16NnoUkhclkUrk0mXubZvyl4GBg==
-----END PGP PUBLIC KEY BLOCK-----
"""
V6_FPR = "CB186C4F0609A697E4D52DFA6C722B0C1F1E27C18A56708F6525EC27BAD9ACC9"

CTX = Context(version="1.0.0", now="2026-11-26T00:00:00Z")
STANDALONE = Decisions(mode="standalone", webserver="none")
USER_OK = {"vector_user": ProbeResult(0, "vector:x:999:999::/var/lib/vector:/usr/sbin/nologin\n")}


# --- fingerprints --------------------------------------------------------------------------------


@pytest.mark.parametrize("data,fpr", [(PINNED, PINNED_FPR), (OTHER, OTHER_FPR), (V6, V6_FPR)])
def test_fingerprints_are_the_ones_gpg_and_rfc_9580_give(data, fpr):
    [cert] = openpgp.certificates(data)
    assert cert.fingerprint == fpr
    # binary (apt's keyring) and re-armored (dnf's) read back the same
    assert [c.fingerprint for c in openpgp.certificates(cert.data)] == [fpr]
    assert [c.fingerprint for c in openpgp.certificates(openpgp.armor(cert.data))] == [fpr]


def test_several_keys_in_one_file_and_in_one_block():
    both = openpgp.certificates(PINNED + b"\n" + OTHER)
    assert [c.fingerprint for c in both] == [PINNED_FPR, OTHER_FPR]
    one_block = openpgp.armor(both[0].data + both[1].data)
    assert [c.fingerprint for c in openpgp.certificates(one_block)] == [PINNED_FPR, OTHER_FPR]


@pytest.mark.parametrize("data,why", [
    (b"<html><body>404 Not Found</body></html>", "neither an armored"),
    (PINNED.replace(b"=C1Ds", b"=AAAA"), "checksum does not match"),
    (PINNED.replace(b"AQCz92zC", b"AQCz92z!"), "not valid base64"),
    (openpgp.dearmor(PINNED)[:40], "truncated"),
    (b"\x94\x03\x04\x00\x00", "private key"),  # an old-format secret key packet
    (b"\xcd\x01\x00", "not a public key"),  # a user ID with no key before it
])
def test_what_is_not_a_public_key_is_said(data, why):
    with pytest.raises(openpgp.NotAKey) as info:
        openpgp.certificates(data)
    assert why in str(info.value)


# --- Datadog's keys ------------------------------------------------------------------------------


def test_datadogs_pinned_keys_follow_their_own_lists():
    """Each named key file carries the last 8 hex digits of its fingerprint in its name (Datadog's
    naming), CURRENT is fetched without a fingerprint of its own, and apt and dnf/yum use their own keys."""
    for family, keys in vector.DATADOG_KEYS.items():
        assert keys[0] == (f"DATADOG_{family.upper()}_KEY_CURRENT.public", None)
        for name, fpr in keys[1:]:
            assert name == f"DATADOG_{family.upper()}_KEY_{fpr[-8:]}.public" and len(fpr) == 40
    apt, rpm = (vector.key_fingerprints(make_config(), manager) for manager in ("apt", "dnf"))
    assert not set(apt) & set(rpm)
    assert "5F1E256061D813B125E156E8E6266D4AC0962C7D" in apt  # the key CURRENT held when this was written


# --- the keyring on a tree -----------------------------------------------------------------------


@pytest.fixture
def keyserver():
    """Key files on 127.0.0.1: /pinned.asc, /other.asc, /both.asc, /page.html."""
    with serving({"/pinned.asc": PINNED, "/other.asc": OTHER, "/both.asc": PINNED + OTHER,
                  "/page.html": b"<html>captive portal</html>"}) as url:
        yield url


@pytest.fixture
def host_tree(tmp_path, monkeypatch):
    """A --root tree on which the engine runs what it runs only on a host (downloads, commands, through
    a recording runner): the keyring is fetched for real, from 127.0.0.1."""
    monkeypatch.setattr(Root, "is_host", property(lambda self: True))
    monkeypatch.setattr(Root, "host", lambda self, p: str(tmp_path / p.lstrip("/")))
    (tmp_path / "etc/apt/sources.list.d").mkdir(parents=True)
    (tmp_path / "usr/share/keyrings").mkdir(parents=True)
    (tmp_path / "usr/share/keyrings/debian-archive-keyring.gpg").write_bytes(b"Debian's")
    return tmp_path


def install_package_step(root, cfg, packages=None):
    """The Vector package step as the installer plans and applies it, on ``root``."""
    read = gather(Root(str(root)), {}, reads=vector.CONCERN.reads(cfg))
    facts = make_facts(files=dict(read.files), probes=USER_OK, packages=packages or {})
    steps = vector.plan_vector_package(cfg, facts, STANDALONE, CTX)
    runner = RecordingRunner()
    eng = engine.Engine(Root(str(root)), runner, manage_owner=False)
    items = eng.check(Plan(tuple(steps)))
    runner.calls.clear()  # what checking asked (dpkg-query): from here on, what applying runs
    return eng, items, runner


def test_a_key_of_another_fingerprint_is_refused_and_nothing_changes(host_tree, keyserver):
    cfg = make_config(vector_apt_url="http://127.0.0.1:9/vector-apt", vector_key_url=f"{keyserver}/both.asc",
                      vector_key_fingerprints=PINNED_FPR)
    before = tree_digest(host_tree)
    eng, items, runner = install_package_step(host_tree, cfg)
    with pytest.raises(ApplyError) as info:
        eng.apply(items)
    message = str(info.value)
    assert f"refused the key from {keyserver}/both.asc: its fingerprint {OTHER_FPR} is not one of the pinned " \
           f"{PINNED_FPR}" in message
    assert "ACTVT_VECTOR_KEY_FINGERPRINTS" in message and "running the installer again is safe" in message
    assert tree_digest(host_tree) == before and runner.calls == []  # no file, no apt-get update, no install


def test_datadogs_pins_refuse_a_mirrors_own_key(host_tree, keyserver):
    """A mirror that names only its key URL gets its key checked against Datadog's fingerprints."""
    cfg = make_config(vector_key_url=f"{keyserver}/pinned.asc")
    before = tree_digest(host_tree)
    eng, items, runner = install_package_step(host_tree, cfg)
    with pytest.raises(ApplyError) as info:
        eng.apply(items)
    assert PINNED_FPR in str(info.value) and "5F1E256061D813B125E156E8E6266D4AC0962C7D" in str(info.value)
    assert tree_digest(host_tree) == before and runner.calls == []


def test_a_page_instead_of_a_key_is_refused(host_tree, keyserver):
    cfg = make_config(vector_key_url=f"{keyserver}/pinned.asc {keyserver}/page.html",
                      vector_key_fingerprints=PINNED_FPR)
    before = tree_digest(host_tree)
    eng, items, runner = install_package_step(host_tree, cfg)
    with pytest.raises(ApplyError) as info:
        eng.apply(items)
    assert f"{keyserver}/page.html is not an OpenPGP public key" in str(info.value)
    assert tree_digest(host_tree) == before and runner.calls == []


def test_pinned_keys_make_the_keyring_apt_reads(host_tree, keyserver):
    cfg = make_config(vector_key_url=f"{keyserver}/pinned.asc,{keyserver}/both.asc",
                      vector_key_fingerprints=f"{OTHER_FPR} {PINNED_FPR}")
    eng, items, runner = install_package_step(host_tree, cfg)
    eng.apply(items)
    keyring = vector.keyring_path(cfg, "apt")
    data = (host_tree / keyring.lstrip("/")).read_bytes()
    assert data[:1] == b"\x98"  # binary, as signed-by wants it; each key once
    assert [c.fingerprint for c in openpgp.certificates(data)] == [PINNED_FPR, OTHER_FPR]
    assert f"[signed-by={keyring}]" in (host_tree / "etc/apt/sources.list.d/vector.list").read_text()
    assert ("apt-get", "update", "-q") in runner.calls
    # the next run: nothing to change, and nothing downloaded (the server may as well be gone)
    installed = {"vector": cfg.vector_version}
    eng, items, runner = install_package_step(host_tree, cfg, packages=installed)
    assert items == [] and runner.calls == []


def test_a_rerun_refreshes_the_keyring_when_the_pinned_set_changes(host_tree, keyserver, monkeypatch):
    """Vector installed by an earlier run: a newer installer with another pinned set (here: a key
    added to Datadog's list) makes the new keyring, removes the old one and reads the lists again."""
    urls = f"{keyserver}/pinned.asc"
    cfg = make_config(vector_key_url=urls)
    monkeypatch.setitem(vector.DATADOG_KEYS, "apt", (("pinned.asc", PINNED_FPR),))
    eng, items, _ = install_package_step(host_tree, cfg)
    eng.apply(items)
    old = vector.keyring_path(cfg, "apt")
    installed = {"vector": cfg.vector_version}
    assert install_package_step(host_tree, cfg, packages=installed)[1] == []
    monkeypatch.setitem(vector.DATADOG_KEYS, "apt", (("pinned.asc", PINNED_FPR), ("other.asc", OTHER_FPR)))
    new = vector.keyring_path(cfg, "apt")
    assert new != old
    eng, items, runner = install_package_step(host_tree, cfg, packages=installed)
    assert [(type(i.action).__name__, i.status) for i in items] == [
        ("Keyring", engine.CHANGE), ("Absent", engine.CHANGE), ("File", engine.CHANGE), ("Command", engine.CHANGE)]
    eng.apply(items)
    assert not (host_tree / old.lstrip("/")).exists() and (host_tree / new.lstrip("/")).exists()
    assert f"[signed-by={new}]" in (host_tree / "etc/apt/sources.list.d/vector.list").read_text()
    assert runner.calls == [("apt-get", "update", "-q")]  # no install: Vector stays as it is
    assert (host_tree / "usr/share/keyrings/debian-archive-keyring.gpg").read_bytes() == b"Debian's"


def test_a_rerun_without_the_mirrors_variables_leaves_its_repository(host_tree, keyserver):
    cfg = make_config(vector_apt_url="http://mirror/vector-apt", vector_key_url=f"{keyserver}/pinned.asc",
                      vector_key_fingerprints=PINNED_FPR)
    eng, items, _ = install_package_step(host_tree, cfg)
    eng.apply(items)
    eng, items, runner = install_package_step(host_tree, make_config(), packages={"vector": "0.50.0-1"})
    assert items == []  # not moved to Datadog's repository, whose keys would be fetched


def test_a_vector_set_up_by_other_means_keeps_its_repository(host_tree):
    (host_tree / "etc/apt/sources.list.d/vector.list").write_text(
        "deb [signed-by=/usr/share/keyrings/datadog-archive-keyring.gpg] https://apt.vector.dev/ stable vector-0\n")
    eng, items, runner = install_package_step(host_tree, make_config(), packages={"vector": "0.50.0-1"})
    assert items == []


def test_a_keyring_that_gained_a_key_is_made_again(host_tree, keyserver):
    cfg = make_config(vector_key_url=f"{keyserver}/pinned.asc", vector_key_fingerprints=PINNED_FPR)
    eng, items, _ = install_package_step(host_tree, cfg)
    eng.apply(items)
    path = host_tree / vector.keyring_path(cfg, "apt").lstrip("/")
    path.write_bytes(path.read_bytes() + openpgp.dearmor(OTHER))
    [item] = eng.check(Plan((Step("x", (vector.keyring_action(cfg, "apt"),)),)))
    assert item.status == engine.CHANGE and item.why == f"holds a key that is not pinned: {OTHER_FPR}"
    eng.apply([item])
    assert [c.fingerprint for c in openpgp.certificates(path.read_bytes())] == [PINNED_FPR]


def test_dnf_and_yum_get_an_armored_keyring_of_checked_keys(host_tree, keyserver):
    cfg = make_config(vector_key_url=f"{keyserver}/pinned.asc", vector_key_fingerprints=PINNED_FPR)
    action = vector.keyring_action(cfg, "dnf")
    assert isinstance(action, Keyring) and action.armored
    eng = engine.Engine(Root(str(host_tree)), RecordingRunner(), manage_owner=False)
    eng.apply(eng.check(Plan((Step("x", (action,)),))))
    data = (host_tree / action.path.lstrip("/")).read_bytes()
    assert data.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert [c.fingerprint for c in openpgp.certificates(data)] == [PINNED_FPR]
    assert f"gpgkey=file://{action.path}" in vector.yum_repo_text(cfg, "dnf").decode().splitlines()
