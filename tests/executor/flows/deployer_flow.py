"""ledgerflow.Deployer's flow: a parameter and what fired the run, kept as artifacts."""

from ledgerflow import FlowSpec, Parameter, current, step


class DeployerFlow(FlowSpec):
    greeting = Parameter("greeting", default="hello", help="Kept as the artifact `said`.")
    count = Parameter("count", default=1, help="A number: how JSON values arrive.")

    @step
    def start(self):
        self.said = f"{self.greeting} x{self.count}"
        trigger = current.trigger
        self.kind = trigger.kind if trigger else None
        self.deployment = trigger.deployment if trigger else None
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DeployerFlow()
