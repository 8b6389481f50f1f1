#!/usr/bin/env python3
"""Issuing 50 client certificates: our code (installer.concerns.pki, in process) versus the old guide's openssl
commands (genpkey, req, x509 -req: three processes per client), same CA, same key sizes, same
machine, same run. Also the ECDSA P-256 option's time.

    python3 bench/bench_issuance.py [--count 50]

Prints the figures and writes bench/results/issuance.json. Both sides write the .key and .crt
files; the CSR is made (and, for openssl, deleted) as in the old guide (docs/mtls.md).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import cryptography  # noqa: E402

from installer.concerns import pki  # noqa: E402


def write(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def ours(folder, ca_cert, ca_key, count, key_type):
    started = time.perf_counter()
    for i in range(count):
        name = f"{key_type}-{i:03d}"
        key, cert = pki.issue_client(ca_cert, ca_key, name, 365, key_type)
        write(os.path.join(folder, f"{name}.key"), pki.key_pem(key), 0o600)
        write(os.path.join(folder, f"{name}.crt"), pki.cert_pem(cert), 0o644)
    return time.perf_counter() - started


def seed(folder, count, algorithm=("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"), label="seed"):
    """The seed's Step 2, as written (with -extfile from a file instead of a bash process substitution)."""
    ext = os.path.join(folder, "ext.cnf")
    with open(ext, "w") as handle:
        handle.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    started = time.perf_counter()
    for i in range(count):
        name = f"clients/{label}-{i:03d}"
        run("genpkey", *algorithm, "-out", f"{name}.key")
        run("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={label}-{i:03d}/O=Actvt")
        run("x509", "-req", "-days", "365", "-sha256", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-extfile", "ext.cnf")
        os.chmod(os.path.join(folder, f"{name}.key"), 0o600)
        os.unlink(os.path.join(folder, f"{name}.csr"))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "issuance.json"))
    args = parser.parse_args()
    count = args.count
    with tempfile.TemporaryDirectory() as folder:
        os.mkdir(os.path.join(folder, "clients"))
        ca_key, ca_cert = pki.make_ca(3650)  # RSA 4096, as the old guide (docs/mtls.md)
        write(os.path.join(folder, "ca.key"), pki.key_pem(ca_key), 0o600)
        write(os.path.join(folder, "ca.crt"), pki.cert_pem(ca_cert), 0o644)
        ours_rsa = ours(os.path.join(folder, "clients"), ca_cert, ca_key, count, "rsa")
        seed_rsa = seed(folder, count)
        ours_ec = ours(os.path.join(folder, "clients"), ca_cert, ca_key, count, "ecdsa")
        seed_ec = seed(folder, count, ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"), "seed-ec")
        # every certificate verifies (ours strictly, the old guide's as that guide checks)
        clients = os.path.join(folder, "clients")
        mine = sorted(os.path.join(clients, n) for n in os.listdir(clients) if n.endswith(".crt") and not n.startswith("seed"))
        theirs = sorted(os.path.join(clients, n) for n in os.listdir(clients) if n.endswith(".crt") and n.startswith("seed"))
        strict = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile",
                                 os.path.join(folder, "ca.crt"), *mine], capture_output=True, text=True)
        plain = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(folder, "ca.crt"), *theirs],
                               capture_output=True, text=True)
        if strict.returncode or plain.returncode:
            sys.stderr.write(strict.stdout + strict.stderr + plain.stdout + plain.stderr)
            return 1
    openssl_version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    result = {
        "count": count,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "cryptography": cryptography.__version__, "openssl": openssl_version},
        "rsa2048": {"ours_seconds": round(ours_rsa, 3), "seed_openssl_seconds": round(seed_rsa, 3),
                    "ours_ms_per_cert": round(1000 * ours_rsa / count, 1),
                    "seed_ms_per_cert": round(1000 * seed_rsa / count, 1),
                    "ratio_seed_over_ours": round(seed_rsa / ours_rsa, 2)},
        "ecdsa_p256": {"ours_seconds": round(ours_ec, 3), "ours_ms_per_cert": round(1000 * ours_ec / count, 1),
                       "openssl_same_commands_seconds": round(seed_ec, 3),
                       "ratio_openssl_over_ours": round(seed_ec / ours_ec, 2)},
        "verified": {"ours_strict": len(mine), "seed_plain": len(theirs)},
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
    r, e = result["rsa2048"], result["ecdsa_p256"]
    print(f"{count} client certificates, RSA 2048 (CA RSA 4096), {result['machine']['platform']}")
    print(f"  ours (cryptography {cryptography.__version__}, in process): {r['ours_seconds']:.2f} s "
          f"({r['ours_ms_per_cert']} ms each)")
    print(f"  seed (openssl genpkey + req + x509 -req):  {r['seed_openssl_seconds']:.2f} s ({r['seed_ms_per_cert']} ms each)")
    print(f"  ratio seed/ours: {r['ratio_seed_over_ours']}x")
    print(f"  ECDSA P-256 option, ours: {e['ours_seconds']:.2f} s ({e['ours_ms_per_cert']} ms each); "
          f"the same openssl commands with EC keys: {e['openssl_same_commands_seconds']:.2f} s")
    print(f"  wrote {os.path.relpath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
