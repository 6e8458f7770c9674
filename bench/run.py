"""`python -m bench.run`: every benchmark figure in one run, printed and written to
bench/RESULTS.md.

Each figure runs in a fresh child process of this one, so its peak memory and event loop are
its own; the parent prints the machine, collects the rows and writes the table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.harness import DEFAULT_POSTGRES, SQLITE, Database, Outcome, Row, clean_environment

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
ORDER = ("ack", "declare", "postmortem", "reminders", "throughput", "tiers", "stored")
FIGURE_TIMEOUT = 900


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark the bot over HTTP against the fake Slack and print the results.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks that everything runs (~20 s)"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=DEFAULT_POSTGRES,
        help="PostgreSQL server for the PostgreSQL figures; bench_* databases are created "
        "and dropped there (default: %(default)s)",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="SQLite only; skip the PostgreSQL figures"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=ORDER,
        metavar="FIGURE",
        help=f"run only this figure (repeatable): {', '.join(ORDER)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the Markdown results (default: {RESULTS.relative_to(ROOT)} for a "
        "full run; a --quick run writes nothing unless given)",
    )
    # One figure in this process, for the parent (not for people).
    parser.add_argument("--child", choices=ORDER, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--db", choices=("sqlite", "postgres"), default="sqlite", help=argparse.SUPPRESS
    )
    parser.add_argument("--postgres-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- the child: one figure ---------------------------------------------------------------


def run_child(args: argparse.Namespace) -> int:
    from bench.figures import FIGURES, Sizes
    from bench.harness import BOT_WARNINGS
    from bench.probe import Warnings

    logging.basicConfig(level=logging.WARNING, format="    %(levelname)s %(name)s: %(message)s")
    sizes = Sizes.from_json(json.loads(args.sizes))
    db = Database(args.db, args.postgres_url or None)
    with Warnings() as warned:
        outcome = asyncio.run(FIGURES[args.child](sizes, db))
    outcome.say(f"fake Slack and load generator: {warned.summary()}")
    bot_side = Warnings()
    bot_side.seen.update(BOT_WARNINGS)
    outcome.say(f"bot process: {bot_side.summary()}")
    payload = {"rows": [vars(r) for r in outcome.rows], "details": outcome.details}
    args.result.write_text(json.dumps(payload), encoding="utf-8")
    leftover = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon]
    if len(leftover) > 1:
        print(f"  note: threads still running at exit: {leftover[1:]}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # The results are safe; a worker thread a library left behind must not hold up the run.
    os._exit(0)


# --- the parent: all figures -------------------------------------------------------------


def machine_lines(postgres: str | None) -> list[tuple[str, str]]:
    from bench.harness import postgres_version
    from bench.machine import details

    lines = details()
    lines.append(("Revision", revision()))
    lines.append(("Load average before the run", load()))
    if postgres:
        try:
            lines.append(("PostgreSQL", asyncio.run(postgres_version(postgres))))
        except Exception as e:  # reachable a moment ago; say so rather than fail
            lines.append(("PostgreSQL", f"version unknown ({type(e).__name__})"))
    return lines


def load() -> str:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def revision() -> str:
    """The commit measured, marked when the bot or the fake Slack differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(  # noqa: S603 - fixed arguments
            ["git", *args],  # noqa: S607 - git from PATH, like a developer runs it
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short=10", "HEAD")
        changed = git("status", "--porcelain", "--", "bot", "bot/fakeslack")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + (" + uncommitted changes to bot/ or bot/fakeslack/" if changed else "")


def code_fingerprint() -> str:
    """A hash of the code the figures exercise: the bot (not its command line, which they do
    not run), the fake Slack, the benchmarks."""
    digest = hashlib.sha256()
    files = [*(ROOT / "bot").rglob("*.py"), *(ROOT / "bot" / "fakeslack").rglob("*.json")]
    files = [f for f in files if f != ROOT / "bot" / "__main__.py"]
    files += (ROOT / "bench").glob("*.py")
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_figure(name: str, sizes_json: str, db: Database) -> tuple[Outcome, float]:
    """One figure on one database, in a child process."""
    with tempfile.TemporaryDirectory(prefix="incident-bench-") as tmp:
        result = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "bench.run", "--child", name, "--db", db.kind]
        command += ["--sizes", sizes_json, "--result", str(result)]
        if db.server:
            command += ["--postgres-url", db.server]
        started = time.monotonic()
        try:
            done = subprocess.run(command, cwd=ROOT, check=False, timeout=FIGURE_TIMEOUT)  # noqa: S603
            why = f"exit {done.returncode}" if done.returncode else ""
        except subprocess.TimeoutExpired:
            why = f"no result after {FIGURE_TIMEOUT} s"
        elapsed = time.monotonic() - started
        if why or not result.exists():
            outcome = Outcome()
            outcome.row(name, f"(did not finish on {db.label})", f"failed: {why or 'no result'}")
            return outcome, elapsed
        data = json.loads(result.read_text(encoding="utf-8"))
    return Outcome([Row(**r) for r in data["rows"]], list(data["details"])), elapsed


def table(rows: Sequence[Row]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| Figure | Measure | Result | Notes |", "| --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {cell(r.figure)} | {cell(r.measure)} | {cell(r.result)} | {cell(r.notes)} |"
        )
    return lines


def targets(rows: Sequence[Row]) -> list[str]:
    """The rows that carry a target, met or missed, in one list."""
    marked = [r for r in rows if "✅" in r.result or "❌" in r.result]
    if not marked:
        return []
    met = sum(1 for r in marked if "✅" in r.result)
    lines = [f"## Targets: {met} of {len(marked)} met", ""]
    for r in marked:
        lines.append(f"- {r.figure}, {r.measure}: {r.result}")
    return [*lines, ""]


def report(
    *,
    when: datetime,
    quick: bool,
    machine: Sequence[tuple[str, str]],
    postgres_note: str,
    outcomes: Sequence[tuple[str, Outcome, float]],
    total: float,
) -> list[str]:
    rows = [r for _, outcome, _ in outcomes for r in outcome.rows]
    command = "python -m bench.run" + (" --quick" if quick else "")
    lines = [
        "# Benchmark results",
        "",
        f"Measured {when:%Y-%m-%d %H:%M} UTC with `{command}` in {total:.0f} s"
        + (" (tiny sizes: a smoke run, not figures to compare)." if quick else "."),
        "The bot runs in a process of its own; the fake Slack and the load generator run in "
        "another, so memory, event-loop stalls and garbage collections are the bot's alone. "
        "See bench/README.md for what each figure measures. Other work may share the "
        "machine's cores during a run; the load averages before and after say how busy it "
        "was, and figures are best compared within one run.",
        "",
        *(f"- **{label}:** {value}" for label, value in machine),
        f"- **Databases:** SQLite file; {postgres_note}",
        "",
        *table(rows),
        "",
        *targets(rows),
        "## Details",
        "",
    ]
    for name, outcome, elapsed in outcomes:
        lines.append(f"**{name}** ({elapsed:.0f} s)")
        lines.append("")
        lines += [f"- {d}" for d in outcome.details] or ["- (no details)"]
        lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    clean_environment()
    if args.child:
        return run_child(args)

    from bench.figures import FULL, QUICK
    from bench.harness import postgres_problem

    when = datetime.now(UTC)
    sizes = QUICK if args.quick else FULL
    names = [n for n in ORDER if not args.only or n in args.only]
    postgres: str | None = None
    if args.no_postgres:
        postgres_note = postgres_skip = "PostgreSQL skipped (--no-postgres)."
    else:
        shown = make_url(args.postgres).render_as_string(hide_password=True)
        problem = asyncio.run(postgres_problem(args.postgres))
        if problem is None:
            postgres = args.postgres
            postgres_note = f"PostgreSQL at {shown}."
            postgres_skip = ""
        else:
            postgres_skip = f"PostgreSQL at {shown} is unreachable ({problem})"
            postgres_note = f"{postgres_skip}: its figures are skipped."
    code_at_start = code_fingerprint()
    machine = machine_lines(postgres)

    quick = " (--quick)" if args.quick else ""
    print(f"Incident bot benchmarks, {when:%Y-%m-%d %H:%M} UTC{quick}")
    for label, value in machine:
        print(f"  {label}: {value}")
    print(f"  Databases: SQLite; {postgres_note}", flush=True)
    if postgres_skip and not args.no_postgres:
        print(f"SKIPPING the PostgreSQL figures: {postgres_skip}.", flush=True)

    from bench.figures import PER_DATABASE, skipped

    jobs: list[tuple[str, Database]] = []
    for name in names:
        jobs.append((name, SQLITE))
        if name in PER_DATABASE:
            jobs.append((name, Database("postgres", postgres)))
    started = time.monotonic()
    outcomes: list[tuple[str, Outcome, float]] = []
    for i, (name, db) in enumerate(jobs, 1):
        title = f"{name} ({db.label})"
        if db.kind == "postgres" and not db.server:
            outcomes.append((title, skipped(name, sizes, db, postgres_skip), 0.0))
            print(f"[{i}/{len(jobs)}] {title} skipped: {postgres_skip}", flush=True)
            continue
        print(f"[{i}/{len(jobs)}] {title} …", flush=True)
        outcome, elapsed = run_figure(name, json.dumps(sizes.to_json()), db)
        print(f"[{i}/{len(jobs)}] {title} done in {elapsed:.1f} s", flush=True)
        outcomes.append((title, outcome, elapsed))
    total = time.monotonic() - started
    # Other people's work shares the cores; how busy the machine was is part of the result.
    machine = [*machine, ("Load average after the run", load())]
    if code_fingerprint() != code_at_start:
        # Someone changed the code while the figures ran: they do not describe one version.
        warning = (
            "the measured code (the bot, the fake Slack or the benchmarks) changed during the "
            "run; the figures describe two versions"
        )
        print(f"WARNING: {warning}", flush=True)
        machine = [*machine, ("Warning", warning)]

    rows = [r for _, outcome, _ in outcomes for r in outcome.rows]
    print()
    print("\n".join(table(rows)))
    print()
    print("\n".join(targets(rows)))
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        text = report(
            when=when,
            quick=args.quick,
            machine=machine,
            postgres_note=postgres_note,
            outcomes=outcomes,
            total=total,
        )
        out.write_text("\n".join(text), encoding="utf-8")
        print(f"\nwritten to {os.path.relpath(out, Path.cwd())} ({total:.0f} s in all)")
    else:
        print(f"\n({total:.0f} s in all; --quick writes no results file unless --out is given)")
    failed = any(r.result.startswith("failed") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
