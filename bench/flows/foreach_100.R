# bench/r_vs_python.py: a foreach of --count trivial R tasks (the Python twin: foreach_100.py).
library(ledgerflow)
ledgerflow("ForeachR") %>%
  parameter("count", default = 100L) %>%
  step(step = "start", r_function = function(self) self$items <- seq_len(self$count),
       next_step = "work", foreach = "items") %>%
  step(step = "work", r_function = function(self) self$y <- self$input * 2,
       next_step = "join") %>%
  step(step = "join", r_function = function(self, inputs) {
    self$total <- sum(gather_inputs(inputs, "y"))
  }, join = TRUE, next_step = "end") %>%
  step(step = "end") %>%
  run()
