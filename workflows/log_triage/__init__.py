"""log_triage: score raw log lines benign vs malicious by label likelihood (the cookbook's perplexity
classification), rank them, and open a case with the lines above the threshold as evidence."""

from socflow.sdk import WorkflowSpec
from workflows.log_triage.graph import build
from workflows.log_triage.state import LogTriageInput

SPEC = WorkflowSpec(
    name="log_triage",
    version="1.0.0",
    description="Score raw log lines benign vs malicious with label likelihoods, rank them, and open a "
    "case with the lines above the threshold as evidence.",
    build=build,
    input_schema=LogTriageInput,
    queue="workflows",
    needs_case=False,
    output_keys=("case_id", "flagged", "ranked"),
    note_kind=None,  # it opens a case with evidence and drafts no note
)

__all__ = ["SPEC"]
