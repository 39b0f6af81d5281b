library(ledgerflow)
ledgerflow("BadNext") %>%
  step(step = "start", r_function = function(self) NULL, next_step = "joni") %>%
  step(step = "end") %>%
  run()
