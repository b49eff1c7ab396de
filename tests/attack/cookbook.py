"""The three detection plays from the security model vendor's cookbook, verbatim (issue 5)."""

BRUTE_FORCE = (
    "Monitor Multiple Failed Login Attempts — Detect brute-force attacks on user accounts by tracking "
    "repeated login failures."
)
POWERSHELL = (
    "Alert on PowerShell Script Execution — Detect execution of potentially malicious PowerShell scripts "
    "by adversaries."
)
LSASS = (
    "Dumping LSASS credentials — Alert when attempts are made to dump credentials from LSASS process memory"
)
