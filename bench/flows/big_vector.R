# bench/r_vs_python.py: an R step stores rep(1.5, 1e7), the next reads it. The first
# notes when its function returned (the store is what follows, up to the task's end);
# the second how long reading took, measured in R.
library(ledgerflow)
ledgerflow("BigVectorR") %>%
  step(step = "start", r_function = function(self) {
    self$big <- rep(1.5, 1e7)
    self$returned_at <- as.numeric(Sys.time())
  }, next_step = "end") %>%
  step(step = "end", r_function = function(self) {
    started <- Sys.time()
    n <- length(self$big)
    self$read_seconds <- as.numeric(Sys.time() - started, units = "secs")
    stopifnot(n == 1e7, sum(self$big) == 1.5e7)
  }) %>%
  run()
