"""Metaflow's rules inside steps: Parameters and class constants are read-only,
foreach_stack() gives each frame's value, merge_artifacts() checks everything before it
merges anything and works only in joins, a step can open its own task at once, and
@catch's variable is None when nothing failed."""

from ledgerflow import FlowSpec, MergeArtifactsException, Parameter, Task, catch, current, step


class HabitsFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)
    LIMIT = 10

    @step
    def start(self):
        self.opened = Task(current.pathspec).pathspec  # the first line of the first step
        self.refusals = []
        for name, value in (("alpha", 5), ("LIMIT", 11)):
            try:
                setattr(self, name, value)
            except AttributeError as error:
                self.refusals.append(str(error))
        try:
            self.merge_artifacts([])
        except MergeArtifactsException as error:
            self.outside_join = str(error)
        self.items = ["p", "q"]
        self.next(self.item, foreach="items")

    @catch(var="err")
    @step
    def item(self):
        self.stack = self.foreach_stack()
        self.same = "shared"
        self.differs = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        try:
            self.merge_artifacts(inputs)
        except MergeArtifactsException as error:
            self.merge_error = str(error)
        self.merged_anything = hasattr(self, "same") or hasattr(self, "items")
        self.stacks = [i.stack for i in inputs]
        self.errs = [i.err for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("alpha", self.alpha, "LIMIT", self.LIMIT)


HabitsFlow()
