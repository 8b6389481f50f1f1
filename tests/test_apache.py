"""The Apache front: the mode decision, `apache2ctl -S` / `-M` parsing, what the planners write (site or
snippet, challenge virtual host or Alias, modules), the refusal of a broken configuration, the reload
after a CRL change, uninstall. Real Apache runs in tests/integration/test_apache_e2e.py
(apache2) and tests/integration/test_apache_rhel_e2e.py (httpd)."""

import dataclasses

import pytest

from installer.concerns import apache, nginx
from installer.core import paths
from installer.core.actions import Command, File, Packages, Service, Symlink
from installer.core.facts import OSInfo, ProbeResult
from installer.plans.registry import Context, build_plan, decide, front_named

from helpers import DOMAIN, make_config, make_facts

CTX = Context(version="1.0.0", now="2026-06-01T00:00:00Z")
HEAD = "AH00558: apache2: Could not reliably determine the server's fully qualified domain name\nVirtualHost configuration:\n"
DEFAULT_80 = ("*:80                   is a NameVirtualHost\n"
              "         default server 172.17.0.2 (/etc/apache2/sites-enabled/000-default.conf:1)\n"
              "         port 80 namevhost 172.17.0.2 (/etc/apache2/sites-enabled/000-default.conf:1)\n")
SITE_443 = f"*:443                  {DOMAIN} (/etc/apache2/sites-enabled/site.conf:12)\n"
SITE_80 = (f"         port 80 namevhost www.example.com (/etc/apache2/sites-enabled/site.conf:1)\n"
           f"                 alias {DOMAIN}\n")
TAIL = 'ServerRoot: "/etc/apache2"\nMain DocumentRoot: "/var/www/html"\n'
MODULES = "Loaded Modules:\n core_module (static)\n alias_module (shared)\n mime_module (shared)\n"


def hosts(*parts, rc=0):
    return ProbeResult(rc, HEAD + "".join(parts) + TAIL)


def facts_for(s=None, modules=MODULES, files=None, web="apache2", version="2.4.57-2", **extra):
    probes = {"apache2ctl_S": s or hosts(DEFAULT_80)}
    if modules is not None:
        probes["apache2ctl_M"] = ProbeResult(0, modules)
    return make_facts(web=web, files=files or {}, probes=probes, packages={"apache2": version}, **extra)


def steps_of(config, facts):
    decisions = decide(config, facts)
    assert decisions.front is apache.FRONT
    return (apache.plan_apache_challenge(config, facts, decisions, CTX),
            apache.plan_apache_site(config, facts, decisions, CTX))


def actions(steps, kind=object):
    return [action for step in steps for action in step.actions if isinstance(action, kind)]


def file_text(steps, path):
    return next(action.content.decode() for action in actions(steps, File) if action.path == path)


def test_apache_on_80_443_is_the_front_and_its_webroot_is_its_own():
    decisions = decide(make_config(), facts_for())
    assert decisions.mode == "proxy" and decisions.front is apache.FRONT and decisions.refusal is None
    assert decisions.webroot == apache.WEBROOT


def test_installed_but_stopped_apache_is_the_front_of_an_explicit_proxy_mode():
    stopped = facts_for(web=None)
    assert decide(make_config(), stopped).mode == "standalone"  # auto: nothing listens
    assert decide(make_config(install_mode="proxy"), stopped).front is apache.FRONT
    assert decide(make_config(install_mode="proxy"), make_facts()).front is nginx.FRONT  # none installed: nginx


def test_another_web_server_is_still_refused():
    decisions = decide(make_config(), make_facts(web="lighttpd"))
    assert decisions.front is None or decisions.refusal is None  # unknown: auto stays standalone
    decisions = decide(make_config(install_mode="proxy"), make_facts(web="lighttpd"))
    assert decisions.front is None and "another web server" in decisions.refusal


def test_apache2ctl_S_parser_finds_the_domain_per_port_with_aliases_and_skips_ours():
    parsed = apache.ApacheHosts.parse(hosts(DEFAULT_80, SITE_80, SITE_443))
    assert parsed.serving_file(DOMAIN, 443) == "/etc/apache2/sites-enabled/site.conf"
    assert parsed.serving_file(DOMAIN, 80) == "/etc/apache2/sites-enabled/site.conf"  # through its ServerAlias
    assert parsed.serving_file("other.example.com", 443) is None
    ours = hosts(DEFAULT_80, f"*:443                  {DOMAIN} ({apache.SITE_LINK}:4)\n")
    assert apache.ApacheHosts.parse(ours).serving_file(DOMAIN, 443) is None
    wild = hosts("*:443                  www.example.com (/etc/apache2/sites-enabled/w.conf:1)\n"
                 "                 wild alias *.example.com\n")
    assert apache.ApacheHosts.parse(wild).serving_file(DOMAIN, 443) == "/etc/apache2/sites-enabled/w.conf"


def test_no_site_of_the_domain_gets_a_site_and_a_challenge_host_of_its_own():
    challenge, site = steps_of(make_config(), facts_for())
    a2enmod = [a for a in actions(challenge, Command) if a.argv[0] == "a2enmod"]
    assert [a.argv for a in a2enmod] == [("a2enmod", "-q", "ssl", "proxy", "proxy_http")]  # alias already loaded
    assert a2enmod[0].on_rollback == (("a2dismod", "-q", "-f", "-p", "ssl", "proxy", "proxy_http"),)
    assert file_text(challenge, apache.MODULES_RECORD) == "proxy\nproxy_http\nssl\n"
    acme = file_text(challenge, apache.CHALLENGE_SITE)
    assert f"ServerName {DOMAIN}" in acme and f'"{apache.WEBROOT}/.well-known/acme-challenge/"' in acme
    assert (apache.CHALLENGE_SITE_LINK, apache.CHALLENGE_SITE) in [(a.path, a.target) for a in actions(challenge, Symlink)]
    commands = [a.argv for a in actions(challenge, Command)]
    assert commands[-2:] == [("apache2ctl", "configtest"), ("systemctl", "try-reload-or-restart", "apache2")]
    text = file_text(site, apache.SITE)
    assert "<VirtualHost *:443>" in text and 'ProxyPass "https://127.0.0.1:4096/actvt" upgrade=websocket' in text
    assert "SSLVerifyClient" not in text and "SSLProxyMachineCertificateFile" not in text
    assert [a.argv for a in actions(site, Command)] == [("apache2ctl", "configtest"), ("systemctl", "try-reload-or-restart", "apache2")]


def test_existing_site_of_the_domain_gets_only_the_snippet_and_an_alias_on_80():
    cfg = make_config(enable_mtls="yes")
    facts = facts_for(hosts(DEFAULT_80, SITE_80, SITE_443))
    challenge, site = steps_of(cfg, facts)
    written = [a.path for a in actions(challenge + site, File)]
    assert apache.SITE not in written and apache.CHALLENGE_SITE not in written
    assert apache.SNIPPET in written and apache.CHALLENGE_ALIAS in written
    snippet = file_text(site, apache.SNIPPET)
    assert "\n<VirtualHost" not in snippet and "SSLVerifyClient optional" in snippet
    assert f'SSLCARevocationFile "{paths.MTLS_CRL}"' in snippet and "SSLCARevocationCheck chain" in snippet
    assert "Require expr \"%{SSL_CLIENT_VERIFY} == 'SUCCESS'\"" in snippet
    assert f'SSLProxyMachineCertificateFile "{apache.MACHINE_PEM}"' in snippet
    notes = apache.notes(cfg, facts, decide(cfg, facts))
    assert any(f"Include {apache.SNIPPET}" in note and "/etc/apache2/sites-enabled/site.conf" in note for note in notes)


def test_mtls_is_checked_at_the_virtual_host_not_per_directory():
    """Per-directory SSLVerifyClient would need TLS 1.3 post-handshake auth (Apple's stack has none)."""
    _, site = steps_of(make_config(enable_mtls="yes"), facts_for())
    text = file_text(site, apache.SITE)
    location = text[text.index('<Location "/actvt">'):]
    assert "SSLVerifyClient" not in location and text.index("SSLVerifyClient optional") < text.index("<Location")
    assert f'ErrorDocument 403 "{apache.NO_CERTIFICATE[1].decode()}"' in location


def test_trust_only_without_a_crl_file_has_no_revocation_check():
    cfg = make_config(enable_mtls="yes", mtls_ca_file="/root/fleet-ca.pem")
    assert not any("Revocation" in line for line in apache.mtls_server_lines(cfg))
    cfg = make_config(enable_mtls="yes", mtls_ca_file="/root/fleet-ca.pem", mtls_crl_file="/root/fleet-crl.pem")
    assert "SSLCARevocationCheck chain" in apache.mtls_server_lines(cfg)


def test_apache_before_2_4_47_tunnels_with_mod_proxy_wstunnel():
    challenge, site = steps_of(make_config(), facts_for(version="2.4.38-3+deb10u8"))
    assert "proxy_wstunnel" in actions(challenge, Command)[0].argv
    assert 'ProxyPass "wss://127.0.0.1:4096/actvt" timeout=86400' in file_text(site, apache.SITE)


def test_modules_already_loaded_are_not_enabled_nor_recorded():
    loaded = MODULES + " ssl_module (shared)\n proxy_module (shared)\n proxy_http_module (shared)\n"
    challenge, _ = steps_of(make_config(), facts_for(modules=loaded))
    assert not [a for a in actions(challenge, Command) if a.argv[0] == "a2enmod"]
    assert apache.MODULES_RECORD not in [a.path for a in actions(challenge, File)]
    # a re-run keeps the record of what an earlier run enabled
    challenge, _ = steps_of(make_config(), facts_for(modules=loaded, files={apache.MODULES_RECORD: b"proxy\nssl\n"}))
    assert file_text(challenge, apache.MODULES_RECORD) == "proxy\nssl\n"


# what Debian 12's apache2 ships in mods-available (the lines a2enmod reads)
MODS_AVAILABLE = {
    f"{apache.MODS_AVAILABLE}/ssl.load": b"# Depends: setenvif mime socache_shmcb\nLoadModule ssl_module "
                                         b"/usr/lib/apache2/modules/mod_ssl.so\n",
    f"{apache.MODS_AVAILABLE}/proxy_http.load": b"# Depends: proxy\nLoadModule proxy_http_module x.so\n",
    f"{apache.MODS_AVAILABLE}/proxy.load": b"LoadModule proxy_module x.so\n# Depends: not_a_comment_header\n",
}


def test_the_modules_a2enmod_pulls_in_are_enabled_and_recorded_too():
    """a2enmod ssl also enables socache_shmcb (its `# Depends:`): uninstall left it enabled."""
    challenge, _ = steps_of(make_config(), facts_for(files=MODS_AVAILABLE))
    [a2enmod] = [a.argv for a in actions(challenge, Command) if a.argv[0] == "a2enmod"]
    # dependencies first, the loaded ones (alias, mime) left out; proxy's Depends after a directive is not one
    assert a2enmod == ("a2enmod", "-q", "setenvif", "socache_shmcb", "ssl", "proxy", "proxy_http")
    assert file_text(challenge, apache.MODULES_RECORD) == "proxy\nproxy_http\nsetenvif\nsocache_shmcb\nssl\n"


def test_the_site_verifies_vectors_certificate_for_its_proxy_only_and_answers_health():
    _, site = steps_of(make_config(enable_mtls="yes"), facts_for())
    text = file_text(site, apache.SITE)
    block = text[text.index('<Proxy "https://127.0.0.1:4096/actvt">'):text.index("</Proxy>")]
    for line in ("SSLProxyEngine on", "SSLProxyVerify require", 'SSLProxyCACertificateFile "/etc/ssl/certs/ca-certificates.crt"',
                 "SSLProxyCheckPeerName on", f'SSLProxyMachineCertificateFile "{apache.MACHINE_PEM}"'):
        assert line in block, line
    outside = text.replace(block, "")
    assert "SSLProxy" not in outside and "SSLProxyVerify none" not in text
    assert "ProxyPreserveHost on" in text[text.index('<Location "/actvt">'):]  # the peer name checked: the domain
    health = text[text.index('<Location "/actvt/health">'):]
    assert text.index('<Location "/actvt">') < text.index('<Location "/actvt/health">')  # the later one wins
    assert 'ProxyPass "!"' in health and "Require all granted" in health
    assert f'Alias "/actvt/health" "{apache.HEALTH_FILE}"' in text
    written = {a.path: a for a in actions(site, File)}
    assert written[apache.HEALTH_FILE].content == b"OK\n" and written[apache.HEALTH_FILE].mode == 0o644
    # the RHEL family's bundle where dnf is the package manager (core.front.upstream_ca_file)
    rhel = dataclasses.replace(facts_for(), package_manager="dnf")
    assert '"/etc/pki/tls/certs/ca-bundle.crt"' in apache.render_site(make_config(), rhel).decode()


def test_a_broken_configuration_is_refused_before_any_plan():
    broken = ProbeResult(1, "AH00526: Syntax error on line 3 of /etc/apache2/sites-enabled/broken.conf:\n"
                            "Invalid command 'Bogus', perhaps misspelled\nAction '-S' failed.\n"
                            "The Apache error log may have more information.\n")
    with pytest.raises(apache.ApacheError) as caught:
        build_plan(make_config(), facts_for(broken), CTX)
    message = str(caught.value)
    assert "broken.conf" in message and "Invalid command 'Bogus'" in message and "Nothing was changed" in message


def test_nginx_plans_nothing_when_apache_is_the_front():
    cfg, facts = make_config(), facts_for()
    decisions = decide(cfg, facts)
    assert nginx.plan_nginx_challenge(cfg, facts, decisions, CTX) == []
    assert nginx.plan_nginx_site(cfg, facts, decisions, CTX) == []
    assert apache.plan_apache_site(cfg, make_facts(web="nginx"), decide(cfg, make_facts(web="nginx")), CTX) == []


def test_the_proxy_identity_is_also_written_as_one_file_for_apache():
    plan = build_plan(make_config(enable_mtls="yes"), facts_for(), CTX)
    files = {a.path: a for a in plan.actions if isinstance(a, File)}
    bundle = files[apache.MACHINE_PEM]
    assert bundle.mode == 0o600 and bundle.sensitive
    assert bundle.content == files[paths.PROXY_CERT].content + files[paths.PROXY_KEY].content
    nginx_plan = build_plan(make_config(enable_mtls="yes"), make_facts(web="nginx"), CTX)
    assert apache.MACHINE_PEM not in [a.path for a in nginx_plan.actions if isinstance(a, File)]


def test_a_crl_change_reloads_apache_then_restarts_vector():
    """A graceful reload leaves open tunnels to old children: Vector's restart ends them."""
    reload = apache.FRONT.check_and_reload((paths.CA_CERT, paths.MTLS_CRL), "the updated mTLS files")
    assert [getattr(a, "argv", None) for a in reload[:2]] == [("apache2ctl", "configtest"),
                                                            ("systemctl", "try-reload-or-restart", "apache2")]
    assert isinstance(reload[2], Service) and reload[2].name == "vector"
    assert reload[2].restart_when_changed == (paths.MTLS_CRL,)
    assert len(apache.FRONT.check_and_reload((paths.CA_CERT,), "x")) == 2


def test_uninstall_disables_only_the_recorded_modules_then_tests_and_reloads():
    entries = {apache.SITE: {}, apache.MODULES_RECORD: {}}
    facts = facts_for(files={apache.MODULES_RECORD: b"proxy\nssl\n"})
    steps = apache.uninstall_steps(entries, facts, None)
    # a2dismod -p leaves disabled_by_admin behind (made empty when it was not there before): removed
    assert [a.argv for a in actions(steps, Command)] == [
        ("a2dismod", "-q", "-f", "-p", "proxy", "ssl"), ("rmdir", "--ignore-fail-on-non-empty", apache.DISABLED_MARKERS),
        ("apache2ctl", "configtest"), ("systemctl", "try-reload-or-restart", "apache2")]
    assert apache.uninstall_steps({"/etc/nginx/x": {}}, facts, None) == []
    # enabled_by_admin: removed when it holds only the markers of our modules (a2enmod made it for them)
    markers = {f"{apache.ENABLED_MARKERS}/proxy": b"", f"{apache.ENABLED_MARKERS}/ssl": b""}
    ours = dataclasses.replace(facts_for(files={apache.MODULES_RECORD: b"proxy\nssl\n", **markers}),
                               dirs=frozenset({apache.ENABLED_MARKERS, apache.DISABLED_MARKERS}))
    assert [a.argv[-1] for a in actions(apache.uninstall_steps(entries, ours, None), Command)
            if a.argv[0] == "rmdir"] == [apache.ENABLED_MARKERS]
    admins = dataclasses.replace(ours, files=dict(ours.files, **{f"{apache.ENABLED_MARKERS}/rewrite": b""}))
    assert not [a for a in actions(apache.uninstall_steps(entries, admins, None), Command) if a.argv[0] == "rmdir"]


def test_standalone_removes_what_an_earlier_apache_run_left():
    facts = dataclasses.replace(facts_for(web=None), files={apache.SITE: b"x", apache.SITE_LINK: b"x"})
    cfg = make_config(install_mode="standalone")
    steps = apache.plan_apache_site(cfg, facts, decide(cfg, facts), CTX)
    assert {a.describe() for a in actions(steps)} >= {f"remove {apache.SITE}", f"remove {apache.SITE_LINK}"}


# --- the RHEL family's httpd ------------------------------------------------------------------------------

ROCKY = OSInfo(id="rocky", version_id="9.4", id_like=("rhel", "centos", "fedora"), pretty_name="Rocky Linux 9.4")
HTTPD_HEAD = "AH00558: httpd: Could not reliably determine the server's fully qualified domain name\nVirtualHost configuration:\n"
HTTPD_TAIL = 'ServerRoot: "/etc/httpd"\nMain DocumentRoot: "/var/www/html"\n'
SSL_443 = ("*:443                  is a NameVirtualHost\n"
           "         default server rocky9 (/etc/httpd/conf.d/ssl.conf:40)\n"
           "         port 443 namevhost rocky9 (/etc/httpd/conf.d/ssl.conf:40)\n")
#: Rocky 9's conf.modules.d loads these (00-base.conf, 00-proxy.conf); mod_ssl adds ssl
HTTPD_MODULES = ("Loaded Modules:\n core_module (static)\n so_module (static)\n alias_module (shared)\n"
                 " proxy_module (shared)\n proxy_http_module (shared)\n proxy_wstunnel_module (shared)\n")


def httpd_facts(s="", modules=HTTPD_MODULES, packages=None, files=None, web="httpd"):
    return dataclasses.replace(make_facts(
        web=web, files=files or {},
        probes={"httpd_S": ProbeResult(0, HTTPD_HEAD + s + HTTPD_TAIL), "httpd_M": ProbeResult(0, modules)},
        packages=packages if packages is not None else {"httpd": "2.4.57-11.el9_4"}), os=ROCKY, package_manager="dnf")


def httpd_steps(config, facts):
    decisions = decide(config, facts)
    assert decisions.front is apache.HTTPD_FRONT and decisions.webroot == apache.WEBROOT
    return (apache.plan_apache_challenge(config, facts, decisions, CTX),
            apache.plan_apache_site(config, facts, decisions, CTX))


def test_httpd_is_the_front_on_the_rhel_family_and_state_names_it():
    assert decide(make_config(), httpd_facts()).front is apache.HTTPD_FRONT
    stopped = httpd_facts(web=None)
    assert decide(make_config(install_mode="proxy"), stopped).front is apache.HTTPD_FRONT
    assert front_named("httpd") is apache.HTTPD_FRONT and front_named("apache") is apache.FRONT


def test_httpd_without_mod_ssl_installs_it_records_it_and_writes_conf_d_files_only():
    cfg = make_config(enable_mtls="yes")
    challenge, site = httpd_steps(cfg, httpd_facts())
    packages = actions(challenge, Packages)
    assert [(p.manager, p.names) for p in packages] == [("dnf", ("mod_ssl",))]
    assert file_text(challenge, apache.PACKAGES_RECORD) == "mod_ssl\n"
    # every module is loaded (ssl comes with mod_ssl): no file of ours in conf.modules.d, no a2enmod
    assert apache.RHEL.modules_file not in [a.path for a in actions(challenge, File)]
    assert not [a for a in actions(challenge, Command) if a.argv[0] in ("a2enmod", "apache2ctl")]
    assert not actions(challenge + site, Symlink)
    # no virtual host on port 80 (Rocky's httpd.conf): a vhost of ours would take every name's port 80,
    # so the main server answers the challenge through an Alias
    acme = file_text(challenge, apache.RHEL.challenge_alias)
    assert "<VirtualHost" not in acme and "/etc/httpd/conf/httpd.conf" in acme
    commands = [a.argv for a in actions(challenge, Command)]
    assert commands[-2:] == [("apachectl", "configtest"), ("systemctl", "try-reload-or-restart", "httpd")]
    assert [a.name for a in actions(challenge, Service)] == ["httpd"]
    text = file_text(site, apache.RHEL.site)
    assert apache.RHEL.site == "/etc/httpd/conf.d/zz-actvt-vector.conf" and "zz-" > "ssl.conf"[:3]
    assert "<VirtualHost *:443>" in text and "SSLVerifyClient optional" in text
    assert [a.argv for a in actions(site, Command)] == [("apachectl", "configtest"), ("systemctl", "try-reload-or-restart", "httpd")]
    written = [a.path for a in actions(challenge + site, File) if a.path.startswith("/etc/")]
    assert written and all(path.startswith("/etc/httpd/conf.d/zz-actvt-") for path in written)


def test_httpd_with_a_port_80_virtual_host_gets_a_challenge_host_of_its_own():
    other = "*:80                   www.example.net (/etc/httpd/conf.d/site.conf:1)\n"
    challenge, _ = httpd_steps(make_config(), httpd_facts(other, packages={"httpd": "2.4.57-11.el9_4", "mod_ssl": "1"}))
    assert not actions(challenge, Packages) and apache.PACKAGES_RECORD not in [a.path for a in actions(challenge, File)]
    assert f"ServerName {DOMAIN}" in file_text(challenge, apache.RHEL.challenge_site)


def test_httpd_missing_modules_get_loadmodule_lines_in_a_file_of_ours_and_a_rerun_keeps_them():
    bare = "Loaded Modules:\n core_module (static)\n alias_module (shared)\n"
    facts = httpd_facts(modules=bare, packages={"httpd": "2.4.57-11.el9_4", "mod_ssl": "1"})
    challenge, _ = httpd_steps(make_config(), facts)
    text = file_text(challenge, apache.RHEL.modules_file)
    assert apache.RHEL.modules_file == "/etc/httpd/conf.modules.d/99-actvt-vector.conf"
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "LoadModule ssl_module modules/mod_ssl.so", "LoadModule proxy_module modules/mod_proxy.so",
        "LoadModule proxy_http_module modules/mod_proxy_http.so"]
    # the re-run sees them loaded (by our file): the same file, not an empty one
    loaded = bare + " ssl_module (shared)\n proxy_module (shared)\n proxy_http_module (shared)\n"
    again = httpd_facts(modules=loaded, packages=facts.packages, files={apache.RHEL.modules_file: text.encode()})
    challenge, _ = httpd_steps(make_config(), again)
    assert file_text(challenge, apache.RHEL.modules_file) == text


def test_httpd_S_parser_reads_the_family_output_and_a_broken_httpd_is_refused():
    site = f"*:443                  {DOMAIN} (/etc/httpd/conf.d/site.conf:12)\n"
    parsed = apache.ApacheHosts.parse(ProbeResult(0, HTTPD_HEAD + SSL_443 + site + HTTPD_TAIL))
    assert parsed.serving_file(DOMAIN, 443) == "/etc/httpd/conf.d/site.conf" and not parsed.has_port(80)
    cfg = make_config()
    _, steps = httpd_steps(cfg, httpd_facts(SSL_443 + site))
    assert apache.RHEL.snippet in [a.path for a in actions(steps, File)]
    notes = apache.notes(cfg, httpd_facts(SSL_443 + site), decide(cfg, httpd_facts(SSL_443 + site)))
    assert any("Include /etc/httpd/actvt-vector-location.conf" in n and "systemctl reload httpd" in n for n in notes)
    broken = dataclasses.replace(httpd_facts(), probes={"httpd_S": ProbeResult(1, (
        "AH00526: Syntax error on line 3 of /etc/httpd/conf.d/broken.conf:\nInvalid command 'Bogus', perhaps "
        "misspelled or defined by a module not included in the server configuration\n"))})
    with pytest.raises(apache.ApacheError) as caught:
        build_plan(cfg, broken, CTX)
    assert "httpd -S" in str(caught.value) and "broken.conf" in str(caught.value) and "apachectl configtest" in str(caught.value)


def test_httpd_crl_change_and_uninstall_use_httpd_and_remove_only_the_recorded_mod_ssl():
    reload = apache.HTTPD_FRONT.check_and_reload((paths.CA_CERT, paths.MTLS_CRL), "the updated mTLS files")
    assert [a.argv for a in reload[:2]] == [("apachectl", "configtest"), ("systemctl", "try-reload-or-restart", "httpd")]
    entries = {apache.RHEL.site: {}, apache.PACKAGES_RECORD: {}}
    installed = {"httpd": "2.4.57-11.el9_4", "mod_ssl": "1"}
    facts = httpd_facts(packages=installed, files={apache.PACKAGES_RECORD: b"mod_ssl\n"})
    steps = apache.uninstall_steps(entries, facts, None)
    assert [a.argv for a in actions(steps, Command)] == [
        ("dnf", "remove", "-y", "mod_ssl"), ("apachectl", "configtest"), ("systemctl", "try-reload-or-restart", "httpd")]
    # mod_ssl that was there before the install (no record) stays
    steps = apache.uninstall_steps({apache.RHEL.site: {}}, httpd_facts(packages=installed), None)
    assert [a.argv for a in actions(steps, Command)] == [("apachectl", "configtest"), ("systemctl", "try-reload-or-restart", "httpd")]
