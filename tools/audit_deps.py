"""Known-vulnerability check of the installed (pinned) dependencies with pip-audit.

    python tools/audit_deps.py [--require]

pip-audit asks a vulnerability service (PyPI's JSON API by default) about every package
installed in this virtualenv — the pinned runtime and development requirements and everything
they pull in. It needs network access to that service; there is no offline database.

Exit status: 1 when any installed package has a known vulnerability (each is printed with its
fix version); 0 when none has. When the service cannot be reached (every package skipped as
"could not be audited") it says so loudly and exits 0, or 2 with `--require` (use that in a CI
that is known to reach PyPI's JSON API).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    require = "--require" in argv
    pip_audit = Path(sys.executable).with_name("pip-audit")
    result = subprocess.run(  # noqa: S603 - our own virtualenv's pip-audit, fixed arguments
        [str(pip_audit), "--progress-spinner", "off", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(result.stderr.strip() or "pip-audit gave no report", file=sys.stderr)
        return 2 if require else 0
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    if vulnerable:
        return 1
    audited = len(dependencies) - len(skipped)
    if dependencies and audited == 0:
        print(
            f"pip-audit: NOT AUDITED — the vulnerability service was not reachable "
            f"({len(skipped)} packages skipped). Run `make audit-deps` where PyPI's JSON API "
            "is reachable.",
            file=sys.stderr,
        )
        return 2 if require else 0
    print(f"pip-audit: {audited} packages audited, no known vulnerability", end="")
    print(f" ({len(skipped)} skipped)" if skipped else "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
