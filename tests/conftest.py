import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest

#: Private keys made once per test session, by type and size. Each test gets them in the same order
#: (distinct keys within a test), so RSA key generation is not repeated in every test.
_KEYS = {}


@pytest.fixture
def small_ca_keys(monkeypatch):
    """CA keys of 2048 bits instead of pki.CA_RSA_BITS (4096), for the modules that make CAs without
    checking their size (``pytestmark = pytest.mark.usefixtures("small_ca_keys")``)."""
    from installer.concerns import pki

    monkeypatch.setattr(pki, "CA_RSA_BITS", 2048)


@pytest.fixture(autouse=True)
def reused_keys(monkeypatch):
    from installer.concerns import pki

    made = pki.new_key
    handed = {}

    def new_key(key_type="rsa", bits=pki.CLIENT_RSA_BITS):
        kind = (key_type, bits if key_type == "rsa" else 0)
        number = handed.get(kind, 0)
        handed[kind] = number + 1
        pool = _KEYS.setdefault(kind, [])
        while len(pool) <= number:
            pool.append(made(key_type, bits))
        return pool[number]

    monkeypatch.setattr(pki, "new_key", new_key)
