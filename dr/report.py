"""Reports of verifications and drills: a verdict, the checks behind it, the figures; JSON + Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dr import proc


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    kind: str  # "verify-restore" | "drill-pitr"
    title: str
    stanza: str
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    finished: str = ""
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "stanza": self.stanza, "started": self.started,
                "finished": self.finished, "passed": self.passed, "reasons": self.reasons,
                "checks": [asdict(c) for c in self.checks], "figures": self.figures}

    def markdown(self) -> str:
        verdict = "ĐẠT / PASS" if self.passed else "KHÔNG ĐẠT / FAIL"
        lines = [f"# {self.title}", "", f"**Kết quả / Result: {verdict}**", "",
                 f"- stanza: `{self.stanza}`", f"- bắt đầu / started: {self.started}",
                 f"- kết thúc / finished: {self.finished}", ""]
        if not self.passed:
            lines += ["## Lý do / Reasons", "", *(f"- {r}" for r in self.reasons), ""]
        lines += ["## Kiểm tra / Checks", "", "| | Kiểm tra / Check | Chi tiết / Detail |", "|---|---|---|"]
        lines += [f"| {'✅' if c.ok else '❌'} | {c.name} | {c.detail.replace('|', '/')} |" for c in self.checks]
        if self.figures:
            lines += ["", "## Số đo / Figures", "", "| Đại lượng / Figure | Giá trị / Value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in self.figures.items()]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        self.finished = self.finished or datetime.now(UTC).isoformat(timespec="seconds")
        directory.mkdir(parents=True, exist_ok=True)
        proc.chown_postgres(directory)
        j = directory / f"{stem}.json"
        m = directory / f"{stem}.md"
        j.write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
        m.write_text(self.markdown())
        return j, m
