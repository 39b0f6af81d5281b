# current() in an R step: the task's facts, as a Python step's `current`.
library(ledgerflow)
ledgerflow("CurrentFacts") %>%
  step(step = "start", r_function = function(self) {
    self$seen <- paste(current("flow_name"), current("step_name"), current("retry_count"),
                       current("username"), sep = "|")
    self$run_id <- current()$run_id
  }, next_step = "end") %>%
  step(step = "end") %>%
  run()
