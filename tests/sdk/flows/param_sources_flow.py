"""Where a parameter's value comes from, as in Metaflow: the command line, else an
environment variable LEDGERFLOW_RUN_<NAME>, else the default, which may be a function
of the run's context; and lists split on a separator."""

import os

from ledgerflow import FlowSpec, Parameter, step


def owner_default(context):
    if os.environ.get("BREAK_THE_DEFAULT"):
        raise RuntimeError("the directory is down")
    return f"{context.user_name} runs {context.flow_name} ({context.parameter_name})"


class ParamSourcesFlow(FlowSpec):
    region = Parameter("region", default="eu", help="The market.")
    labels = Parameter("labels", default="a,b", separator=",", help="Labels, comma-separated.")
    sizes = Parameter("sizes", type=int, default="1,2", separator=",")
    owner = Parameter("owner", default=owner_default)

    @step
    def start(self):
        self.seen = dict(region=self.region, labels=self.labels, sizes=self.sizes,
                         owner=self.owner)  # fmt: skip
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ParamSourcesFlow()
