# NULL as an artifact's value (issue 30: `self$x <- NULL` failed the step): a new
# artifact set to NULL, and a loaded one set to NULL, read in the next steps.
library(ledgerflow)
ledgerflow("NullValues") %>%
  step(step = "start", r_function = function(self) {
    self$nothing <- NULL
    self$was <- 5
  }, next_step = "middle") %>%
  step(step = "middle", r_function = function(self) {
    self$saw_nothing <- exists("nothing", envir = self) && is.null(self$nothing)
    self$was <- NULL
  }, next_step = "end") %>%
  step(step = "end", r_function = function(self) {
    self$both_null <- is.null(self$nothing) && is.null(self$was)
  }) %>%
  run()
