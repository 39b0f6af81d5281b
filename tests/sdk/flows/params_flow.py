"""Parameters spelled as Metaflow spells them, and docstrings with paragraphs."""

from ledgerflow import FlowSpec, Parameter, step


class ParamsFlow(FlowSpec):
    """Counts the genres of some movies.

    The second paragraph of the flow's docstring."""

    movie_data = Parameter("movie_data", default="movies.csv", help="Where the movies are")
    max_genres = Parameter("max_genres", default=5, help="How many genres")

    @step
    def start(self):
        """Reads the data.

        A second paragraph about the start step."""
        self.seen = (self.movie_data, self.max_genres)
        self.next(self.end)

    @step
    def end(self):
        pass


ParamsFlow()
