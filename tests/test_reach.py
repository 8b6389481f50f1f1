"""Connectivity check: the endpoints the plan needs, asked before anything is changed."""

import socket

import pytest

from installer.commands import run
from installer.concerns import certbot, vector
from installer.core import http as reach
from installer.core.actions import Command, File, Plan, Step
from installer.plans.registry import Built, endpoints

from helpers import make_config, serving


@pytest.fixture
def web():
    with serving(dict.fromkeys(("/repo/dists/stable/InRelease", "/dir", "/key.asc"), b"x")) as url:
        yield url


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def plan_for(cfg):
    """A plan whose steps the concerns that declare the endpoints planned."""
    return Built(Plan((
        Step("x", (vector.keyring_action(cfg, "apt"), File(vector.APT_LIST, b"deb ..."))),
        Step("y", (Command(("certbot", "certonly", "--webroot", "--server", cfg.acme_server)),)),
    )), (vector.CONCERN, certbot.CONCERN))


def test_the_plans_endpoints_are_asked(web):
    cfg = make_config(vector_apt_url=f"{web}/repo/", acme_server=f"{web}/dir", vector_key_url=f"{web}/key.asc")
    assert [url for _, url, _ in endpoints(cfg, plan_for(cfg))] == [
        f"{web}/key.asc", f"{web}/repo/dists/stable/InRelease", f"{web}/dir"]
    run.check_endpoints(endpoints(cfg, plan_for(cfg)), {})
    assert endpoints(cfg, Built(Plan(()), ())) == []  # nothing to install or certify: nothing asked


def test_an_unreachable_mirror_or_a_wrong_acme_url_stops_clearly(web):
    """e2e: an unreachable ACTVT_VECTOR_APT_URL ended in apt's 'Unable to locate package vector'."""
    gone = f"http://127.0.0.1:{free_port()}/vector-apt"
    cfg = make_config(vector_apt_url=gone, acme_server=f"{web}/no-such-dir", vector_key_url=f"{web}/key.asc")
    with pytest.raises(run.UnreachableError) as caught:
        run.check_endpoints(endpoints(cfg, plan_for(cfg)), {})
    message = str(caught.value)
    assert f"cannot reach Vector's package repository at {gone}/dists/stable/InRelease" in message
    assert "ACTVT_VECTOR_APT_URL" in message and "refused" in message.lower()
    assert f"{web}/no-such-dir: HTTP 404" in message and "ACTVT_ACME_SERVER" in message
    assert message.endswith("Nothing was changed.")


def test_tls_trusts_what_certbot_trusts(tmp_path):
    """Debian 13 (Python 3.13) verifies strictly by default; certbot does not: a CA certbot accepts
    must pass here too."""
    import ssl

    assert not reach.tls_context({}).verify_flags & getattr(ssl, "VERIFY_X509_STRICT", 0)
    assert reach.tls_context({}).verify_mode == ssl.CERT_REQUIRED and reach.tls_context({}).check_hostname
