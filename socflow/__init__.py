"""socflow: a local-model-first agentic SOC workflow orchestrator."""

__version__ = "0.1.0"
