"""``actvt doctor``: the user guide's troubleshooting (docs/mtls.md) as one command.

    actvt doctor [--json] [--root DIR]

Each check says what it found and, when something is wrong, the command that fixes it; the exit
status is 1 when a check fails (0 with warnings only, 3 when nothing is installed). The checks:

- on this host's own addresses (127.0.0.1, the domain as SNI and Host): the domain resolves to this
  host (when it resolves to an address that is not this host's, as a cloud's public IP behind NAT,
  the connection is also made there, as the app makes it from outside); Vector runs; the port answers; the certificate served is the one certbot keeps, valid for the
  domain, trusted as certbot and apt trust; a metrics message arrives (with mTLS: with a current
  client certificate of this server, and a connection without one is refused: by Vector's handshake
  standalone, by nginx's 496 behind it, where Vector itself must answer nginx's own identity);
- the modes and owners of the files and folders the install's own plan writes (``registry.build``:
  what a re-run would give them, so the wanted modes have one source);
- what each concern checks of itself (``Concern.checks``): ``vector validate`` as the vector user,
  ``nginx -t`` in proxy mode, certbot's renewal timer and deploy hook, the mode's ports in ufw,
  firewalld or iptables (read with the firewall planner's own probes and parsers);
- the certificates' ends (``status.lifetime_findings``, shared with ``actvt status``): the server
  certificate, the CA and its CRL, every client certificate, warned of 30 days before.

Read-only: nothing is written (no log, no lock, not even a temporary file: client keys reach the TLS
library through memory files), nothing is asked, and nothing but this host's own addresses and
those the domain resolves to is contacted. Under ``--root`` the tree's files are checked and commands and connections are not.
"""

import dataclasses
import datetime
import json
import os
import socket
import stat
from typing import Callable, List, Optional, Tuple

from cryptography import x509

from installer.commands import run as sequence
from installer.commands import status
from installer.concerns import mtls, pki
from installer.core import paths
from installer.core.actions import Copy, Directory, File, wanted_mode_group
from installer.core.concern import FAIL, PASS, SKIP, WARN, Finding
from installer.core.facts import WEB_SERVERS, public_addresses
from installer.core.errors import EXIT_FAIL, EXIT_OK, NOT_INSTALLED, ActvtError
from installer.core.fs import Tree, kind_of
from installer.core.http import tls_context
from installer.core.paths import Root
from installer.core import websocket
from installer.engine.engine import owner_names
from installer.plans import registry

LOOPBACK = "127.0.0.1"
RESTART_VECTOR = "sudo systemctl restart vector"
RESTART = RESTART_VECTOR + "  (why it stopped: sudo journalctl -u vector -n 50)"
RELOAD_NGINX = "sudo nginx -t && sudo systemctl reload nginx"
PROGRAMS = {"vector": "Vector"}  # as a port's holder is named


# --- the connection, as the app makes it, over this host's own address ------------------------------


def is_local(address: str) -> bool:
    """An address of one of this host's interfaces (binding to it succeeds; nothing is sent)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
            return True
        except OSError:
            return False


def foreign_addresses(addresses, local: Optional[Callable[[str], bool]] = None) -> List[str]:
    """The domain's public addresses that are on none of this host's interfaces (a cloud's public IP
    behind NAT, or another machine)."""
    local = local or is_local
    return [item for item in public_addresses(addresses or ()) if not local(item)]


def dns_finding(domain: str, addresses: Optional[Tuple[str, ...]], local=None) -> Finding:
    record = f"point the A (or AAAA) record of {domain} at this server's public address"
    if addresses is None:
        return Finding("dns", SKIP, f"DNS: {domain} not looked up (--root)")
    if not addresses:
        return Finding("dns", FAIL, f"DNS: {domain} does not resolve from this server", record)
    shown = ", ".join(addresses)
    public = public_addresses(addresses)
    if not public:
        return Finding("dns", WARN, f"DNS: {domain} resolves to {shown} only (this host's own /etc/hosts): the app "
                                    "needs a public record", record)
    foreign = foreign_addresses(addresses, local)
    if not foreign:
        return Finding("dns", PASS, f"DNS: {domain} resolves to {shown}, an address of this host")
    return Finding("dns", WARN, f"DNS: {domain} resolves to {', '.join(foreign)}, which is not an address of this "
                                "host's interfaces (right only where a router or the cloud forwards it here, as "
                                "a public address behind NAT)", record)


def service_findings(service: dict) -> List[Finding]:
    if service["active"] is None:
        return [Finding("vector.service", SKIP, "Vector: not checked (--root)")]
    found = []
    pid = f", PID {service['main_pid']}" if service["main_pid"] not in (None, "0") else ""
    if service["active"] == "active":
        found.append(Finding("vector.service", PASS, f"Vector: active{pid}"))
    else:
        found.append(Finding("vector.service", FAIL, f"Vector: {service['active'] or 'unknown'} (not running)", RESTART))
    if service["enabled"] != "enabled":
        found.append(Finding("vector.enabled", WARN, f"Vector: {service['enabled'] or 'not enabled'}: it does not "
                                                     "start at boot", "sudo systemctl enable vector"))
    return found


def _leaf(der: Optional[bytes]):
    try:
        return x509.load_der_x509_certificate(der) if der else None
    except ValueError:
        return None


def _names(cert) -> List[str]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName))
    except x509.ExtensionNotFound:
        return []


def covers(name: str, domain: str) -> bool:
    """A certificate's DNS name covers the domain (RFC 6125: a wildcard stands for one label)."""
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    if name.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == name[2:]
    return name == domain


def certificate_finding(served: websocket.Attempt, trusted: websocket.Attempt, expected: Optional[bytes],
                        source: str, domain: str, where: str, who: str, now: datetime.datetime) -> Finding:
    """The certificate served at ``where``: the one in ``source`` (what ``who`` should serve), valid for the
    domain now, and trusted as certbot and apt trust (``trusted``: a handshake that verified it)."""
    cert = _leaf(served.peer_cert)
    if cert is None:
        return Finding("certificate.served", FAIL, f"Served certificate: none could be read on {where} "
                                                   f"({served.error})", RESTART if who == "Vector" else RELOAD_NGINX)
    names = _names(cert)
    if not any(covers(name, domain) for name in names):
        return Finding("certificate.served", FAIL, f"Served certificate on {where} is not valid for {domain} (it "
                                                   f"names {', '.join(names) or 'no DNS name'})", "sudo actvt install")
    try:
        wanted = pki.fingerprint(pki.load_cert(expected)) if expected else None
    except pki.PKIError:
        wanted = None
    if wanted != pki.fingerprint(cert):
        fix = RESTART_VECTOR if who == "Vector" else RELOAD_NGINX
        return Finding("certificate.served", FAIL, f"Served certificate on {where} is not the one in {source} ({who} "
                                                   "was not restarted after a renewal, or the file changed since)", fix)
    if cert.not_valid_after_utc <= now:
        return Finding("certificate.served", FAIL, f"Served certificate on {where} expired on "
                                                   f"{cert.not_valid_after_utc:%Y-%m-%d}", f"sudo certbot renew --cert-name {domain}")
    if trusted.stage == "trust":
        return Finding("certificate.served", FAIL, f"Served certificate on {where} is not trusted by this system's "
                                                   f"CA store: {trusted.error}",
                       "sudo ACTVT_REUSE_CERT=no actvt install  (a certificate from the ACME directory "
                       "ACTVT_ACME_SERVER names; Let's Encrypt's production directory by default)")
    issuer = cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return Finding("certificate.served", PASS, f"Served certificate on {where}: the one in {source}, valid for {domain}, "
                   "trusted"
                   + (f" (issued by {issuer[0].value})" if issuer else ""))


def metrics_finding(check: str, result: websocket.Attempt, label: str, where: str, fix: str) -> Finding:
    """A metrics message (a JSON object with ``metric_type``, docs/metrics-contract.md) arrived."""
    if result.stage != "done":
        return Finding(check, FAIL, f"{label}: no metrics on {where}: {result.error}", fix)
    try:
        kind = json.loads(result.message).get("metric_type")
    except (ValueError, AttributeError):
        kind = None
    if not kind:
        return Finding(check, FAIL, f"{label}: the first message on {where} is not a metrics message: "
                                    f"{result.message[:80]!r}", "sudo actvt install  (rewrites vector.toml)")
    return Finding(check, PASS, f"{label}: a metrics message arrives on {where} ({kind})")


def refused_finding(result: websocket.Attempt, front, where: str) -> Finding:
    """Without a client certificate: Vector's handshake refuses (standalone), the front answers its 496
    (proxy: ``front`` is the Front, which says how its 496 reaches a client)."""
    label = "Without a client certificate"
    if front is not None:
        status, page = front.no_certificate
        if result.status == status and page in result.body:
            return Finding("mtls.refused", PASS, f"{label}: {where} answers 496 ({front.name} sends it as {status} "
                                                 f"{page.decode()!r}), as it should")
        got = f"HTTP {result.status}" if result.status else result.error
        return Finding("mtls.refused", FAIL, f"{label}: {where} answers {got}, not 496: the client certificate is not "
                                             "checked there", f"sudo actvt install  (rewrites the {front.name} site)")
    if result.stage in ("tls", "trust"):
        return Finding("mtls.refused", PASS, f"{label}: {where} refuses the handshake ({result.error})")
    return Finding("mtls.refused", FAIL, f"{label}: {where} lets the connection in (it got to: "
                                         f"{result.stage}): Vector does not ask for client certificates",
                   "sudo actvt install  (rewrites vector.toml)")


def port_finding(check: str, result: websocket.Attempt, port: int, listeners, program: str,
                 service_down: bool) -> Finding:
    label = f"Port {port}"
    held = [item for item in listeners if item.port == port]
    if result.timed_out:  # a listener refuses or answers at once: a silence is a rule dropping the packets
        listening = f"{program} listens there" if any(item.is_program(program) for item in held) else \
            "something may listen there"
        return Finding(check, FAIL, f"{label}: no answer on {LOOPBACK}:{port} within its timeout, though {listening}: "
                                    "a firewall rule drops the packets (the Firewall check names it)",
                       "the fix of the Firewall check below")
    if not result.connected:
        fix = RESTART if program == "vector" else f"sudo systemctl restart {program}  (why: sudo journalctl -u {program} -n 50)"
        if program == "vector" and not service_down:
            fix = "sudo journalctl -u vector -n 50  (Vector runs but does not listen: then sudo actvt install)"
        return Finding(check, FAIL, f"{label}: nothing answers on {LOOPBACK}:{port} ({result.error})", fix)
    if held and not any(item.is_program(program) for item in held):
        others = ", ".join(sorted({item.process or f"user {item.user}" for item in held}))
        return Finding(check, FAIL, f"{label}: held by {others}, not {program}",
                       f"stop {others}, then: sudo systemctl restart {program}")
    return Finding(check, PASS, f"{label}: {PROGRAMS.get(program, program)} answers on {LOOPBACK}:{port}")


OUTSIDE_TIMEOUT = 5  # seconds: a dropped SYN (a cloud's firewall) is told from an answer well within it


def outside_finding(result: websocket.Attempt, where: str, port: int, ours: Optional[bytes]) -> Finding:
    """The connection to the domain's address that is not on this host (``where``), made as the app
    makes it from outside; ``ours``: the certificate this host serves (DER). From the server itself
    the way out and back in is not always the app's (a NAT without hairpinning), so what fails here is
    a warning, said with its likely cause."""
    label = f"From the domain's address {where}"
    security = (f"open TCP {port} to the clients' addresses in the provider's firewall (security group, network "
                "firewall), and in any router that forwards it here")
    if result.timed_out:
        return Finding("outside", WARN, f"{label}: no answer within {OUTSIDE_TIMEOUT} s: the packets are dropped on "
                                        "the way, usually by the cloud provider's firewall or security group",
                       security)
    if not result.connected:
        return Finding("outside", WARN, f"{label}: {result.error}: the address does not forward port {port} to "
                                        "this server (a NAT or port forwarding rule missing, or the record names "
                                        "another machine)", security)
    if result.peer_cert is None:
        return Finding("outside", WARN, f"{label}: a connection, but no TLS answer ({result.error}): something "
                                        "other than this server answers there", security)
    if ours is not None and result.peer_cert != ours:
        return Finding("outside", WARN, f"{label}: answers with another certificate than this server's: the DNS "
                                        "record names another machine",
                       "point the A (or AAAA) record at this server's public address")
    return Finding("outside", PASS, f"{label}: reaches this server (it serves the same certificate)")


def client_for_check(install, now) -> Optional[Tuple[str, bytes, bytes]]:
    """A current client certificate of this server's CA whose key is here too: (name, certificate, key),
    the first client (install.state) first."""
    files = install.facts.files
    try:
        ca = mtls.load_ca(files, now)
    except ActvtError:
        return None
    if ca is None:
        return None
    index = mtls.load_index(files)
    mtls.sync_index(index, files, ca)  # in memory only
    first = install.state.get("mtls_client_cn")
    live = {item["name"] for item in mtls.active_entries(index, ca, now)}
    for name in sorted(live, key=lambda name: (name != first, name)):
        if paths.client_key(name) in files and mtls.usable(files, name, ca):
            cert = pki.load_cert(files[paths.client_cert(name)])
            if cert.not_valid_after_utc > now and any(item["fingerprint_sha256"] == pki.fingerprint(cert)
                                                      for item in mtls.active(index, name, ca)):
                return name, files[paths.client_cert(name)], files[paths.client_key(name)]
    return None


def connection_findings(install, root: Root, environ, now, address: Optional[str], local=None,
                        reach=websocket.attempt) -> List[Finding]:
    """DNS, the service, then the app's connection made over ``address`` (the domain as SNI and Host;
    None under --root: not tried), and over each of the domain's addresses that is not this host's
    (``local`` tells; ``reach`` connects there)."""
    cfg, facts, state = install.config, install.facts, install.state
    domain, port = cfg.domain, int(cfg.vector_port)
    found = [dns_finding(domain, facts.domain_addresses, local)]
    service = status._service(root)
    found += service_findings(service)
    down = service["active"] not in (None, "active")
    if address is None:
        return found + [Finding("connection", SKIP, "Connection: not tried (--root)")]
    proxy = install.decisions.mode == "proxy"
    mtls_on = state.get("mtls") == "enabled"
    client = client_for_check(install, now) if mtls_on and not install.trust_only else None
    cert_pem, key_pem = (client[1], client[2]) if client else (None, None)
    front_port, path = (443, "/actvt") if proxy else (port, "/")
    where = f"{'https' if proxy else 'wss'}://{address}:{front_port}{path}"
    served = websocket.attempt(address, front_port, domain, path, websocket.context(cert_pem, key_pem))
    front = (install.decisions.front or registry.FRONTS[0]) if proxy else None
    # the front's program (and unit), as Facts.web_server() names the process: apache2 for apache
    program = next((name for name, server in WEB_SERVERS.items() if server == front.name), front.name) if front else "vector"
    found.append(port_finding("port", served, front_port, facts.listeners, program, down))
    if served.connected:
        for outside in foreign_addresses(facts.domain_addresses, local):
            shown = f"[{outside}]" if ":" in outside else outside
            result = reach(outside, front_port, domain, path, websocket.context(cert_pem, key_pem),
                           timeout=OUTSIDE_TIMEOUT)
            found.append(outside_finding(result, f"{shown}:{front_port}", front_port, served.peer_cert))
    if not served.connected:
        return found + [Finding("connection", SKIP, f"Connection: not tried further (no answer on port {front_port})")]
    trusted = websocket.attempt(address, front_port, domain, path,
                                websocket.context(cert_pem, key_pem, verify=tls_context(environ)))
    source = paths.fullchain(domain) if proxy else paths.SERVER_CERT
    found.append(certificate_finding(served, trusted, facts.files.get(source), source, domain, where,
                                     front.name if front else "Vector", now))
    fix = RESTART if down else \
        RESTART_VECTOR + "  (it loads its certificates only at start; if that is not it: sudo actvt install)"
    if not mtls_on:
        found.append(metrics_finding("metrics", served, "Metrics (mTLS off)", where, fix))
    elif install.trust_only:
        found.append(Finding("metrics", SKIP, "Metrics with a client certificate: not tried: this server trusts a CA "
                                              "kept elsewhere (ACTVT_MTLS_CA_FILE) and holds no client key; try a "
                                              "bundle of the CA folder from the app"))
    elif client is None:
        found.append(Finding("metrics", WARN, "Metrics with a client certificate: not tried: no current client "
                                              "certificate with its key on this server", "sudo actvt client issue NAME"))
    else:
        found.append(metrics_finding("metrics", served, f"Metrics with {client[0]}'s certificate", where, fix))
    if mtls_on:
        bare = websocket.attempt(address, front_port, domain, path, websocket.context())
        found.append(refused_finding(bare, front, where))
    if proxy:  # the hop from the front to Vector on 127.0.0.1, with the front's own identity under mTLS
        identity = (facts.files.get(paths.PROXY_CERT), facts.files.get(paths.PROXY_KEY)) if mtls_on else (None, None)
        hop = websocket.attempt(address, port, domain, "/", websocket.context(*identity))
        hop_where = f"wss://{address}:{port}/"
        found.append(port_finding("port.upstream", hop, port, facts.listeners, "vector", down))
        if hop.connected:
            found.append(metrics_finding("metrics.upstream", hop, f"Vector behind {front.name}"
                                         + (f" (with {front.name}'s own identity)" if mtls_on else ""), hop_where, fix))
    return found


# --- the files, as the install's plan gives them -----------------------------------------------------


def file_findings(install, root: Root, ctx, owners: Optional[bool] = None) -> List[Finding]:
    """Every file and folder the install's plan writes that exists has the mode (and, on the host as
    root, the owner: ``owners``) the plan gives it. A client bundle's owner is whoever ran sudo to make
    it (docs/mtls.md), so only its mode and group are compared."""
    try:
        plan = registry.build_plan(status.placeholder_email(install.config), install.facts, ctx, install.decisions)
    except ActvtError as exc:
        return [Finding("files", FAIL, f"Files: cannot tell: {str(exc).splitlines()[0]}", "sudo actvt install")]
    tree = Tree(root)
    owners = root.is_host and os.geteuid() == 0 if owners is None else owners
    bundles = {paths.client_bundle(name) for name in mtls.existing_clients(install.facts.files)}
    found, checked, seen = [], 0, set()
    for action in plan.actions:
        if not isinstance(action, (File, Copy, Directory)) or action.path in seen:
            continue
        seen.add(action.path)
        try:
            st = tree.lstat(action.path)
        except ActvtError as exc:
            found.append(Finding("files", FAIL, f"Files: {exc}", "sudo actvt install"))
            continue
        if st is None:
            continue  # a re-run would make it: `actvt status` lists what a re-run would change
        if action.mode is None:
            continue  # a file of the system's the installer edits and leaves as it is (rules.v4)
        folder = isinstance(action, Directory)
        if (stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)) is False:
            found.append(Finding("files", FAIL, f"Files: {action.path} is a {kind_of(st.st_mode)}, not a "
                                                f"{'folder' if folder else 'regular file'}", "sudo actvt install"))
            continue
        checked += 1
        mode = stat.S_IMODE(st.st_mode)
        owner, group = owner_names(st)
        want_mode, want_group = wanted_mode_group(action, mode, group)  # a stricter defaults file is kept
        want_owner = owner if action.path in bundles else action.owner
        wrong_owner = owners and (owner, group) != (want_owner, want_group)
        if mode == want_mode and not wrong_owner:
            continue
        why = " (a private key readable by more users than it should be)" if action.sensitive and mode & ~want_mode else ""
        fixes = []
        if wrong_owner:
            fixes.append(f"sudo chown {want_owner}:{want_group} {action.path}")
        if mode != want_mode:
            fixes.append(f"sudo chmod {want_mode:04o} {action.path}")
        have = f"{mode:04o} {owner}:{group}" if owners else f"{mode:04o}"
        want = f"{want_mode:04o} {want_owner}:{want_group}" if owners else f"{want_mode:04o}"
        found.append(Finding("files", FAIL, f"Files: {action.path} is {have}; the installer makes it {want}{why}",
                             " && ".join(fixes)))
    if not found:
        found.append(Finding("files", PASS, f"Files: {checked} files and folders have the modes "
                                            + ("and owners " if owners else "") + "the installer gives them"
                                            + ("" if owners else " (owners not compared under --root)")))
    return found


# --- the command ---------------------------------------------------------------------------------


def report(root: Root, environ, address: Optional[str] = None, lookup: Optional[Callable] = None,
           local=None, reach=websocket.attempt) -> Optional[dict]:
    """Every finding (None: nothing is installed). ``address``: where the connection is tried (this
    host's 127.0.0.1; under --root none). Tests inject ``lookup`` (domain -> its addresses), ``local``
    (an address is this host's) and ``reach`` (the connection to an address that is not)."""
    address = address or (LOOPBACK if root.is_host else None)
    install = status.read_install(root, environ, extra_reads=registry.check_reads,
                                  extra_probes=registry.check_probes(), resolve=True)
    if install is None:
        return None
    if lookup is not None:
        install = dataclasses.replace(install, facts=dataclasses.replace(
            install.facts, domain_addresses=tuple(lookup(install.config.domain))))
    now = datetime.datetime.now(datetime.timezone.utc)
    ctx = status.context()
    cfg, state = install.config, install.state
    found = connection_findings(install, root, environ, now, address, local, reach)
    found += file_findings(install, root, ctx)
    found += registry.findings(cfg, install.facts, install.decisions, ctx)
    found += status.lifetime_findings(status.certificates(install.facts, now), install)
    if state.get("mtls") != "enabled":
        mtls_mode = "off"
    elif install.trust_only:
        mtls_mode = "trusted"
    else:
        mtls_mode = "own-ca"
    counts = {level: sum(1 for item in found if item.level == level) for level in (PASS, WARN, FAIL, SKIP)}
    return {"installed": True, "domain": cfg.domain, "mode": install.decisions.mode, "mtls": mtls_mode,
            "mtls_ca_file": state.get("mtls_ca_file"), "url": registry.connection_url(cfg, install.decisions),
            "checks": [item._asdict() for item in found],
            "passed": counts[PASS], "warnings": counts[WARN], "failed": counts[FAIL], "skipped": counts[SKIP]}


MTLS_WORDS = {"off": "no mTLS", "own-ca": "mTLS with this server's CA", "trusted": "mTLS with a CA kept elsewhere"}


def show(result: dict, out) -> None:
    out.plain(f"actvt doctor: {result['domain']}, {result['mode']}, {MTLS_WORDS[result['mtls']]} ({result['url']})")
    if result["mtls"] == "trusted":
        out.plain(f"  This server trusts {result['mtls_ca_file']} and holds no CA or client key: client certificates "
                  "are issued, renewed and listed where that CA is (actvt client list --ca-dir DIR).")
    for item in result["checks"]:
        status.show_finding(item, out)
    total = len(result["checks"])
    out.plain(f"{total} checks: {result['passed']} passed, {result['warnings']} warning(s), {result['failed']} "
              f"failed, {result['skipped']} not checked")


def cmd_doctor(args, environ, out, stdout) -> int:
    root = sequence.root_of(args)
    sequence.need_root(root, False, "must run as root: use `sudo actvt doctor` (it reads the keys it checks with)")
    result = report(root, environ)
    if result is None:
        if args.json:
            sequence.write_json(stdout, {"installed": False})
        else:
            out.plain("actvt is not installed on this server (no /var/lib/actvt/install.state).")
        return NOT_INSTALLED
    if args.json:
        sequence.write_json(stdout, result)
    else:
        show(result, out)
    return EXIT_FAIL if result["failed"] else EXIT_OK
