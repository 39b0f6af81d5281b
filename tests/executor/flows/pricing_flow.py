"""A production flow of the talk's second half: a project's flow on a daily schedule,
deployed, fired, backfilled, and a failed production run resumed on a laptop."""

import os

from ledgerflow import FlowSpec, Parameter, current, project, schedule, step


@project(name="pricing")
@schedule(cron="0 3 * * *", timezone="Europe/Helsinki")
class PricingFlow(FlowSpec):
    region = Parameter("region", default="eu", help="Which market to price.")
    fail_at = Parameter("fail_at", default="", help="A step that fails (until FIXED is set).")

    @step
    def start(self):
        self.facts = dict(
            project=current.project_name,
            branch=current.branch_name,
            production=current.is_production,
            flow=current.project_flow_name,
            namespace=current.namespace,
        )
        trigger = current.trigger
        self.trigger = trigger and dict(
            kind=trigger.kind,
            deployment=trigger.deployment,
            day=trigger.scheduled_at.date().isoformat(),
        )
        self.next(self.price)

    @step
    def price(self):
        if self.fail_at == "price" and not os.environ.get("FIXED"):
            raise ValueError("yesterday's prices are broken")
        self.result = f"{self.region}-priced"
        # The partition this run prices: the due time it stands for, in its local day.
        self.day = current.trigger and current.trigger.scheduled_at.date().isoformat()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PricingFlow()
