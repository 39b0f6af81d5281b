# A flow run from an R session (read with source(), R -e, a console): its steps use
# objects the session made before (`bonus`, set by the test) and a helper defined
# here; the runtime has none of the session, so run() must hand them over.
library(ledgerflow)
add_bonus <- function(x) x + bonus
ledgerflow("SessionFlow") %>%
  step(step = "start", r_function = function(self) {
    self$total <- add_bonus(2)
  }, next_step = "end") %>%
  step(step = "end", r_function = function(self) {
    self$doubled <- self$total * 2
  }) %>%
  run()
cat("run() returned\n")
