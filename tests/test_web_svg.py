"""The dashboard's charts (web/svg.py) on their own: what an empty one says."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from helpdesk.web import svg


def test_a_chart_over_time_with_nothing_in_it_says_so() -> None:
    def words(chart: str) -> list[str | None]:
        return [t.text for t in ET.fromstring(chart).iter("{http://www.w3.org/2000/svg}text")]

    none = "No SLA breaches in this range"
    assert none in words(svg.columns("SLA breaches", [("Dec 01", 0), ("Dec 02", None)],
                                     empty=none))
    assert none not in words(svg.columns("SLA breaches", [("Dec 01", 0), ("Dec 02", 1)],
                                         empty=none))
