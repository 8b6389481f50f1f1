"""A fleet on the harness: an Ansible controller (Debian's ansible-core, a container on the internal
network) and servers reached over SSH, each answering to its own domain; the repository's collection
actvt.installer (contrib/ansible: its role, module and playbooks) runs as users run it. Used by test_fleet_e2e.py and bench/fleet.py.
"""
import hashlib
import io
import json
import os
import re
import shlex
import tarfile

import harness as H
from installer import __version__

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTRIB = os.path.join(REPO, "contrib", "ansible")
WORK = "/root/ansible"
CA_DIR = "/root/fleet-ca"
PYZ = "/root/install.pyz"


def _tar(folder):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buf.getvalue()


class Fleet:
    """``servers``: name -> (domain, mode). ``start()`` makes the controller and the servers."""

    def __init__(self, harness, servers, pyz_path, suite="bookworm"):
        self.harness, self.servers, self.pyz_path, self.suite = harness, dict(servers), str(pyz_path), suite
        self.hosts = {}
        self.controller = None

    def start(self):
        h = self.harness
        self.controller = h._start("controller", H.image_name("controller"), aliases=["controller"])
        c = self.controller
        c.sh("ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519")
        public = c.read_file("/root/.ssh/id_ed25519.pub")
        for name, (domain, _mode) in self.servers.items():
            host = h.server("server-ssh", self.suite, domain=domain)
            host.put_file("/root/.ssh/authorized_keys", public, mode=0o600)
            host.trust_acme_ca()
            host.sh("systemctl start ssh")
            self.hosts[name] = host
        c.exec(["mkdir", "-p", WORK])
        c.container.put_archive(WORK, _tar(CONTRIB))
        with open(self.pyz_path, "rb") as handle:
            data = handle.read()
        c.put_file(PYZ, data, mode=0o644)
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.write_inventory()
        return self

    def write_inventory(self, extra=None):
        """A YAML inventory: the harness's mirror and Pebble through actvt_environment. Controller paths are
        written with ~ as in contrib/ansible/inventory.example.ini (the controller runs as root)."""
        def home(path):
            return "~" + path[len("/root"):]
        hosts = {}
        for name, (domain, mode) in self.servers.items():
            values = {"ansible_host": domain, "actvt_domain": domain, "actvt_mode": mode}
            if mode == "proxy":
                values["actvt_fleet_crl_file"] = home(CA_DIR + "/crl.pem")
            hosts[name] = values
        variables = {
            "ansible_user": "root", "ansible_become": False, "ansible_python_interpreter": "/usr/bin/python3",
            "actvt_email": H.EMAIL, "actvt_installer_src": home(PYZ), "actvt_installer_sha256": self.sha256,
            "actvt_fleet_ca_file": home(CA_DIR + "/trust.pem"), "actvt_ca_dir": home(CA_DIR),
            "actvt_environment": dict(H.MIRROR_ENV),
        }
        variables.update(extra or {})
        # localhost (the controller) holds the CA folder: rotate_ca.yml runs `actvt ca` there
        inventory = {"all": {"vars": variables, "hosts": {"localhost": {"ansible_connection": "local"}},
                             "children": {"actvt_servers": {"hosts": hosts}}}}
        self.controller.put_file(WORK + "/inventory.json", json.dumps(inventory).encode())

    def actvt(self, *args):
        """install.pyz on the controller (the CA holder): returns Result."""
        return self.controller.exec(["python3", "-I", PYZ] + list(args), timeout=300)

    def install_collection(self):
        """``ansible-galaxy collection build`` of the checkout and ``collection install`` of its tarball, as the
        collection's README shows them, on the controller (which has no route to Galaxy): the Result."""
        tarball = "/root/dist/actvt-installer-%s.tar.gz" % __version__  # galaxy.yml's version is the product's
        requirements = "collections:\n  - name: %s\n    type: file\n" % tarball  # the README's requirements.yml
        self.controller.put_file("/root/requirements.yml", requirements.encode())
        return self.controller.sh("cd %s && ansible-galaxy collection build . --output-path /root/dist"
                                  " && ansible-galaxy collection install %s"
                                  " && ansible-galaxy collection install --force -r /root/requirements.yml" % (WORK, tarball),
                                  check=False)

    def playbook(self, playbook="fleet.yml", *args, forks=3):
        """ansible-playbook as a user runs it (the default output): (Result, {host: PLAY RECAP counts}).
        ``playbook``: a file of playbooks/ (run by path from the checkout), or an installed collection's
        playbook by name (``actvt.installer.fleet``)."""
        env = {"ANSIBLE_HOST_KEY_CHECKING": "False",
               "ANSIBLE_FORKS": str(forks), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
               "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null"}
        # by path from the checkout (playbooks/collections links the collection beside them)
        path = playbook if playbook.startswith("actvt.installer.") else WORK + "/playbooks/" + playbook
        argv = ["ansible-playbook", "-i", WORK + "/inventory.json", path] + list(args)
        r = self.controller.exec(argv, env=env, workdir="/root" if path == playbook else WORK, timeout=1200)
        return r, recap(r.out)

    def bundle(self, name):
        return self.controller.read_file("%s/%s-bundle.tar.gz" % (CA_DIR, name))

    def url(self, name):
        domain, mode = self.servers[name]
        return "wss://%s/actvt" % domain if mode == "proxy" else "wss://%s:4096" % domain


def recap(text):
    """{host: {"ok": n, "changed": n, "failed": n, ...}} from the PLAY RECAP of ansible-playbook's output."""
    found = {}
    for line in text.split("PLAY RECAP", 1)[-1].splitlines():
        host, sep, counts = line.partition(" : ")
        if sep:
            found[host.strip()] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
    return found


def shell(argv):
    return " ".join(shlex.quote(a) for a in argv)
