"""A flow that asks, as Metaflow users' flows do, where its metadata goes."""

from ledgerflow import FlowSpec, get_metadata, get_namespace, step

print("module sees", get_metadata())


class MetadataFlow(FlowSpec):
    @step
    def start(self):
        self.where = get_metadata()
        self.namespace = get_namespace()
        self.next(self.end)

    @step
    def end(self):
        print("step sees", self.where)


MetadataFlow()
