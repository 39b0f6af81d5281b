# A step that misreads an artifact's name: an error naming the artifacts, not NULL.
library(ledgerflow)
ledgerflow("Misspelled") %>%
  step(step = "start", r_function = function(self) { self$total <- 10 }, next_step = "end") %>%
  step(step = "end", r_function = function(self) { self$doubled <- self$totl * 2 }) %>%
  run()
