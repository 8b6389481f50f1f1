#!/usr/bin/python
# Copyright: actvt-installer maintainers
# MIT License (see the repository's LICENSE)
# The module of the collection actvt.installer (contrib/ansible): runs actvt-installer on the target.
"""Run install.pyz with ACTVT_* variables and report what its JSON summary says.

The installer decides everything (its plan is the same for a dry run and a real run); this module only
maps it to Ansible: ``changed`` is the summary's count of changed actions (``would_change`` in check
mode, where the installer runs ``--dry-run`` and changes nothing), ``--diff`` shows the plan's file
diffs (secrets are never shown), and a failure reports the installer's own message.

What the result holds is what ``ansible-playbook -v`` prints: the installer's whole JSON summary (every
action, its diff) only under ``--diff``, where the user asked to see the files. ``environment`` is
``no_log`` (HTTPS_PROXY may carry a password): Ansible then masks its values wherever they appear in the
result, so the role passes the ``ACTVT_*`` settings (the domain, the port: what the result and the
diffs name) in ``variables``, which is shown.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: actvt_install
short_description: Install or update an Actvt server with actvt-installer
version_added: "1.1.0"
description:
  - Runs C(install.pyz install --yes --json) on the target with C(ACTVT_*) variables, and reports what the
    installer's JSON summary says. The installer decides every change; C(changed) is its count of changed actions.
  - In check mode the installer runs C(--dry-run) and changes nothing; I(staged) lets it plan with the files a
    real run would copy (the role stages them in a temporary folder).
  - With C(--diff), the result holds the installer's whole summary and its file diffs (secrets are never shown).
author:
  - actvt-installer maintainers (@actvt)
options:
  installer:
    description:
      - Path on the target of C(install.pyz) (the role copies it there, checked by sha256 or signature on the controller).
    type: path
    required: true
  installer_sha256:
    description:
      - The sha256 the file at I(installer) must have; checked on the target before it runs (in check mode too).
      - Empty means not checked here.
    type: str
    default: ""
  staged:
    description:
      - "Check mode only. Server paths mapped to staged copies, e.g. C({'/etc/actvt/fleet-ca.pem': '/tmp/actvt-check-x/fleet-ca.pem'}):
        the dry run plans as if each path held its staged copy (C(install.pyz --staged-file PATH=STAGED))."
      - Ignored in a real run, which reads the files where they are.
    type: dict
    default: {}
  variables:
    description:
      - C(ACTVT_*) variables for the installer (shown in Ansible's output, like the result).
    type: dict
    default: {}
  environment:
    description:
      - Other environment of the installer (e.g. C(REQUESTS_CA_BUNDLE), C(HTTPS_PROXY) with a password).
      - C(no_log), so its values are masked wherever they appear in Ansible's output.
    type: dict
    default: {}
  email:
    description:
      - C(ACTVT_EMAIL), kept out of Ansible's output and logs (the installer masks it too).
    type: str
  python:
    description:
      - The Python that runs the installer.
    type: str
    default: python3
notes:
  - The installer needs root (C(become)); it runs on Debian, Ubuntu, RHEL-like systems and Amazon Linux.
attributes:
  check_mode:
    support: full
    description: The installer's C(--dry-run); nothing is changed.
  diff_mode:
    support: full
    description: The diffs of the files the installer would write.
  platform:
    support: full
    platforms: posix
    description: Linux servers.
"""

EXAMPLES = r"""
- name: Actvt, standalone, with mTLS trusting a CA kept on the controller (copied to /etc/actvt/fleet-ca.pem)
  become: true
  actvt.installer.actvt_install:
    installer: /var/cache/actvt/install.pyz
    installer_sha256: "{{ actvt_installer_sha256 }}"
    email: ops@example.com
    variables:
      ACTVT_DOMAIN: monitor.example.com
      ACTVT_INSTALL_MODE: standalone
      ACTVT_MTLS_CA_FILE: /etc/actvt/fleet-ca.pem
  register: actvt

- name: Behind an HTTP proxy with a password (masked in every output)
  become: true
  actvt.installer.actvt_install:
    installer: /var/cache/actvt/install.pyz
    email: ops@example.com
    variables:
      ACTVT_DOMAIN: web.example.com
      ACTVT_INSTALL_MODE: proxy
    environment:
      HTTPS_PROXY: "http://user:{{ proxy_password }}@proxy.internal:3128"
"""

RETURN = r"""
url:
  description: The URL the Actvt app connects to.
  returned: success
  type: str
  sample: wss://monitor.example.com:4096
mode:
  description: The installation mode the installer chose or was given.
  returned: success
  type: str
  sample: standalone
mtls:
  description: Whether clients need a certificate (mutual TLS).
  returned: success
  type: bool
  sample: true
notes:
  description: The installer's notes for the operator (e.g. what to hand out).
  returned: success
  type: list
  elements: str
  sample: []
changes:
  description: One line per action that changed (or, in check mode, would change), with why.
  returned: success
  type: list
  elements: str
  sample: ["file /etc/vector/vector.toml: Vector's configuration"]
summary:
  description: The installer's whole JSON summary (every action and its diff). Only with C(--diff).
  returned: success and failure, with --diff
  type: dict
  sample: {}
rc:
  description: The installer's exit status.
  returned: failure
  type: int
  sample: 2
stderr_lines:
  description: The last lines the installer printed on stderr.
  returned: failure
  type: list
  elements: str
  sample: ["ACTVT_INSTALL_MODE: 'prxy'; allowed: auto, standalone, proxy"]
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            installer=dict(type="path", required=True),
            installer_sha256=dict(type="str", default=""),
            staged=dict(type="dict", default={}),
            variables=dict(type="dict", default={}),
            environment=dict(type="dict", default={}, no_log=True),  # may hold proxy credentials
            email=dict(type="str", no_log=True),  # never logged in full
            python=dict(type="str", default="python3"),
        ),
        supports_check_mode=True,
    )
    installer = module.params["installer"]
    if not os.path.isfile(installer):
        module.fail_json(msg="%s does not exist (the role copies install.pyz there first, or stages it in check mode)"
                         % installer)
    expected = module.params["installer_sha256"].lower()
    if expected:  # the file that runs is the one checked on the controller (staged or copied)
        found = module.sha256(installer)
        if found != expected:
            module.fail_json(msg="%s has sha256 %s, expected %s: not run" % (installer, found, expected))
    argv = [module.params["python"], "-I", installer, "install", "--yes", "--json"]
    if module.check_mode:
        argv.append("--dry-run")
        for path, staged in sorted(module.params["staged"].items()):
            argv += ["--staged-file", "%s=%s" % (path, staged)]
    environ = {key: str(value) for key, value in module.params["environment"].items()}
    environ.update({key: str(value) for key, value in module.params["variables"].items()})
    if module.params["email"]:
        environ["ACTVT_EMAIL"] = module.params["email"]
    rc, out, err = module.run_command(argv, environ_update=environ)
    try:
        summary = json.loads(out)
    except ValueError:
        summary = None
    if rc != 0 or summary is None or summary.get("status") != "ok":
        lines = [line for line in err.strip().splitlines() if line.strip()]
        message = (summary or {}).get("error") or " | ".join(lines[-5:]) or f"exit status {rc}"
        module.fail_json(msg=message, rc=rc, stderr_lines=lines[-40:], **({"summary": summary} if module._diff else {}))
    count = summary["would_change"] if module.check_mode else summary["changed"]
    changed_word = "would change" if module.check_mode else "changed"
    result = dict(
        changed=bool(count),
        url=summary.get("url"),
        mode=summary.get("mode"),
        mtls=summary.get("mtls"),
        notes=summary.get("notes", []),
        changes=[f"{action['action']}: {action['why']}" for action in summary["actions"]
                 if action["status"] == changed_word],
    )
    if module._diff:  # the summary and its diffs only when asked for (they show files' lines)
        result["summary"] = summary
        result["diff"] = [{"before_header": action["target"], "after_header": action["target"], "prepared": action["diff"]}
                          for action in summary["actions"] if action["status"] == changed_word and action.get("diff")]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
