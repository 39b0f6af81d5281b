"""@catch with and without print_exception."""

from ledgerflow import FlowSpec, catch, step


class QuietCatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.quiet, self.loud)

    @catch(var="error", print_exception=False)
    @step
    def quiet(self):
        raise ValueError("kept quiet")
        self.next(self.join)  # never reached; @catch goes on to join

    @catch(var="error")
    @step
    def loud(self):
        raise ValueError("said aloud")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.caught = sorted(i.error.type for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


QuietCatchFlow()
