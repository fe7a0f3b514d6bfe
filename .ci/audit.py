"""The dependency audit: pip-audit over the lock file, saying plainly what it could not audit.

    python .ci/audit.py requirements.lock [pip-audit options, e.g. -s osv]

Exit 0: every locked package was audited and none has a known vulnerability.
Exit 1: known vulnerabilities (listed). Exit 2: the audit did not happen for
some or all packages (the vulnerability service did not answer, or had no
record of them), so this run vouches for nothing about them.

Why a wrapper: pip-audit prints "No known vulnerabilities found" and exits 0
when its service answered for *none* of the packages (each one "skipped"),
which is the audit passing without having looked. `--strict` fails then, but
with the same exit code as a real finding; CI needs to tell the two apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FOUND, NOT_AUDITED = 1, 2


def main(argv: list[str]) -> int:
    if not argv or not Path(argv[0]).is_file():
        print("usage: audit.py LOCKFILE [pip-audit options]", file=sys.stderr)
        return NOT_AUDITED
    lock, extra = argv[0], argv[1:]
    # The lock has every package pinned with hashes: nothing to resolve, so no pip.
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        lock,
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
        *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        # No report at all: pip-audit stopped, typically unable to reach its service.
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"audit: NOT RUN: pip-audit stopped before auditing anything: {last}", file=sys.stderr)
        return NOT_AUDITED
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            print(f"audit: {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in: {fixed})")
    if skipped:  # one line: usually every package, for one reason
        names = ", ".join(f"{d['name']}" for d in skipped)
        print(f"audit: not audited: {names} (the first one: {skipped[0]['skip_reason']})", file=sys.stderr)
    audited = len(dependencies) - len(skipped)
    print(
        f"audit: {audited} of {len(dependencies)} locked packages audited, "
        f"{sum(len(d['vulns']) for d in vulnerable)} known vulnerabilities in {len(vulnerable)}"
    )
    if vulnerable:
        return FOUND
    if skipped or not dependencies:
        print(f"audit: NOT RUN for {len(skipped)} packages: no vulnerability data for them", file=sys.stderr)
        return NOT_AUDITED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
