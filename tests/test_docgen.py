"""docs/configuration.md is generated from the settings model; it must be current."""

from __future__ import annotations

from helpdesk import docgen
from helpdesk.config import Settings
from tests.helpers import REPO


def test_committed_reference_is_generated_output() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == docgen.reference(), (
        "docs/configuration.md is stale: run `python -m helpdesk.docgen > docs/configuration.md`")


def test_every_section_and_key_appears() -> None:
    text = docgen.reference()
    for name, field in Settings.model_fields.items():
        if field.exclude:
            continue
        assert f"[{name}" in text, name
        model = field.annotation
        for key, sub in getattr(model, "model_fields", {}).items():
            assert f"| `{sub.alias or key}` |" in text, f"{name}.{key}"
