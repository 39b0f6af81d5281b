"""What a run prints while it goes: one line per task for small steps, a running
count for wide foreach steps, the failing traceback once, and the run's outcome."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape

_PER_TASK_LIMIT = 8


class RunReporter:
    def __init__(self, console: Console | None = None) -> None:
        # No emoji codes: a step or user named like ":fire:" is printed as it is.
        self.console = console or Console(highlight=False, soft_wrap=True, emoji=False)
        self._expected: Counter[str] = Counter()
        self._done: Counter[str] = Counter()

    def _say(self, text: str) -> None:
        self.console.print(text)

    def warn(self, text: str) -> None:
        self._say(f"  [yellow]![/] {escape(text)}")

    def run_started(self, flow: str, run_id: str, user: str, metadata: str) -> None:
        self._say(
            f"[bold]{flow}[/] run [bold cyan]{run_id}[/] by {escape(user)} "
            f"[dim]({metadata} metadata)[/]"
        )

    def expect(self, step: str, count: int) -> None:
        self._expected[step] += count

    def _wide(self, step: str) -> bool:
        return self._expected[step] > _PER_TASK_LIMIT

    def task_started(self, step: str, task_id: str, attempt: int, catching: str = "") -> None:
        """`catching`: for @catch's fallback attempt, the failure it records."""
        if catching:
            self._say(f"  [yellow]↻[/] {step}/{task_id} @catch records {catching}")
        elif attempt:
            self._say(f"  [yellow]↻[/] {step}/{task_id} retry {attempt}")
        elif not self._wide(step):
            self._say(f"  [dim]▶ {step}/{task_id}[/]")

    def task_cloned(self, step: str, task_id: str, origin: str) -> None:
        self._done[step] += 1
        if not self._wide(step):
            self._say(f"  [blue]⧉[/] {step}/{task_id} cloned from {origin}")

    def task_output(self, step: str, task_id: str, text: str) -> None:
        """A task's output, each line after the task's name. Written to the console's
        file as it is, not rendered by rich (no markup, no wrapping): a step may print
        100,000 lines, which rich takes seconds to lay out."""
        lines = text.rstrip("\n").splitlines()
        if not lines:
            return
        prefix = f"{step}/{task_id}>"
        if self.console.is_terminal and not self.console.no_color:
            prefix = f"\x1b[2m{prefix}\x1b[22m"  # dim, as the other progress lines
        self.console.file.write("".join(f"    {prefix} {line}\n" for line in lines))
        self.console.file.flush()

    def task_finished(
        self, step: str, task_id: str, ok: bool, seconds: float, note: str = ""
    ) -> None:
        self._done[step] += 1
        if not ok:
            self._say(
                f"  [red]✗ {step}/{task_id}[/] failed after {seconds:.2f}s"
                f"{': ' + escape(note) if note else ''}"
            )
        elif not self._wide(step):
            self._say(f"  [green]✓[/] {step}/{task_id} {seconds:.2f}s{escape(note)}")
        else:
            done, total = self._done[step], self._expected[step]
            if done == total or done % max(1, total // 10) == 0:
                self._say(f"  [green]✓[/] {step}: {done}/{total} tasks done")

    def run_finished(
        self,
        flow: str,
        run_id: str,
        ok: bool,
        seconds: float,
        traceback_text: str = "",
        failed_at: str = "",
    ) -> None:
        if traceback_text:
            self._say(f"\n[red]Step {failed_at} failed:[/]\n{escape(traceback_text.rstrip())}\n")
        status = "[green]succeeded[/]" if ok else "[red]failed[/]"
        self._say(f"{flow}/{run_id} {status} in {seconds:.2f}s")
