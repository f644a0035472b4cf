"""Read `segments/*.yaml` into a SegmentSet; check references between segments and cycles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lojal.errors import Problem, ProjectError
from lojal.paths import Paths
from lojal.segments.model import InSegment, Segment, SegmentParser, referenced_segments
from lojal.yamlfile import did_you_mean, read_yaml


@dataclass(frozen=True)
class SegmentSet:
    """Valid segments, ordered so that every segment comes after the segments it refers to."""

    segments: dict[str, Segment] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Segment:
        return self.segments[name]

    def __iter__(self):
        return iter(self.segments.values())

    def __len__(self) -> int:
        return len(self.segments)

    @property
    def names(self) -> list[str]:
        return list(self.segments)


def segment_files(paths: Paths) -> list[Path]:
    return sorted(paths.segments_dir.glob("*.yaml"))


def parse_files(paths: Paths) -> tuple[dict[str, Segment], list[Problem]]:
    """Every file parsed; the segments that parsed cleanly and all problems found."""
    segments: dict[str, Segment] = {}
    problems: list[Problem] = []
    if not paths.segments_dir.is_dir():
        return {}, [Problem("segments", None, None, "missing folder: create segments/ with one <name>.yaml per segment")]
    for path in segment_files(paths):
        shown = paths.relative(path)
        if is_blank(path):
            problems.append(Problem(shown, 1, 1, "file is empty: a segment needs name, description and where "
                                    "(see docs/segments.md), or delete the file"))
            continue
        try:
            doc = read_yaml(path, shown)
        except ProjectError as exc:
            problems.extend(exc.problems)
            continue
        parser = SegmentParser(doc)
        segment = parser.segment(path.stem)
        problems.extend(parser.problems)
        if segment is not None:
            segments[segment.name] = segment
    for path in sorted(paths.segments_dir.glob("*.yml")):
        problems.append(Problem(paths.relative(path), None, None, "segment files end in .yaml: rename it to "
                                f"{path.stem}.yaml"))
    return segments, problems


def is_blank(path: Path) -> bool:
    """Nothing but blank lines and comments (unreadable files are left to read_yaml to report)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines())


def reference_problems(segments: dict[str, Segment], known: set[str]) -> list[Problem]:
    """in_segment / not_in_segment naming a segment that has no file."""
    problems = []
    for segment in segments.values():
        for ref in referenced_segments(segment.where):
            if ref.segment not in known:
                hint = did_you_mean(ref.segment, sorted(known)) or f": create segments/{ref.segment}.yaml or fix the name"
                problems.append(Problem(segment.path, ref.line, ref.col, f"unknown segment '{ref.segment}'{hint}"))
    return problems


def evaluation_order(segments: dict[str, Segment]) -> tuple[list[str], list[Problem]]:
    """Names in dependency order (depth-first), and one problem per reference that closes a cycle."""
    order: list[str] = []
    state: dict[str, str] = {}
    problems: list[Problem] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "visiting"
        for ref in referenced_segments(segments[name].where):
            if ref.segment not in segments:
                continue
            if state.get(ref.segment) == "visiting":
                cycle = trail[trail.index(ref.segment):] + [name, ref.segment] if ref.segment != name else [name, name]
                problems.append(cycle_problem(segments[name], ref, cycle))
            elif ref.segment not in state:
                visit(ref.segment, trail + [name])
        state[name] = "done"
        order.append(name)

    for name in sorted(segments):
        if name not in state:
            visit(name, [])
    return order, problems


def cycle_problem(segment: Segment, ref: InSegment, cycle: list[str]) -> Problem:
    return Problem(segment.path, ref.line, ref.col,
                   f"segments refer to each other in a cycle: {' -> '.join(cycle)}; "
                   "a segment cannot depend on itself, remove one of these references")


def check_segments(paths: Paths) -> list[Problem]:
    """Every problem in every segment file (never raises for bad files)."""
    return build_segment_set(paths)[1]


def load_segments(paths: Paths) -> SegmentSet:
    """All segments, or ProjectError listing every problem across all files."""
    segment_set, problems = build_segment_set(paths)
    if problems:
        raise ProjectError(problems)
    return segment_set


def build_segment_set(paths: Paths) -> tuple[SegmentSet, list[Problem]]:
    segments, problems = parse_files(paths)
    known = segments.keys() | {p.stem for p in segment_files(paths)}
    problems += reference_problems(segments, known)
    order, cycle_problems = evaluation_order(segments)
    problems += cycle_problems
    ordered = SegmentSet({name: segments[name] for name in order})
    return ordered, sorted(set(problems), key=lambda p: (p.path, p.line or 0, p.col or 0, p.message))
