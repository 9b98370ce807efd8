"""contrib/demo/run.sh installs only its own package list, starts no
system service while installing (policy-rc.d in place), and disables at
boot every unit that the packages it installed enabled.

Installing and removing slapd here would change the machine the suite
runs on (and CI has it installed already), so the install path is checked
through the script's own pieces: the order of its steps, and its unit
pattern against the unit files the listed packages really ship."""

import re
import subprocess
from pathlib import Path

from conftest import SRCDIR

RUN = SRCDIR / "contrib" / "demo" / "run.sh"
PACKAGES = SRCDIR / "contrib" / "demo" / "packages"


def demo_packages():
    return [line.strip() for line in PACKAGES.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_demo_installs_only_its_own_list():
    text = RUN.read_text()
    assert "install-packages" not in text, \
        "the demo uses the test suite's package list"
    pkgs = demo_packages()
    for p in ("slapd", "ldap-utils", "python3-aiosmtpd", "gcc"):
        assert p in pkgs, f"{p} missing from {PACKAGES}"
    for p in ("haproxy", "fail2ban", "libpam-wrapper", "python3-pytest"):
        assert p not in pkgs, f"{p} is for the tests, not the demo"


def test_install_runs_under_policy_rc_d_and_disables_units():
    body = RUN.read_text()
    fn = body[body.index("install_packages() {"):]
    fn = fn[:fn.index("\n}\n")]
    steps = ["exit 101", "apt-get install", "disable_units",
             'rm -f "$policy"']
    at = [fn.find(s) for s in steps]
    assert -1 not in at, f"install_packages lacks a step: {dict(zip(steps, at))}"
    assert at == sorted(at), \
        f"install_packages steps out of order, got {dict(zip(steps, at))}"


def patterns():
    text = RUN.read_text()
    units = re.search(r"grep -E '(\^/\(usr/\)\?lib/systemd/system/[^']+)'",
                      text)
    sysv = re.search(r"grep -E '(\^/etc/init[^']+)'", text)
    assert units and sysv, "disable_units lacks its unit or init.d pattern"
    return [re.compile(m.group(1).replace("\\\\", "\\"))
            for m in (units, sysv)]


def test_every_boot_enabled_unit_of_the_list_is_caught():
    """Each unit file with an [Install] section and each SysV init script
    that a listed package ships (where it is installed here) matches one
    of disable_units' patterns."""
    pats = patterns()
    seen = []
    for pkg in demo_packages():
        r = subprocess.run(["dpkg", "-L", pkg], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            continue
        for path in r.stdout.splitlines():
            p = Path(path)
            if not p.is_file():
                continue
            unit = "/systemd/system/" in path and "[Install]" in \
                p.read_text(errors="replace")
            if not unit and not path.startswith("/etc/init.d/"):
                continue
            seen.append(path)
            assert any(x.search(path) for x in pats), \
                f"{pkg}: {path} would stay enabled at boot"
    # Debian 12's slapd ships /etc/init.d/slapd (CI installs it).
    assert "/etc/init.d/slapd" in seen or not Path(
        "/usr/sbin/slapd").exists(), f"slapd's init script not seen: {seen}"


def test_every_library_configure_needs_is_installed():
    """What ./configure refuses to build without ("Debian: PKG" in its
    error messages) is in the demo's list, in CI's, and in the Debian
    package's Build-Depends: a fresh machine builds from each."""
    text = (SRCDIR / "configure.ac").read_text()
    need = set(re.findall(r"Debian: ([a-z0-9.+-]+)", text))
    need.discard("clang")           # --enable-fuzzing only
    assert {"libseccomp-dev", "libhiredis-dev", "libcurl4-openssl-dev",
            "libjson-c-dev"} <= need, need
    ci = set(re.findall(r"[a-z0-9][a-z0-9.+-]+",
                        (SRCDIR / ".ci" / "install-packages").read_text()))
    control = (SRCDIR / "debian" / "control").read_text()
    build_deps = set(re.findall(r"^\s*([a-z0-9][a-z0-9.+-]+)",
                                control.split("Build-Depends:")[1]
                                .split("Standards-Version")[0], re.M))
    build_deps |= set(re.findall(r"Build-Depends: ([a-z0-9.+-]+)", control))
    # libldap2-dev is Debian 12's transitional name for libldap-dev.
    alias = {"libldap-dev": {"libldap-dev", "libldap2-dev"}}
    for pkg in sorted(need):
        names = alias.get(pkg, {pkg})
        for where, have in (("contrib/demo/packages", demo_packages()),
                            (".ci/install-packages", ci),
                            ("debian/control Build-Depends", build_deps)):
            assert names & set(have), f"{pkg} missing from {where}"
