"""Quiet `pulumi up` output for scripts/up: what changed, grouped, and every message once.

Reads what `pulumi up --suppress-outputs --suppress-progress` prints (non-interactive) and keeps:
- the header, Pulumi's `Resources:` summary and the duration, as they are;
- one line per resource type and operation instead of two per resource (`creating` then `created`):
  ` +  supabase-access:index:RowLevelSecurity ×10 created: projects-rls, tasks-rls, …`;
- the Diagnostics with each message once: a message a resource logged at check and again at apply,
  or the same warning from several resources, is said once (under every resource that said it);
  the messages of one resource type are listed together under one heading;
- errors and anything it does not recognise, at once and as they are.
Lines that only say a resource was read back by the refresh or is still running go. On a terminal
one line, rewritten in place, counts the finished steps while `up` runs.

Usage: pulumi up ... | python -m review.quiet_up
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

# ` +  type name created (0.04s) message` (op: + - ~ +- -+ +> = ...; the status ends in -ed when done).
_RESOURCE = re.compile(
    r"^ (?P<op>[-+~=<>]{1,2}) +(?P<type>[^ ]+) (?P<name>[^ ]+) (?P<status>[a-z-]+)"
    r"(?: \((?P<time>[0-9.]+s)\))?(?P<diff> \[diff: [^\]]*\])?(?P<rest>.*)$"
)
# A resource's message line without a step (`    type name  warning: ...`), or a refresh's read.
_MESSAGE_ONLY = re.compile(r"^    [^ ]+:[^ ]+ [^ ]+ ( |running|refreshing|refresh)")
_REFRESH = re.compile(r"^ *~ +[^ ]+ [^ ]+ refresh(ing)?( \([0-9.]+s\))? *$")
_OPERATION = re.compile(r"^(Previewing update|Updating|Previewing destroy|Destroying|Previewing refresh|Refreshing) \(")
_DIAGNOSTIC_HEADER = re.compile(r"^  (?P<type>[^ ]+) \((?P<name>[^)]+)\):$")
DONE = frozenset({"created", "updated", "deleted", "replaced", "imported", "read", "discarded", "refreshed"})
# Listed in full up to this many names; beyond, the first ones and how many more.
NAMES_SHOWN = 6


@dataclass
class _Group:
    op: str
    type: str
    status: str
    names: list[str] = field(default_factory=list)

    def line(self) -> str:
        count = f" ×{len(self.names)}" if len(self.names) > 1 else ""
        return f" {self.op:<2} {self.type}{count} {self.status}: {_names(self.names)}"


@dataclass
class _Diagnostics:
    """Messages per resource type, in order, each said once: type -> message -> resources that said it."""

    by_type: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # Messages written in an earlier part (the preview's), not said again.
    written: set[str] = field(default_factory=set)

    def add(self, type_: str, name: str, message: str) -> None:
        if message in self.written:
            return
        for first, said in self.by_type.items():
            if message in said:
                # Said already: the resource joins its heading (with its type when another).
                who = name if first == type_ else f"{type_.rsplit(':', 1)[-1]} {name}"
                if who not in said[message]:
                    said[message].append(who)
                return
        self.by_type.setdefault(type_, {})[message] = [name]

    def lines(self) -> Iterator[str]:
        """The Diagnostics heard so far, once; then they count as written."""
        if not self.by_type:
            return
        yield "Diagnostics:"
        for type_, said in self.by_type.items():
            yield f"  {type_} ({_names(list(dict.fromkeys(n for names in said.values() for n in names)))}):"
            yield from (f"    {message}" for message in said)
            yield ""
            self.written.update(said)
        self.by_type.clear()


def _names(names: list[str]) -> str:
    more = f", … (+{len(names) - NAMES_SHOWN})" if len(names) > NAMES_SHOWN else ""
    return ", ".join(names[:NAMES_SHOWN]) + more


def quiet(lines: Iterable[str], write: Callable[[str], None], progress: Callable[[str], None] | None = None) -> None:
    """Write the quiet form of `lines` (pulumi up's output, one line each, no newline) with `write`."""
    groups: dict[tuple[str, str, str], _Group] = {}
    diagnostics = _Diagnostics()
    section = "steps"
    current: tuple[str, str] | None = None
    done = 0

    def flush_steps() -> None:
        for group in groups.values():
            write(group.line())
        groups.clear()

    for line in lines:
        line = line.rstrip("\n")
        if _OPERATION.match(line):
            # `pulumi up` previews first, then updates: each part starts over (messages stay said once).
            if section == "diagnostics":
                for kept in diagnostics.lines():
                    write(kept)
            flush_steps()
            section, current = "steps", None
            write(line)
            continue
        if section == "steps":
            if line == "Diagnostics:" or line.startswith("Resources:") or line.startswith("Outputs:"):
                if progress is not None:
                    progress("")
                flush_steps()
                section = "diagnostics" if line == "Diagnostics:" else "summary"
                if section == "summary":
                    write(line)
                continue
            if _REFRESH.match(line) or _MESSAGE_ONLY.match(line):
                continue
            step = _RESOURCE.match(line)
            if step is None:
                write(line)
                continue
            status = step["status"]
            if status in DONE:
                key = (step["op"], step["type"], status)
                groups.setdefault(key, _Group(*key)).names.append(step["name"] + (step["diff"] or ""))
                done += 1
                if progress is not None:
                    progress(f"  … {done} step(s) done")
            elif "failed" in step["rest"] or "error:" in step["rest"]:
                write(line)
            continue
        if section == "diagnostics":
            header = _DIAGNOSTIC_HEADER.match(line)
            if header is not None:
                current = (header["type"], header["name"])
            elif line.startswith("Resources:") or line.startswith("Outputs:"):
                for kept in diagnostics.lines():
                    write(kept)
                section = "summary"
                write(line)
            elif line.startswith("    ") and current is not None:
                diagnostics.add(current[0], current[1], line.strip())
            elif line.strip():
                write(line)
            continue
        write(line)
    flush_steps()
    if section == "diagnostics":
        for kept in diagnostics.lines():
            write(kept)


def main() -> None:
    terminal = sys.stdout.isatty()

    def write(line: str) -> None:
        sys.stdout.write(("\r\033[K" if terminal else "") + line + "\n")
        sys.stdout.flush()

    def progress(text: str) -> None:
        # Rewritten in place on a terminal; never in a log.
        sys.stdout.write("\r\033[K" + text)
        sys.stdout.flush()

    quiet(sys.stdin, write, progress if terminal else None)


if __name__ == "__main__":
    main()
