"""core.plan_summary against real `terraform show -json` output and against Terraform's rules."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from core.plan_summary import (
    COSTLY_RESOURCE_TYPES,
    SENSITIVE,
    UNKNOWN,
    UNMARKED,
    ChangeGroup,
    PlanAction,
    PlanParseError,
    PlanSummary,
    PlanSummaryError,
    summarise_plan,
)
from core.sizes import SetupSize, size_profile
from tests.fixtures_plans import (
    FIXTURE_PATHS,
    big_plan,
    load_fixture,
    plan_document,
    resource_change,
    sensitive_leaves,
    terraform_sentence,
    with_canaries,
)


def summary_of(name: str) -> PlanSummary:
    return summarise_plan(load_fixture(name))


def summary_dump(summary: PlanSummary) -> str:
    return summary.model_dump_json()


# ---------------------------------------------------------------- every fixture


def test_there_are_fixtures_to_check() -> None:
    assert len(FIXTURE_PATHS) >= 20


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_every_fixture_summarises_from_bytes_text_and_dict_alike(path: Path) -> None:
    raw = path.read_bytes()
    from_bytes = summarise_plan(raw)
    assert summarise_plan(raw.decode()) == from_bytes
    assert summarise_plan(json.loads(raw)) == from_bytes


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_every_fixture_counts_like_terraform(path: Path) -> None:
    plan = json.loads(path.read_bytes())
    summary = summarise_plan(plan)
    expected = terraform_sentence(plan)
    if expected is not None:
        assert summary.sentence == expected
    elif plan.get("errored"):
        assert summary.sentence == "Planning failed."
    elif any(change["actions"] != ["no-op"] for change in (plan.get("output_changes") or {}).values()):
        assert summary.sentence.startswith("No resource changes.")
    else:
        assert summary.sentence == "No changes."


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_every_fixture_lists_each_shown_change_once_with_its_module_and_key(path: Path) -> None:
    plan = json.loads(path.read_bytes())
    summary = summarise_plan(plan)
    listed = [change.address for change in summary.changes + summary.data_reads]
    assert len(listed) == len(set(listed))
    raw_addresses = {entry["address"] for entry in plan.get("resource_changes") or []}
    assert set(listed) <= raw_addresses  # addresses kept exactly as Terraform wrote them
    noops = {
        entry["address"]
        for entry in plan.get("resource_changes") or []
        if entry["change"]["actions"] == ["no-op"]
        and entry.get("previous_address") in (None, entry["address"])
        and entry["change"].get("importing") is None
    }
    assert not noops & set(listed)


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_no_sensitive_value_of_any_fixture_reaches_the_summary(path: Path) -> None:
    plan = json.loads(path.read_bytes())
    dump = summary_dump(summarise_plan(plan))
    for value in sensitive_leaves(plan):
        if isinstance(value, str) and len(value) >= 4:
            assert json.dumps(value) not in dump, f"sensitive value {value!r} leaked"


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_sensitive_canaries_planted_in_any_fixture_never_reach_the_summary(path: Path) -> None:
    planted, canaries = with_canaries(json.loads(path.read_bytes()))
    dump = summary_dump(summarise_plan(planted))
    assert not [canary for canary in canaries if canary in dump]


def test_the_fixtures_do_carry_sensitive_values_so_the_leak_checks_mean_something() -> None:
    planted = [with_canaries(json.loads(path.read_bytes()))[1] for path in FIXTURE_PATHS]
    assert sum(len(canaries) for canaries in planted) >= 5
    assert "boop" in sensitive_leaves(load_fixture("terraform_golden_sensitive_values.json"))


# ---------------------------------------------------------------- hand-checked fixtures


def test_golden_basic_delete() -> None:
    summary = summary_of("terraform_golden_basic_delete.json")
    assert summary.sentence == "Plan: 0 to add, 1 to change, 1 to destroy."
    assert (summary.counts.to_add, summary.counts.to_change, summary.counts.to_destroy) == (0, 1, 1)
    destroyed = summary.flagged
    assert [change.address for change in destroyed] == ["test_instance.test-delete"]
    assert destroyed[0].reason == "removed from configuration"
    assert summary.changes[0].group is ChangeGroup.DESTROY  # destroys come first
    update = summary.changes[1]
    assert update.action is PlanAction.UPDATE
    assert [(a.name, a.before, a.after) for a in update.attribute_changes] == [("ami", '"foo"', '"bar"')]
    assert summary.applyable and summary.complete is True


def test_golden_requires_replace() -> None:
    summary = summary_of("terraform_golden_requires_replace.json")
    assert summary.sentence == "Plan: 1 to add, 0 to change, 1 to destroy."
    (replaced,) = summary.changes
    assert replaced.action is PlanAction.DELETE_THEN_CREATE
    assert replaced.group is ChangeGroup.REPLACE and replaced.is_flagged
    assert replaced.reason == "a change forces replacement"
    forcing = [attribute.name for attribute in replaced.attribute_changes if attribute.forces_replacement]
    assert forcing == ["ami"]
    assert replaced.attribute_changes[0].name == "ami"  # the forcing attribute is listed first
    by_name = {attribute.name: attribute for attribute in replaced.attribute_changes}
    assert by_name["id"].after == UNKNOWN


def test_replace_because_tainted() -> None:
    summary = summary_of("tfjson_action_reason_replace_tainted_plan.json")
    assert summary.sentence == "Plan: 1 to add, 0 to change, 1 to destroy."
    assert summary.flagged[0].reason == "tainted"
    assert summary.complete is True


def test_golden_moved_drift() -> None:
    summary = summary_of("terraform_golden_moved_drift.json")
    assert summary.sentence == "Plan: 0 to add, 2 to change, 0 to destroy."
    assert summary.counts.to_move == 1
    moved = [change for change in summary.changes if change.moved]
    assert [(c.previous_address, c.address) for c in moved] == [
        ("test_instance.should_refresh", "test_instance.should_refresh_with_move")
    ]
    assert [(drift.address, drift.description) for drift in summary.drift] == [
        ("test_instance.should_refresh_with_move", "changed outside Terraform")
    ]


def test_moved_block_only_is_listed_but_counts_nothing() -> None:
    summary = summary_of("tfjson_moved_block_plan.json")
    assert summary.sentence == "Plan: 0 to add, 0 to change, 0 to destroy."
    (moved,) = summary.changes
    assert moved.group is ChangeGroup.MOVE and moved.previous_address == "random_id.test"


def test_golden_sensitive_values() -> None:
    summary = summary_of("terraform_golden_sensitive_values.json")
    assert summary.sentence == "Plan: 1 to add, 0 to change, 0 to destroy."
    (output,) = summary.outputs
    assert (output.name, output.value, output.sensitive) == ("test", SENSITIVE, True)
    assert "boop" not in summary_dump(summary)


def test_sensitive_output_among_clear_ones() -> None:
    summary = summary_of("tfjson_110_sensitive_values_plan.json")
    assert summary.sentence == "Plan: 7 to add, 0 to change, 0 to destroy."
    outputs = {output.name: output for output in summary.outputs}
    assert len(outputs) == 8
    assert outputs["foo"].value == SENSITIVE
    assert outputs["string"].value == '"foo"'
    assert outputs["interpolated"].value == UNKNOWN


def test_golden_errored_plan_is_not_applyable() -> None:
    summary = summary_of("terraform_golden_plan_errored.json")
    assert summary.errored and not summary.applyable
    assert summary.not_applyable_reason and "error" in summary.not_applyable_reason
    assert summary.complete is False
    assert summary.changes == () and summary.sentence == "Planning failed."


def test_plan_without_resources_has_no_changes() -> None:
    summary = summary_of("tfplanformat_no_resources_tf1.7.json")
    assert summary.sentence == "No changes."
    assert not summary.has_changes and summary.changes == ()


def test_outputs_only_plan() -> None:
    summary = summary_of("terraform_golden_unknown_outputs_only.json")
    assert summary.sentence == "No resource changes. 3 outputs to change."
    assert summary.has_changes and summary.applyable
    assert {output.name: output.value for output in summary.outputs} == {
        "foo": '"hello"',
        "bar": UNKNOWN,  # after_unknown [false, true, false]: partly unknown
        "baz": UNKNOWN,
    }


def test_import_with_update() -> None:
    summary = summary_of("tfjson_identity_import_plan.json")
    assert summary.sentence == "Plan: 1 to import, 0 to add, 1 to change, 0 to destroy."
    (change,) = summary.changes
    assert change.importing and change.group is ChangeGroup.UPDATE


def test_create_update_delete_noop_with_drift() -> None:
    summary = summary_of("snyk_pe_s3_create_update_delete_noop.json")
    assert summary.sentence == "Plan: 1 to add, 1 to change, 1 to destroy."
    assert [c.address for c in summary.changes] == [
        "aws_s3_bucket.delete_bucket",
        "aws_s3_bucket.update_bucket",
        "aws_s3_bucket.create_bucket",
    ]
    assert [drift.address for drift in summary.drift] == ["aws_s3_bucket.noop_bucket"]


def test_data_source_reads_are_listed_apart_and_not_counted() -> None:
    summary = summary_of("checkov_oidc_iam_with_data_reads.json")
    assert summary.sentence == "Plan: 5 to add, 0 to change, 0 to destroy."
    assert summary.counts.to_read == 4
    assert all(read.mode == "data" and read.group is None for read in summary.data_reads)
    assert len(summary.data_reads) == 4
    assert summary.data_reads[0].reason in {
        "depends on changes pending",
        "configuration refers to values not yet known",
    }


def test_old_format_plans() -> None:
    infracost = summary_of("infracost_tf0.14_aws_ec2_rds_plan.json")
    assert infracost.format_version == "0.1"
    assert infracost.sentence == "Plan: 12 to add, 1 to change, 0 to destroy."
    assert (
        summary_of("checkov_55_creates_s3_subnet_iam.json").sentence
        == "Plan: 55 to add, 0 to change, 0 to destroy."
    )
    assert summary_of("tfcompliance_120_rds_cluster_create.json").counts.to_add == 1


def test_old_format_without_sensitivity_marks_shows_no_values() -> None:
    """0.12–0.14 plans mark nothing sensitive, so a value there may be a password: never shown."""
    update = next(
        c
        for c in summary_of("infracost_tf0.14_aws_ec2_rds_plan.json").changes
        if c.action is PlanAction.UPDATE
    )
    assert update.attribute_changes
    assert {(a.before, a.after) for a in update.attribute_changes} == {(UNMARKED, UNMARKED)}
    outputs = summary_of("checkov_55_creates_s3_subnet_iam.json").outputs
    assert {output.value for output in outputs} <= {UNMARKED, UNKNOWN}


def test_for_each_and_module_addresses_are_kept_and_grouped_by_type() -> None:
    summary = summary_of("checkov_for_each_sg_route53_tf1.9.json")
    addresses = {change.address for change in summary.changes}
    assert 'module.sg["bad_example"].aws_security_group.bad' in addresses
    assert 'aws_route53_zone.example["example.com"]' in addresses
    (creates,) = summary.grouped()
    assert creates.group is ChangeGroup.CREATE
    assert [(t.type, t.count) for t in creates.by_type] == [
        ("aws_security_group", 3),
        ("aws_route53_zone", 2),
    ]


def test_costly_resources_and_cost_band() -> None:
    band = size_profile(SetupSize.MEDIUM).monthly_cost
    summary = summarise_plan(load_fixture("infracost_tf0.14_aws_ec2_rds_plan.json"), monthly_cost=band)
    assert summary.monthly_cost == band
    (db,) = summary.costly
    assert (db.type, db.added, db.changed, db.destroyed) == ("aws_db_instance", 1, 1, 0)
    assert (
        summary_of("tfcompliance_120_rds_cluster_create.json").costly == ()
    )  # a cluster alone is not billed


def test_costly_list_is_the_one_the_issue_names() -> None:
    assert set(COSTLY_RESOURCE_TYPES) == {
        "aws_nat_gateway",
        "aws_db_instance",
        "aws_rds_cluster_instance",
        "aws_docdb_cluster_instance",
        "aws_elasticache_replication_group",
        "aws_elasticache_cluster",
        "aws_ec2_client_vpn_endpoint",
    }


# ---------------------------------------------------------------- Terraform's sentence, synthetic


def test_import_and_forget_sentence_matches_terraform() -> None:
    plan = plan_document(
        resource_change(
            "aws_s3_bucket.imported", ["no-op"], before={"id": "b"}, after={"id": "b"}, importing={"id": "b"}
        ),
        resource_change("aws_s3_bucket.a", ["create"], after={"bucket": "a"}),
        resource_change("aws_s3_bucket.b", ["create"], after={"bucket": "b"}),
        resource_change("aws_s3_bucket.old", ["forget"], before={"bucket": "old"}),
    )
    summary = summarise_plan(plan)
    assert summary.sentence == "Plan: 1 to import, 2 to add, 0 to change, 0 to destroy, 1 to forget."
    assert summary.sentence == terraform_sentence(plan)
    groups = [group.group for group in summary.grouped()]
    assert groups == [ChangeGroup.FORGET, ChangeGroup.CREATE, ChangeGroup.IMPORT]


def test_create_before_destroy_and_create_then_forget() -> None:
    plan = plan_document(
        resource_change("aws_lb.main", ["create", "delete"], before={"a": 1}, after={"a": 2}),
        resource_change("aws_lb.kept", ["create", "forget"], before={"a": 1}, after={"a": 2}),
        resource_change("aws_lb.deposed", ["delete"], before={"a": 1}, deposed="00000001"),
    )
    summary = summarise_plan(plan)
    assert summary.sentence == terraform_sentence(plan)
    assert (summary.counts.to_add, summary.counts.to_destroy, summary.counts.to_forget) == (2, 2, 1)
    deposed = next(change for change in summary.changes if change.address == "aws_lb.deposed")
    assert deposed.reason and "partially failed replacement" in deposed.reason
    assert summary.changes[0].group is ChangeGroup.DESTROY


def test_deleted_data_sources_are_not_shown_or_counted() -> None:
    plan = plan_document(
        resource_change("data.aws_ami.old", ["delete"], mode="data", type_="aws_ami", before={"id": "x"}),
        resource_change("aws_instance.web", ["update"], before={"ami": "a"}, after={"ami": "b"}),
    )
    summary = summarise_plan(plan)
    assert summary.sentence == "Plan: 0 to add, 1 to change, 0 to destroy."
    assert [c.address for c in summary.changes] == ["aws_instance.web"]


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("replace_because_tainted", "tainted"),
        ("replace_because_cannot_update", "a change forces replacement"),
        ("replace_by_request", "replacement requested (-replace)"),
        ("replace_by_triggers", "replace_triggered_by changed"),
        ("delete_because_no_resource_config", "removed from configuration"),
        ("delete_because_no_module", "its module was removed from configuration"),
        ("delete_because_each_key", "for_each key was removed"),
        ("delete_because_something_new", "delete because something new"),
    ],
)
def test_action_reasons_in_words(reason: str, words: str) -> None:
    actions = ["delete", "create"] if reason.startswith("replace") else ["delete"]
    plan = plan_document(
        resource_change("aws_ecs_service.web", actions, before={"a": 1}, after={"a": 2}, action_reason=reason)
    )
    (change,) = summarise_plan(plan).changes
    assert change.reason == words


def test_incomplete_plan_is_flagged() -> None:
    plan = plan_document(
        resource_change("aws_ecs_service.web", ["create"], after={}), complete=False, applyable=True
    )
    summary = summarise_plan(plan)
    assert summary.complete is False and summary.applyable


def test_terraform_saying_not_applyable_is_respected() -> None:
    plan = plan_document(resource_change("aws_ecs_service.web", ["create"], after={}), applyable=False)
    summary = summarise_plan(plan)
    assert not summary.applyable and summary.not_applyable_reason


def test_monthly_cost_is_optional() -> None:
    assert summary_of("tfjson_has_checks_plan.json").monthly_cost is None


# ---------------------------------------------------------------- sensitive and unknown values


def test_sensitive_attribute_of_an_update_is_masked_on_both_sides() -> None:
    plan = plan_document(
        resource_change(
            "aws_db_instance.main",
            ["update"],
            before={"password": "old-Hunter2", "instance_class": "db.t3.micro"},
            after={"password": "new-Hunter2", "instance_class": "db.t3.small"},
            before_sensitive={"password": True},
            after_sensitive={"password": True},
        )
    )
    summary = summarise_plan(plan)
    attributes = {a.name: (a.before, a.after) for a in summary.changes[0].attribute_changes}
    assert attributes == {
        "password": (SENSITIVE, SENSITIVE),
        "instance_class": ('"db.t3.micro"', '"db.t3.small"'),
    }
    assert "Hunter2" not in summary_dump(summary)


def test_attribute_that_becomes_sensitive_hides_its_old_value_too() -> None:
    plan = plan_document(
        resource_change(
            "aws_ssm_parameter.token",
            ["update"],
            before={"value": "was-public-TOKEN"},
            after={"value": "now-secret-TOKEN"},
            after_sensitive={"value": True},
        )
    )
    assert "TOKEN" not in summary_dump(summarise_plan(plan))


def test_sensitive_nested_anywhere_masks_the_whole_attribute() -> None:
    plan = plan_document(
        resource_change(
            "aws_ecs_task_definition.app",
            ["delete", "create"],
            before={"environment": [{"name": "A", "value": "1"}], "tags": {"owner": "me"}},
            after={"environment": [{"name": "A", "value": "deep-SECRET"}], "tags": {"owner": "you"}},
            after_sensitive={"environment": [{"value": True}], "tags": {}},
            replace_paths=[["environment"]],
        )
    )
    summary = summarise_plan(plan)
    attributes = {a.name: a for a in summary.changes[0].attribute_changes}
    assert (attributes["environment"].before, attributes["environment"].after) == (SENSITIVE, SENSITIVE)
    assert attributes["environment"].forces_replacement
    assert attributes["tags"].after == '{"owner":"you"}'
    assert "deep-SECRET" not in summary_dump(summary)


def test_whole_object_marked_sensitive_masks_everything() -> None:
    plan = plan_document(
        resource_change(
            "aws_secretsmanager_secret_version.v",
            ["update"],
            before={"secret_string": "OLD-whole"},
            after={"secret_string": "NEW-whole"},
            before_sensitive=True,
            after_sensitive=True,
        )
    )
    summary = summarise_plan(plan)
    assert summary.changes[0].attribute_changes[0].after == SENSITIVE
    assert "whole" not in summary_dump(summary)


def test_unknown_values_show_as_known_after_apply() -> None:
    plan = plan_document(
        resource_change(
            "aws_ecs_service.web",
            ["update"],
            before={"task_definition": "arn:1", "desired_count": 2},
            after={"task_definition": None, "desired_count": 2},
            after_unknown={"task_definition": True},
        )
    )
    (attribute,) = summarise_plan(plan).changes[0].attribute_changes
    assert (attribute.name, attribute.before, attribute.after) == ("task_definition", '"arn:1"', UNKNOWN)


def test_attribute_diffs_stay_short() -> None:
    before = {f"attr{i}": "a" * 500 for i in range(20)}
    after = {f"attr{i}": "b" * 500 for i in range(20)}
    plan = plan_document(resource_change("aws_ecs_service.web", ["update"], before=before, after=after))
    (change,) = summarise_plan(plan).changes
    assert len(change.attribute_changes) == 3 and change.more_attribute_changes == 17
    assert all(len(a.before) <= 60 and len(a.after) <= 60 for a in change.attribute_changes)


def test_sensitive_outputs_nested_and_deleted_are_masked() -> None:
    plan = plan_document(
        output_changes={
            "nested": {
                "actions": ["update"],
                "before": {"user": "u", "pass": "OLDPASS"},
                "after": {"user": "u", "pass": "NEWPASS"},
                "after_unknown": False,
                "before_sensitive": {"pass": True},
                "after_sensitive": {"pass": True},
            },
            "gone": {
                "actions": ["delete"],
                "before": "GONEPASS",
                "after": None,
                "after_unknown": False,
                "before_sensitive": True,
                "after_sensitive": False,
            },
            "same": {"actions": ["no-op"], "before": 1, "after": 1, "after_sensitive": False},
        }
    )
    summary = summarise_plan(plan)
    assert {o.name: o.value for o in summary.outputs} == {"gone": SENSITIVE, "nested": SENSITIVE}
    assert "PASS" not in summary_dump(summary)


# ---------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"terraform: command not found", "not valid JSON"),
        (b'{"format_version": "1.2", "resource_changes": [{"address": "a.b", ', "truncated"),
        (b"", "empty"),
        (b"\x80\x81garbage", "UTF-8"),
        ('{"version":4,"terraform_version":"1.5.0","serial":1,"lineage":"x","resources":[]}', "state file"),
        ('{"format_version":"1.0","terraform_version":"1.5.0","values":{"root_module":{}}}', "state"),
        ("[]", "must be an object"),
        ("[1, 2]", "got a list"),
        ('"a plan"', "must be an object"),
        ("{}", "format_version"),
        ('{"format_version": "2.0", "planned_values": {}}', "newer"),
        ('{"format_version": "1.2", "resource_changes": {}}', "must be a list"),
        ('{"format_version": "1.2", "resource_changes": [7]}', "resource_changes[0]"),
        ('{"format_version": "1.2", "resource_changes": [{"address": "a.b"}]}', "change"),
        ('{"format_version": "1.2", "resource_changes": [{"change": {"actions": ["create"]}}]}', "address"),
        (
            '{"format_version": "1.2", "resource_changes": [{"address": "a.b", "change": {"actions": "create"}}]}',
            "list",
        ),
        (
            '{"format_version": "1.2", "resource_changes": [{"address": "a.b", "change": {"actions": ["explode"]}}]}',
            "explode",
        ),
        ('{"format_version": "1.2", "output_changes": []}', "output_changes"),
        ('{"format_version": "1.2", "planned_values": {}, "resource_drift": [null]}', "resource_drift[0]"),
    ],
)
def test_invalid_input_raises_a_clear_plan_parse_error(raw: bytes | str, message: str) -> None:
    with pytest.raises(
        PlanParseError, match=r"(?i)" + message.replace("[", r"\[").replace("]", r"\]")
    ) as caught:
        summarise_plan(raw)
    assert isinstance(caught.value, PlanSummaryError)
    assert len(str(caught.value)) > 20


def test_truncated_real_plan_is_reported_as_truncated() -> None:
    raw = (FIXTURE_PATHS[0]).read_bytes()
    with pytest.raises(PlanParseError, match="truncated"):
        summarise_plan(raw[: len(raw) // 2])


def test_deeply_nested_json_is_a_parse_error_not_a_crash() -> None:
    with pytest.raises(PlanParseError):
        summarise_plan("[" * 100_000 + "]" * 100_000)


def test_a_non_json_python_object_is_rejected() -> None:
    with pytest.raises(PlanParseError):
        summarise_plan(12345)  # type: ignore[arg-type]


# ---------------------------------------------------------------- size


def test_ten_thousand_resources_are_summarised() -> None:
    """How fast is bench/plan_summary.py's question; this one is whether the counts are right."""
    plan, built = big_plan(10_000)
    raw = json.dumps(plan).encode()
    assert len(raw) > 5_000_000
    summary = summarise_plan(raw)
    replaced = built["replace"]
    assert summary.counts.to_add == built["create"] + replaced
    assert summary.counts.to_change == built["update"]
    assert summary.counts.to_destroy == built["delete"] + replaced
    assert summary.sentence == terraform_sentence(plan)
    assert len(summary.flagged) == built["delete"] + replaced
    assert "SECRETPW" not in summary_dump(summary)


def test_summarising_a_parsed_plan_does_not_copy_it() -> None:
    """A deep copy would cost at least what the parsed plan costs; the summary must stay well under."""
    plan, _ = big_plan(10_000)
    raw = json.dumps(plan)
    del plan
    tracemalloc.start()
    try:
        parsed = json.loads(raw)
        parsed_bytes, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        summarise_plan(parsed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    extra = peak - parsed_bytes
    assert extra < parsed_bytes * 0.75, f"summarising took {extra:,} bytes over a {parsed_bytes:,}-byte plan"
