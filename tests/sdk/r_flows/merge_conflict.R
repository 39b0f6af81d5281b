# merge_artifacts() over inputs that disagree: an error (it used to merge nothing and
# go on, as any failure of the runtime's functions R calls read as NULL).
library(ledgerflow)
ledgerflow("MergeConflict") %>%
  step(step = "start", next_step = c("a", "b")) %>%
  step(step = "a", r_function = function(self) { self$x <- 1 }, next_step = "join") %>%
  step(step = "b", r_function = function(self) { self$x <- 2 }, next_step = "join") %>%
  step(step = "join", r_function = function(self, inputs) {
    merge_artifacts(self, inputs)
    self$merged <- "yes"
  }, join = TRUE, next_step = "end") %>%
  step(step = "end") %>%
  run()
