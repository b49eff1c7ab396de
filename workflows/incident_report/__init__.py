"""incident_report: a case's full investigation report (summary, impacted hosts and users, validated
ATT&CK techniques by tactic, remediation and next steps), citations checked, approved like a note."""

from socflow.sdk import WorkflowSpec
from workflows.incident_report.graph import build
from workflows.incident_report.nodes import NOTE_KIND

SPEC = WorkflowSpec(
    name="incident_report",
    version="1.0.0",
    description="Write a case's incident report: summary, impacted hosts and users, ATT&CK techniques by "
    "tactic, remediation and next steps; citations checked; analyst approval.",
    build=build,
    queue="workflows",
    output_keys=("outcome", "tactics"),
    note_kind=NOTE_KIND,  # no trigger: started from a case page, the API or ``socflow workflow run``
)

__all__ = ["SPEC"]
