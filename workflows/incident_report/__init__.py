"""incident_report: a case's full investigation report (summary, impacted hosts and users, validated
ATT&CK techniques by tactic, remediation and next steps), citations checked, approved like a note."""

from socflow.sdk import WorkflowSpec
from workflows.incident_report.graph import build

SPEC = WorkflowSpec(
    name="incident_report",
    version="1.0.0",
    description="Write a case's incident report: summary, impacted hosts and users, ATT&CK techniques by "
    "tactic, remediation and next steps; citations checked; analyst approval.",
    build=build,
    queue="workflows",
    output_keys=("outcome", "tactics"),
)

__all__ = ["SPEC"]
