"""The runs page's filters and sort, read from the URL's query (so a view is a bookmark)
and turned into ListRuns requests.

The service filters by flow, tags (all must match), status and start time, newest
first. What it does not offer is done here, over its pages: text in the flow name or
run id (a substring, any case), and a sort by another column. A text search reads page
after page until it has a page of matches (at most SCAN_LIMIT runs a request; "Older
runs" goes on from the very run it stopped at); another sort reads the newest
SORT_LIMIT matching runs and sorts those (the page says so when there are more). At
millions of runs both would want the service to do them (a name filter and an ORDER BY
in ListRuns).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ledgerflow.metadata_client import MetadataClient
from ledgerflow.ui import model
from ledgerflow.v1 import query_service_pb2, records_pb2

PAGE = 50
# The most runs one request of a text search reads before it shows what it found, in
# pages of SEARCH_PAGE.
SCAN_LIMIT = 2000
SEARCH_PAGE = 200
# The most runs a sort by another column than "started" reads and sorts.
SORT_LIMIT = 2000

STATUS_NAMES = model.STATUS
STATUSES = model.STATUS_VALUES


def _run_id_key(run: records_pb2.Run) -> tuple[int, int, str]:
    # Run ids are numbers as text: 9 before 10.
    text = run.run_id
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _seconds(run: records_pb2.Run) -> float:
    return model.seconds_between(run.created_at, run.finished_at) or 0.0


# The sortable columns: each one's key and the order a first click on its header asks for.
COLUMNS: dict[str, tuple[Callable[[records_pb2.Run], Any], str]] = {
    "flow": (lambda run: (run.flow_name.lower(), run.flow_name), "asc"),
    "run": (_run_id_key, "desc"),
    "status": (lambda run: STATUS_NAMES.get(run.status, "unknown"), "asc"),
    "started": (lambda run: (run.created_at.seconds, run.created_at.nanos), "desc"),
    "duration": (_seconds, "desc"),
}
DEFAULT_SORT = ("started", "desc")


@dataclass(frozen=True)
class RunsQuery:
    """What the runs page shows: the filters, the sort and the page, as in the URL."""

    flow: str = ""
    user: str = ""
    tags: tuple[str, ...] = ()
    status: str = ""
    # Text in the flow name or the run id (any case).
    text: str = ""
    # As typed (ISO 8601; no zone: UTC), and parsed.
    after_text: str = ""
    before_text: str = ""
    after: datetime | None = None
    before: datetime | None = None
    sort: str = DEFAULT_SORT[0]
    order: str = DEFAULT_SORT[1]
    page: str = ""
    # What in the query could not be read, each said to the user.
    problems: tuple[str, ...] = field(default=())

    @classmethod
    def from_query(cls, params: Any) -> RunsQuery:
        """From a request's query params (a multi-dict: `tag` may repeat, and each value
        may hold several tags, one a line, as the form's text box sends them)."""

        def one(name: str) -> str:
            return str(params.get(name, "")).strip()

        problems = []
        tags: list[str] = []
        for value in params.getlist("tag"):
            for line in str(value).splitlines():
                if line.strip() and line.strip() not in tags:
                    tags.append(line.strip())
        status = one("status")
        if status and status not in STATUSES:
            problems.append(f"status {status!r} is none of {', '.join(STATUSES)}")
            status = ""
        times: dict[str, datetime | None] = {}
        for name, words in (("after", "Started after"), ("before", "Started before")):
            text = one(name)
            times[name] = None
            if text:
                try:
                    times[name] = parse_time(text)
                except ValueError:
                    problems.append(
                        f"{words}: {text!r} is not a time such as 2026-11-27 or "
                        "2026-11-27T09:30 (UTC unless it names a zone, e.g. +02:00)"
                    )
        after, before = times["after"], times["before"]
        if after and before and after >= before:
            problems.append("Started after must be earlier than Started before")
        sort, order = one("sort") or DEFAULT_SORT[0], one("order")
        if sort not in COLUMNS:
            problems.append(f"cannot sort by {sort!r}: sort by {', '.join(COLUMNS)}")
            sort = DEFAULT_SORT[0]
        if order not in ("asc", "desc"):
            order = COLUMNS[sort][1]
        return cls(
            flow=one("flow"), user=one("user"), tags=tuple(tags), status=status,
            text=one("q"), after_text=one("after"), before_text=one("before"),
            after=after, before=before, sort=sort, order=order, page=one("page"),
            problems=tuple(problems),
        )  # fmt: skip

    @property
    def sorted_here(self) -> bool:
        """Whether the sort is done here (the service's own order is newest first)."""
        return (self.sort, self.order) != DEFAULT_SORT

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The query's params (without the defaults), with `changes`."""
        shown = replace(self, **changes)
        pairs = [(name, getattr(shown, attr)) for name, attr in (
            ("flow", "flow"), ("user", "user"), ("q", "text"), ("status", "status"),
            ("after", "after_text"), ("before", "before_text"),
        )]  # fmt: skip
        pairs += [("tag", tag) for tag in shown.tags]
        if (shown.sort, shown.order) != DEFAULT_SORT:
            pairs += [("sort", shown.sort), ("order", shown.order)]
        pairs.append(("page", shown.page))
        return [(name, value) for name, value in pairs if value]

    def url(self, **changes: Any) -> str:
        """This view's query string ("?..."), with `changes`: every value URL-encoded."""
        return "?" + urllib.parse.urlencode(self.params(**changes))

    def sort_url(self, column: str) -> str:
        """The link of a column's header: sorts by it (the other way when it already
        does), from the first page."""
        if column == self.sort:
            order = "asc" if self.order == "desc" else "desc"
        else:
            order = COLUMNS[column][1]
        return self.url(sort=column, order=order, page="")

    def aria_sort(self, column: str) -> str:
        if column != self.sort:
            return "none"
        return "ascending" if self.order == "asc" else "descending"

    def matches(self, run: records_pb2.Run) -> bool:
        text = self.text.casefold()
        return not text or text in run.flow_name.casefold() or text in run.run_id.casefold()

    def request(self, page_size: int, token: str = "") -> query_service_pb2.ListRunsRequest:
        """The ListRuns request for what the service filters by itself."""
        tags = [f"user:{self.user}"] if self.user else []
        tags += [tag for tag in self.tags if tag not in tags]
        request = query_service_pb2.ListRunsRequest(
            flow_name=self.flow, tags=tags,
            statuses=[STATUSES[self.status]] if self.status else [],
        )  # fmt: skip
        if self.after is not None:
            request.created_after.FromDatetime(self.after)
        if self.before is not None:
            request.created_before.FromDatetime(self.before)
        request.page.page_size = page_size
        request.page.page_token = token
        return request


@dataclass
class RunsPage:
    runs: list[records_pb2.Run]
    # The `page` value of the next page ("" on the last).
    next_page: str
    # Said above the table: how far a search or a sort read.
    notes: list[str] = field(default_factory=list)


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time; without a zone, UTC. ValueError when it is none."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def list_runs(metadata: MetadataClient, query: RunsQuery) -> RunsPage:
    """A page of the runs the query asks for."""
    if query.problems:
        return RunsPage([], "")
    if query.sorted_here:
        return _sorted_page(metadata, query)
    if not query.text:
        answer = metadata.list_runs(query.request(PAGE, query.page))
        return RunsPage(list(answer.runs), answer.page.next_page_token)
    return _search(metadata, query)


def _search(metadata: MetadataClient, query: RunsQuery) -> RunsPage:
    """A text search over the service's pages, newest first, until a page of matches
    (or SCAN_LIMIT runs read). Its `page` is "SKIP:TOKEN": the service's page TOKEN, of
    which the first SKIP runs were shown already."""
    skip_text, colon, token = query.page.partition(":")
    skip = int(skip_text) if colon and skip_text.isdigit() else 0
    token = token if colon else query.page
    found: list[records_pb2.Run] = []
    read = 0
    while True:
        answer = metadata.list_runs(query.request(SEARCH_PAGE, token))
        for position, run in enumerate(answer.runs[skip:], start=skip):
            read += 1
            if query.matches(run):
                found.append(run)
            if len(found) == PAGE:
                if position + 1 < len(answer.runs):
                    return RunsPage(found, f"{position + 1}:{token}")
                following = answer.page.next_page_token
                return RunsPage(found, f"0:{following}" if following else "")
        token, skip = answer.page.next_page_token, 0
        if not token:
            return RunsPage(found, "")
        if read >= SCAN_LIMIT:
            note = f"Searched {read:,} runs: Older runs searches on."
            return RunsPage(found, f"0:{token}", [note])


def _sorted_page(metadata: MetadataClient, query: RunsQuery) -> RunsPage:
    runs, token = model.read_pages(metadata.list_runs, query.request(1000), "runs", SORT_LIMIT)
    runs = runs[:SORT_LIMIT]
    notes = []
    if token:
        notes.append(f"Sorted the newest {len(runs):,} runs that match; narrow the filters "
                     "(e.g. a time range) to sort older ones.")  # fmt: skip
    key = COLUMNS[query.sort][0]
    matching = sorted((r for r in runs if query.matches(r)), key=key,
                      reverse=query.order == "desc")  # fmt: skip
    start = int(query.page) if query.page.isdigit() else 0
    end = start + PAGE
    return RunsPage(matching[start:end], str(end) if end < len(matching) else "", notes)
