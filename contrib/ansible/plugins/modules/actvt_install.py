#!/usr/bin/python3
# Ansible module of the actvt role (contrib/ansible/roles/actvt): runs actvt-installer on the target.
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

DOCUMENTATION = r"""
module: actvt_install
short_description: Install or update an Actvt server with actvt-installer
options:
  installer:
    description: Path on the target of install.pyz (the role copies it there, checked by sha256).
    type: path
    required: true
  variables:
    description: ACTVT_* variables for the installer (shown in Ansible's output, like the result).
    type: dict
    default: {}
  environment:
    description: Other environment of the installer (e.g. REQUESTS_CA_BUNDLE, HTTPS_PROXY with a password);
      no_log, so its values are masked wherever they appear in Ansible's output.
    type: dict
    default: {}
  email:
    description: ACTVT_EMAIL, kept out of Ansible's output and logs (the installer masks it too).
    type: str
  python:
    description: The Python that runs the installer.
    type: str
    default: python3
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            installer=dict(type="path", required=True),
            variables=dict(type="dict", default={}),
            environment=dict(type="dict", default={}, no_log=True),  # may hold proxy credentials
            email=dict(type="str", no_log=True),  # never logged in full
            python=dict(type="str", default="python3"),
        ),
        supports_check_mode=True,
    )
    installer = module.params["installer"]
    if not os.path.isfile(installer):
        if module.check_mode:  # the copy task did not run in check mode: the first real run installs
            module.exit_json(changed=True, msg=f"{installer} is not on the host yet: a real run installs Actvt")
        module.fail_json(msg=f"{installer} does not exist (the role copies install.pyz there first)")
    argv = [module.params["python"], "-I", installer, "install", "--yes", "--json"]
    if module.check_mode:
        argv.append("--dry-run")
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
