"""Parameters, IncludeFile, current, @retry, @catch, @resources, merge_artifacts and a
nested foreach, in one flow."""

import os

from ledgerflow import (
    FlowSpec,
    IncludeFile,
    JSONType,
    Parameter,
    catch,
    current,
    resources,
    retry,
    step,
)


class FeaturesFlow(FlowSpec):
    """Exercises most of the SDK."""

    alpha = Parameter("alpha", default=0.5, help="a float with a default")
    rounds = Parameter("rounds", type=int, required=True, help="a required int")
    config = Parameter("config", type=JSONType, default='{"k": 1}')
    notes = IncludeFile("notes", help="a text file stored with the run")

    @resources(cpu=2, memory=512)
    @step
    def start(self):
        self.who = [current.flow_name, current.run_id, current.step_name, current.username]
        self.sizes = [[1, 2], [3, 4, 5]]
        self.shared = "same everywhere"
        self.next(self.outer, foreach="sizes")

    @step
    def outer(self):
        self.row = self.input
        self.next(self.inner, foreach="row")

    @retry(times=2, minutes_between_retries=0)
    @step
    def inner(self):
        marker = os.path.join(os.environ["MARKER_DIR"], f"inner-{self.input}")
        if not os.path.exists(marker):  # fail the first attempt of every task
            open(marker, "w").close()
            raise RuntimeError("first attempt fails")
        self.value = self.input * 10
        self.attempt_seen = current.retry_count
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.row_total = sum(i.value for i in inputs)
        self.merge_artifacts(inputs, exclude=["value", "attempt_seen"])
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.totals = [i.row_total for i in inputs]
        self.merge_artifacts(inputs, exclude=["row", "row_total"])
        self.next(self.fragile)

    @catch(var="problem")
    @step
    def fragile(self):
        self.before_failure = True
        raise KeyError("this step always fails")
        self.next(self.end)  # never reached; @catch goes on to end

    @step
    def end(self):
        self.params = [self.alpha, self.rounds, self.config, self.notes]
        print("caught", type(self.problem).__name__, self.problem.type)


if __name__ == "__main__":
    FeaturesFlow()
