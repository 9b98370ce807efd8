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
