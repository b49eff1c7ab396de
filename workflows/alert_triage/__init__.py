"""alert_triage: evidence, validated ATT&CK techniques, a scored verdict and a cited case note, then an
analyst's approval."""

from socflow.sdk import Trigger, WorkflowSpec
from workflows.alert_triage.graph import build
from workflows.alert_triage.nodes import NOTE_KIND

SPEC = WorkflowSpec(
    name="alert_triage",
    version="1.0.0",
    description="Triage a case: SIEM evidence, ATT&CK mapping, verdict with scored confidence, policy, "
    "a drafted note with citations, analyst approval.",
    build=build,
    queue="workflows",
    triggers=(Trigger.all_cases(),),
    note_kind=NOTE_KIND,
)

__all__ = ["SPEC"]
