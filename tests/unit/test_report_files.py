"""The report's files without a server: the notes never depend on the data; the PDF says plainly when
the server lacks its font."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from core_app.domain import periods
from core_app.repo.reports import FORMS
from core_app.web import report_files

UNIT = {"code": "T12", "name": "Lai Châu"}
PERIOD = periods.parse("2026-Q1", None, None, None, date(2026, 12, 2))


def _table(form: str, n: int) -> dict:
    cols = FORMS[form].columns
    return {"total": {c.key: n for c in cols},
            "rows": [{"code": "X03388", "name": "Phường Đoàn Kết", "direct": False, "former": False,
                      "values": {c.key: n for c in cols}}]}


@pytest.mark.parametrize("form", list(FORMS))
def test_the_notes_name_the_circular_and_the_rule_and_never_the_data(form):
    notes = report_files.notes(FORMS[form], PERIOD, UNIT, 0, "vi")
    text = " ".join(notes)
    assert f"Biểu số {FORMS[form].number}" in text and "Thông tư số 01/2024/TT-TTCP" in text
    assert "15/12/2025" in text and "14/03/2026" in text and "(Thường)" in text
    # Notes take no figures: whatever a unit holds, a viewer reads the same sentences.
    assert report_files.notes(FORMS[form], PERIOD, UNIT, 0, "vi") == notes


def test_every_column_has_its_number_in_the_checks():
    for form in FORMS.values():
        for line in report_files.identities(form):
            assert line.startswith("(") and " = " in line
        assert sum(len(cols) for _, cols in report_files.runs(form)) == len(form.columns)


def test_the_pdf_without_its_font_says_so(tmp_path: Path):
    with pytest.raises(report_files.FontMissing):
        report_files.pdf(FORMS["kn"], _table("kn", 1), PERIOD, UNIT, [], lambda *a: "", "vi", tmp_path)


def test_the_pdf_and_xlsx_link_only_figures_that_are_not_zero():
    links: list[tuple] = []
    body = report_files.pdf(FORMS["tc"], _table("tc", 0), PERIOD, UNIT, ["ghi chú"],
                            lambda *a: links.append(a) or "https://x/", "vi",
                            Path("/usr/share/fonts/truetype/dejavu"))
    assert body.startswith(b"%PDF-") and links == []
    report_files.xlsx(FORMS["tc"], _table("tc", 2), PERIOD, UNIT, ["ghi chú"],
                      lambda *a: links.append(a) or "https://x/", "en")
    assert len(links) == 2 * len(FORMS["tc"].columns)
