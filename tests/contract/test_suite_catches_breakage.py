"""The contract suite itself: a good engine passes every rule; an engine broken in exactly one
way fails exactly that rule, with a message naming it; what it cannot judge is 'not covered'."""

from __future__ import annotations

import pytest

from tedchat.engine import Engine, Runtime
from tedchat.testing import RULES, ContractFailure, assert_meets_contract, check_engine
from tests.contract.parrot import BROKEN, ParrotEngine


def factory(cls: type[ParrotEngine] = ParrotEngine, **settings: object):
    def make(secret: str) -> Engine:
        return cls("parrot", {"api_key": secret, **settings}, Runtime(threads=1))

    return make


async def test_a_well_behaved_engine_passes_every_rule() -> None:
    report = await check_engine(factory(), failing_factory=factory(fail_after=2))
    assert [(r.rule, r.status) for r in report.results] == [(r, "passed") for r in RULES], (
        report.summary()
    )
    report.raise_for_failures(allow_not_covered=False)


@pytest.mark.parametrize(("broken", "where"), BROKEN, ids=[c.__name__ for c, _ in BROKEN])
async def test_an_engine_broken_one_way_fails_that_rule(
    broken: type[ParrotEngine], where: str
) -> None:
    rule = broken.RULE  # type: ignore[attr-defined]
    if where == "main":
        report = await check_engine(factory(broken), failing_factory=factory(fail_after=2))
    else:
        report = await check_engine(factory(), failing_factory=factory(broken, fail_after=2))
    failed = {r.rule: r.detail for r in report.failures}
    assert list(failed) == [rule], report.summary()
    assert failed[rule].startswith(f"[{rule}] ")
    assert not report.passed
    with pytest.raises(ContractFailure, match=rf"FAILED\s+{rule}: \[{rule}\]"):
        report.raise_for_failures()


async def test_without_a_failing_factory_errors_are_not_covered_not_passed() -> None:
    report = await check_engine(factory())
    errors = report.result("errors")
    assert errors.status == "not covered" and "failing_factory" in errors.detail
    assert report.passed  # nothing failed ...
    assert [r.rule for r in report.not_covered] == ["errors"]
    with pytest.raises(ContractFailure, match=r"not covered +errors"):  # ... nor was all covered
        report.raise_for_failures(allow_not_covered=False)


async def test_an_engine_without_credentials_leaves_secrets_not_covered() -> None:
    report = await check_engine(lambda secret: ParrotEngine("p", {}, Runtime(threads=1)))
    assert report.result("secrets").status == "not covered"
    assert "planted no secret" in report.result("secrets").detail


async def test_a_secret_in_the_environment_counts_as_planted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def make(secret: str) -> Engine:
        monkeypatch.setenv("PARROT_KEY", secret)  # e.g. an engine whose settings name the variable
        return DescribesEnv("p", {}, Runtime(threads=1))

    class DescribesEnv(ParrotEngine):
        def describe(self) -> dict[str, object]:
            import os

            return {"key": os.environ["PARROT_KEY"]}

    report = await check_engine(make, rules=["secrets"])
    assert report.result("secrets").status == "failed"
    assert "describe() before load()" in report.result("secrets").detail


def test_the_synchronous_wrapper_raises_naming_the_rule() -> None:
    from tests.contract.parrot import TwoDones

    assert assert_meets_contract(factory()).passed
    with pytest.raises(ContractFailure, match=r"\[one-done\] an answer held 2 Done events"):
        assert_meets_contract(factory(TwoDones))


async def test_an_engine_older_than_capabilities_offers_nothing_optional() -> None:
    class Older(ParrotEngine):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)  # type: ignore[arg-type]
            del self.capabilities

    report = await check_engine(lambda s: Older("old", {"api_key": s}, Runtime(threads=1)))
    assert report.result("declaration").status == "passed", report.summary()

    class WrongType(ParrotEngine):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)  # type: ignore[arg-type]
            self.capabilities = {"record": True}  # type: ignore[assignment]

    report = await check_engine(
        lambda s: WrongType("w", {}, Runtime(threads=1)), rules=["declaration"]
    )
    assert "capabilities must be a tedchat.Capabilities" in report.result("declaration").detail


async def test_rules_can_be_chosen_and_unknown_ones_are_refused() -> None:
    report = await check_engine(factory(), rules=["one-done", "counts"])
    assert [r.rule for r in report.results] == ["one-done", "counts"]
    with pytest.raises(ValueError, match="unknown rules"):
        await check_engine(factory(), rules=["speed"])
