"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test downloads get-pip.py from a host this machine cannot reach. This
script does the same job with what Python ships: ``ensurepip`` puts a pip into
the empty virtual environment, then pip installs the versions ansible-test asked
for from the package index. ``tests/sanity/run.sh`` copies it into ansible-test's
cache under the name ansible-test looks for.

ansible-test runs pip with a filtered environment, which loses the machine's
CA bundle setting (PIP_CERT and friends; pip's config-file ``cert`` was not
enough here). A ``.pth`` line in the new environment puts the bundle back into
``PIP_CERT`` for every later pip call in it, so they verify TLS the same way.
"""
import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
BUNDLE_VARS = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def ca_bundle():
    for var in BUNDLE_VARS:
        if os.environ.get(var) and os.path.isfile(os.environ[var]):
            return os.environ[var]
    return SYSTEM_BUNDLE if os.path.isfile(SYSTEM_BUNDLE) else None


def main():
    bundle = ca_bundle()
    if bundle:
        os.environ["PIP_CERT"] = bundle
    ensurepip.bootstrap(upgrade=True)
    if bundle:
        site = subprocess.check_output([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        with open(os.path.join(site.decode().strip(), "hoptrace_pip_cert.pth"), "w") as pth:
            pth.write("import os; os.environ.setdefault('PIP_CERT', %r)\n" % bundle)
    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))


if __name__ == "__main__":
    main()
