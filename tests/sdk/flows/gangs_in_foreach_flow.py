"""A @parallel gang inside a foreach: each item starts a gang of two nodes of its own,
joined per item, then the items are joined."""

from ledgerflow import FlowSpec, current, parallel, resources, step


class GangsInForeachFlow(FlowSpec):
    @step
    def start(self):
        self.models = ["small", "large"]
        self.next(self.fit, foreach="models")

    @step
    def fit(self):
        self.model = self.input
        self.next(self.train, num_parallel=2)

    @resources(cpu=0.5, memory=1024)
    @parallel
    @step
    def train(self):
        self.node = (self.model, current.parallel.node_index, current.parallel.num_nodes)
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.nodes = [i.node for i in inputs]
        self.next(self.join)

    @step
    def join(self, inputs):
        self.all_nodes = [node for i in inputs for node in i.nodes]
        self.next(self.end)

    @step
    def end(self):
        print(self.all_nodes)


if __name__ == "__main__":
    GangsInForeachFlow()
