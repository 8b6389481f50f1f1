"""Puts the compiled libraries for this machine on ``sys.path``.

The zipapp carries, under ``site-packages/_actvt_platform/<arch>/`` for x86_64 and aarch64,
cryptography's abi3 build and cffi's C extension for each CPython from 3.9 to 3.14 (the file names
tell the minors apart). Only this machine's folder is used. In a development install the folder does
not exist and the environment's own packages are used.
"""

import os
import sys

FOLDER = "_actvt_platform"
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def extension_name(arch: str, version=sys.version_info) -> str:
    return f"_cffi_backend.cpython-{version[0]}{version[1]}-{arch}-linux-gnu.so"


def activate(site_packages: str, machine: str = "", version=sys.version_info) -> None:
    base = os.path.join(site_packages, FOLDER)
    if not os.path.isdir(base):
        return
    machine = machine or os.uname().machine
    arch = ARCHES.get(machine)
    folder = os.path.join(base, arch) if arch else ""
    if not arch or not os.path.isfile(os.path.join(folder, extension_name(arch, version))):
        sys.stderr.write(
            "actvt-installer: this file has no compiled libraries for %s with Python %d.%d; "
            "supported: Linux x86_64 and aarch64 with CPython 3.9 to 3.14\n" % (machine, version[0], version[1])
        )
        sys.exit(1)
    if folder not in sys.path:
        sys.path.insert(0, folder)
