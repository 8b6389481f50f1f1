"""The launcher's own checks (platform, cache folders), without a build: the built file itself is
tested in tests/integration/test_launcher_build.py."""

import pytest

from installer.launcher import launcher


@pytest.mark.parametrize("kwargs,message", [
    ({"machine": "riscv64"}, "supports x86_64 and aarch64 (this machine is riscv64)"),
    ({"version": (3, 8)}, "needs Python 3.9 to 3.14 (this is 3.8)"),
    ({"version": (3, 15)}, "needs Python 3.9 to 3.14 (this is 3.15)"),
    ({"libc": "glibc 2.17"}, "needs glibc 2.28 or newer (found: glibc 2.17)"),
    ({"libc": ""}, "needs glibc 2.28 or newer (found: no glibc)"),
    ({"system": "darwin"}, "runs on Linux servers only (this is darwin)"),
    ({"implementation": "pypy"}, "needs CPython (this is pypy)"),
])
def test_unsupported_platforms_get_a_clear_message(capsys, kwargs, message):
    args = dict(machine="x86_64", version=(3, 11), libc="glibc 2.36", system="linux", implementation="cpython")
    args.update(kwargs)
    with pytest.raises(SystemExit):
        launcher.check_platform(**args)
    assert capsys.readouterr().err == f"actvt-installer: {message}\n"


def test_supported_platforms():
    for machine, arch in (("x86_64", "x86_64"), ("aarch64", "aarch64"), ("arm64", "aarch64")):
        for version in ((3, 9), (3, 14)):
            assert launcher.check_platform(machine, version, "glibc 2.28", "linux", "cpython") == arch
