# Two branches meet at a step declared without join = TRUE (issue 30: the advice was
# Python's, "def join(self, inputs)").
library(ledgerflow)
ledgerflow("NoJoin") %>%
  step(step = "start", next_step = c("a", "b")) %>%
  step(step = "a", next_step = "meet") %>%
  step(step = "b", next_step = "meet") %>%
  step(step = "meet", r_function = function(self) self$met <- TRUE, next_step = "end") %>%
  step(step = "end") %>%
  run()
