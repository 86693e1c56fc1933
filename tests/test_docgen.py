"""docs/configuration.md is generated from the settings model; it must be current."""

from __future__ import annotations

from helpdesk.config import docgen
from helpdesk.config.settings import Settings
from tests.helpers import REPO


def test_committed_reference_is_generated_output() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == docgen.reference(), (
        "docs/configuration.md is stale: "
        "run `python -m helpdesk.config.docgen > docs/configuration.md`")


def test_every_section_and_key_appears() -> None:
    text = docgen.reference()
    for name, field in Settings.model_fields.items():
        if field.exclude:
            continue
        assert f"[{name}" in text, name
        model = field.annotation
        for key, sub in getattr(model, "model_fields", {}).items():
            assert f"| `{sub.alias or key}` |" in text, f"{name}.{key}"


def test_types_are_named_for_a_reader_and_sla_targets_are_described() -> None:
    text = docgen.reference()
    assert "Annotated" not in text and "timedelta" not in text
    sla = text.split("## `[sla.NAME]`", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in sla.splitlines() if line.startswith("| `")]
    assert [r[0] for r in rows] == ["| `first_response`", "| `next_response`", "| `resolution`"]
    for row in rows:
        assert row[1] == "duration (optional)" and row[3].strip(" |"), row
    # a duration's default is written as it would be in the file, and reads back the same
    assert '| `interval` | duration | `"1m"` |' in text
    assert '| `lookback` | duration | `"7d"` |' in text


def test_durations_are_written_as_the_config_file_takes_them() -> None:
    from datetime import timedelta

    from helpdesk.config.schedule import duration_text, parse_duration

    for value in (timedelta(seconds=90), timedelta(hours=1, minutes=30), timedelta(days=7),
                  timedelta(days=1, hours=12), timedelta(0)):
        assert parse_duration(duration_text(value)) == value
    assert duration_text(timedelta(seconds=90)) == "1m30s"
