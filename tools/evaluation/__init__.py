"""Evaluation tasks that need the tools (ATT&CK mapping, the embedded SIEM); see ``socflow.evaluation``.

``TASKS`` maps task names to ``(EvalOptions) -> EvalReport`` functions; the platform reaches it only
through ``socflow.wiring.eval_tasks()``.
"""

from socflow.evaluation.tasks import EvalTask
from tools.evaluation import grounding
from tools.evaluation.attack import run_logs, run_logs_pack, run_text
from tools.evaluation.siem_bench import siem_throughput

TASKS: dict[str, EvalTask] = {
    "attack-text": run_text,
    "attack-logs": run_logs,
    "attack-logs-pack": run_logs_pack,
    "grounding": grounding.run,
}

__all__ = ["TASKS", "run_logs", "run_logs_pack", "run_text", "siem_throughput"]
