"""What an ingest did, as figures: per file and in total, as text or as JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.pii import redact_texts


def _shown(texts: list[str]) -> list[str]:
    """Texts that come from the input (warnings quoting a value, names of unknown fields or of
    keys given twice), as a report or a log may show them: without anything that looks like a
    phone number or an e-mail address. Reports are printed, mailed and kept."""
    return redact_texts(texts)


def _shown_counts(counts: Counter[str]) -> dict[str, int]:
    shown: Counter[str] = Counter()
    for label, count in zip(_shown(list(counts)), counts.values(), strict=True):
        shown[label] += count  # two labels may now read the same
    return dict(sorted(shown.items()))


@dataclass(frozen=True)
class SkippedFile:
    """A file whose exact content an earlier ingest committed."""

    path: str
    ingested_by: str


@dataclass
class FileReport:
    path: str
    format: str
    sha256: str = ""
    bytes: int = 0  # the file's size as received: a file of another size is not a repeat
    encoding: str = "utf-8"  # the text's encoding, as read (a CSV may be cp1252 or utf-16)
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    unknown_fields: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    # Which reader read the file: "fast" (DuckDB reads and types it), or "exact" (the file
    # needed the reader that takes any layout; `read_note` says why, where the fast one tried).
    reader: str = "exact"
    read_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "encoding": self.encoding,
            "reader": self.reader,
            **({"read_note": self.read_note} if self.read_note else {}),
            "sha256": self.sha256,
            "bytes": self.bytes,
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_rejected": self.rows_rejected,
            "rejected_by_reason": _shown_counts(self.rejected_by_reason),
            "unknown_fields": sorted(set(_shown(sorted(self.unknown_fields)))),
            "warnings": _shown(self.warnings),
        }


@dataclass
class IngestReport:
    warehouse: str
    run_id: str
    pii: str = "pseudonymise"
    files: list[FileReport] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    sessions_new: int = 0
    sessions_updated: int = 0
    sessions_unchanged: int = 0
    rows_superseded: int = 0
    partitions_written: int = 0
    committed: bool = False

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_accepted(self) -> int:
        return sum(f.rows_accepted for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def reject_rate(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    @property
    def rejected_by_reason(self) -> Counter[str]:
        """Rejected rows by reason, as shown (see `_shown`)."""
        return Counter(_shown_counts(sum((f.rejected_by_reason for f in self.files), Counter())))

    @property
    def unknown_fields(self) -> list[str]:
        """Names of the fields the schema does not know, as shown (see `_shown`)."""
        return sorted(set(_shown(sorted(set().union(*(f.unknown_fields for f in self.files))))))

    @property
    def warnings(self) -> list[str]:
        """Every file's warnings, as shown (see `_shown`)."""
        return [f"{f.path}: {w}" for f in self.files for w in _shown(f.warnings)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "warehouse": self.warehouse,
            "run_id": self.run_id,
            "committed": self.committed,
            "pii": self.pii,
            "files": len(self.files),
            "files_skipped": [{"path": f.path, "ingested_by": f.ingested_by} for f in self.skipped],
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_rejected": self.rows_rejected,
            "reject_rate": round(self.reject_rate, 6),
            "sessions_new": self.sessions_new,
            "sessions_updated": self.sessions_updated,
            "sessions_unchanged": self.sessions_unchanged,
            "rows_superseded": self.rows_superseded,
            "partitions_written": self.partitions_written,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "unknown_fields": self.unknown_fields,
            "warnings": self.warnings,
            "per_file": [f.to_dict() for f in self.files],
        }

    def manifest_entry(self, finished: datetime) -> dict[str, Any]:
        """What the manifest keeps of this ingest."""
        summary = self.to_dict()
        keep = ("rows_read", "rows_accepted", "rows_rejected", "sessions_new")
        return {
            "run_id": self.run_id,
            "finished": finished.isoformat(),
            **{k: summary[k] for k in (*keep, "sessions_updated", "sessions_unchanged")},
            "files": [
                {k: f[k] for k in ("path", "sha256", "bytes", "format", *keep[:3])}
                for f in summary["per_file"]
            ],
        }

    def to_text(self) -> str:
        skipped = [
            f"Skipped {f.path}: the same content was ingested by run {f.ingested_by} "
            "(--force ingests it again)"
            for f in self.skipped
        ]
        if not self.files:
            return "\n".join([*skipped, f"Nothing to do: {self.warehouse} is unchanged."])
        lines = [
            *skipped,
            f"Ingested {len(self.files)} file(s) into {self.warehouse}"
            + ("" if self.committed else " -- NOT committed, the warehouse is unchanged"),
            f"  rows read      {self.rows_read:>10,}",
            f"  accepted       {self.rows_accepted:>10,}   "
            f"new {self.sessions_new:,} / updated {self.sessions_updated:,} / "
            f"unchanged {self.sessions_unchanged:,} / superseded in this run "
            f"{self.rows_superseded:,}",
            f"  rejected       {self.rows_rejected:>10,}   ({self.reject_rate:.1%})",
        ]
        for reason, count in self.rejected_by_reason.most_common():
            lines.append(f"    {count:>10,}  {reason}")
        if unknown := self.unknown_fields:
            # An export may carry thousands of field names; the JSON report lists every one.
            more = f" ... and {len(unknown) - 20:,} more (see --json)" if len(unknown) > 20 else ""
            lines.append(f"  unknown fields kept in extra_fields: {', '.join(unknown[:20])}{more}")
        if self.warnings:
            lines.append(f"  warnings ({len(self.warnings)}):")
            lines.extend(f"    {w}" for w in self.warnings[:20])
            if len(self.warnings) > 20:
                lines.append(f"    ... and {len(self.warnings) - 20} more (see --json)")
        if self.rows_rejected:
            lines.append(f"  rejected rows and their reasons: {self.warehouse}/rejects/")
        return "\n".join(lines)
