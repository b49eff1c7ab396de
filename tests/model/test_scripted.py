from __future__ import annotations

from typing import Literal

import pytest
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import TypedDict

from socflow.errors import StructuredOutputError, UnscriptedCallError
from socflow.model.base import CallContext, Message
from socflow.model.recorder import ModelCallRecorder
from socflow.tables import ModelCall
from socflow.testing import ScriptedModel, ScriptRule


class Verdict(BaseModel):
    verdict: Literal["benign", "malicious"]
    summary: str = Field(pattern=r"^[ -~]{0,40}$")


def ask(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def test_rules_match_node_content_and_method_not_call_order() -> None:
    model = ScriptedModel(
        [
            ScriptRule("from triage", node="triage"),
            ScriptRule("about lsass", contains="LSASS"),
            ScriptRule("T1003.001", method="choose"),
        ]
    )
    for _ in range(2):  # answers do not depend on how often or in which order we ask
        assert model.choose(ask("which?"), ["T1003", "T1003.001"]) == "T1003.001"
        assert model.generate(ask("LSASS access"), ctx=CallContext(node="other")) == "about lsass"
        assert model.generate(ask("LSASS access"), ctx=CallContext(node="triage")) == "from triage"


def test_unscripted_call_names_node_and_prompt_tail() -> None:
    model = ScriptedModel([ScriptRule("x", node="a")])
    with pytest.raises(UnscriptedCallError, match=r"node 'b'.*the end of the prompt"):
        model.generate(ask("blah blah the end of the prompt"), ctx=CallContext(node="b"))


def test_node_comes_from_langgraph_metadata() -> None:
    class State(TypedDict):
        answer: str

    model = ScriptedModel([ScriptRule("one", node="first"), ScriptRule("two", node="second")])

    def first(state: State) -> dict[str, str]:
        return {"answer": model.generate(ask("q"))}

    def second(state: State) -> dict[str, str]:
        return {"answer": state["answer"] + "+" + model.generate(ask("q"))}

    graph = StateGraph(State)
    graph.add_node("first", first)
    graph.add_node("second", second)
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    graph.add_edge("second", END)
    assert graph.compile().invoke({"answer": ""})["answer"] == "one+two"
    assert [c.node for c in model.calls] == ["first", "second"]


def test_structured_replies_validate_and_repair_like_real_backends() -> None:
    calls: list[int] = []

    def flaky(messages: list[Message], method: str, schema: object) -> str:
        calls.append(len(messages))
        # The repair prompt carries the validation error; answer correctly only then.
        if "invalid" in messages[-1]["content"]:
            return '{"verdict": "benign", "summary": "ok"}'
        return '{"verdict": "maybe", "summary": "ok"}'

    model = ScriptedModel([ScriptRule(flaky, node="assess")])
    out = model.generate_structured(ask("alert"), Verdict, ctx=CallContext(node="assess"))
    assert out == Verdict(verdict="benign", summary="ok")
    assert calls == [1, 3]


def test_a_repaired_call_is_one_row_that_keeps_both_raw_outputs(factory: sessionmaker[Session]) -> None:
    def flaky(messages: list[Message], method: str, schema: object) -> str:
        if "invalid" in messages[-1]["content"]:
            return '{"verdict": "benign", "summary": "ok"}'
        return '{"verdict": "maybe", "summary": "first"}'

    model = ScriptedModel([ScriptRule(flaky, node="assess")], recorder=ModelCallRecorder(factory))
    model.generate_structured(ask("alert"), Verdict, ctx=CallContext(run_id="r1", node="assess"))
    with pytest.raises(StructuredOutputError):
        ScriptedModel([ScriptRule("not json")], recorder=ModelCallRecorder(factory)).generate_structured(
            ask("alert"), Verdict, ctx=CallContext(run_id="r2")
        )
    with factory() as session:
        rows = {r.run_id: r for r in session.scalars(select(ModelCall))}
    assert set(rows) == {"r1", "r2"}  # one row per call, repaired or failed
    repaired, failed = rows["r1"], rows["r2"]
    assert repaired.raw_output == '{"verdict": "benign", "summary": "ok"}'
    assert repaired.parameters["first_raw_output"] == '{"verdict": "maybe", "summary": "first"}'
    assert repaired.parameters["attempts"] == 2 and repaired.error is None
    assert failed.error_kind == "structured_output_invalid" and failed.parsed_output is None
    assert failed.parameters["first_raw_output"] == failed.raw_output == "not json"


def test_structured_dict_reply_and_persistent_failure() -> None:
    good = ScriptedModel([ScriptRule({"verdict": "malicious", "summary": "bad"})])
    assert good.generate_structured(ask("a"), Verdict).verdict == "malicious"
    bad = ScriptedModel([ScriptRule("not json")])
    with pytest.raises(StructuredOutputError, match="after one repair attempt"):
        bad.generate_structured(ask("a"), Verdict)


def test_choose_must_return_an_option() -> None:
    model = ScriptedModel([ScriptRule("T1059.002", method="choose")])
    with pytest.raises(StructuredOutputError):
        model.choose(ask("pick"), ["T1059", "T1059.001"])
    quoted = ScriptedModel([ScriptRule('"T1059"', method="choose")])
    assert quoted.choose(ask("pick"), ["T1059", "T1059.001"]) == "T1059"


def test_score_labels_are_normalized() -> None:
    model = ScriptedModel([ScriptRule({"malicious": 3.0, "benign": 1.0})])
    scores = model.score_labels("alert text", ["benign", "malicious"])
    assert scores == {"benign": 0.25, "malicious": 0.75}
    assert ScriptedModel([ScriptRule("benign")]).score_labels("x", ["benign", "malicious"]) == {
        "benign": 1.0,
        "malicious": 0.0,
    }
    with pytest.raises(StructuredOutputError):
        ScriptedModel([ScriptRule({"other": 1.0})]).score_labels("x", ["benign", "malicious"])


def test_replay_of_recorded_calls(factory: sessionmaker[Session]) -> None:
    recorder = ModelCallRecorder(factory)
    original = ScriptedModel(
        [
            ScriptRule({"verdict": "malicious", "summary": "lsass"}, node="assess"),
            ScriptRule("T1003.001", node="map_attack"),
            ScriptRule({"benign": 1.0, "malicious": 4.0}, node="score"),
            ScriptRule("note about WS123", node="draft", contains="WS123"),
            ScriptRule("note about WS999", node="draft", contains="WS999"),
        ],
        recorder=recorder,
    )
    run = "run-1"
    verdict = original.generate_structured(ask("a"), Verdict, ctx=CallContext(run_id=run, node="assess"))
    choice = original.choose(ask("b"), ["T1003", "T1003.001"], ctx=CallContext(run_id=run, node="map_attack"))
    scores = original.score_labels("c", ["benign", "malicious"], ctx=CallContext(run_id=run, node="score"))
    note1 = original.generate(ask("host WS123 did things"), ctx=CallContext(run_id=run, node="draft"))
    note2 = original.generate(ask("host WS999 did things"), ctx=CallContext(run_id=run, node="draft"))

    replay = ScriptedModel.replay_run(factory, run)
    # Asked in a different order: answers follow node and prompt, not order.
    assert replay.generate(ask("host WS999 did things"), ctx=CallContext(node="draft")) == note2
    assert replay.generate(ask("host WS123 did things"), ctx=CallContext(node="draft")) == note1
    assert replay.score_labels("c", ["benign", "malicious"], ctx=CallContext(node="score")) == scores
    assert replay.choose(ask("b"), ["T1003", "T1003.001"], ctx=CallContext(node="map_attack")) == choice
    assert replay.generate_structured(ask("a"), Verdict, ctx=CallContext(node="assess")) == verdict
    with factory() as session:
        assert len(session.scalars(select(ModelCall).where(ModelCall.run_id == run)).all()) == 5


def test_importing_the_runtime_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, socflow.model, socflow.testing, socflow.model.factory, socflow.model.cli, "
        "socflow.model.hf, socflow.untrusted; "
        "bad = [m for m in ('torch', 'transformers', 'xgrammar') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
