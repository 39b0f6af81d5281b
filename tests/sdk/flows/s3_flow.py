"""A step writes with S3(run=self), the next step reads it back."""

from ledgerflow import S3, FlowSpec, step


class S3Flow(FlowSpec):
    @step
    def start(self):
        with S3(run=self) as s3:
            self.url = s3.put("greeting.txt", "hello from start")
        self.next(self.end)

    @step
    def end(self):
        with S3(run=self) as s3:
            self.read_back = s3.get("greeting.txt").text


S3Flow()
