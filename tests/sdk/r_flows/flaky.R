# A step that fails on its first attempt (@retry runs it again), and a step that fails
# while FAIL_B is set (for resume).
library(ledgerflow)
ledgerflow("Flaky") %>%
  step(step = "start", r_function = function(self) {
    self$started <- "yes"
  }, next_step = "shaky") %>%
  step(step = "shaky", r_function = function(self) {
    marker <- file.path(Sys.getenv("FLAKY_DIR"), "tried")
    if (!file.exists(marker)) {
      file.create(marker)
      stop("the first attempt fails")
    }
    self$attempts_needed <- 2
  }, next_step = "b", retry(times = 2, minutes_between_retries = 0)) %>%
  step(step = "b", r_function = function(self) {
    if (nzchar(Sys.getenv("FAIL_B"))) helper_that_fails()
    self$done <- paste(self$started, "and done")
  }, next_step = "end") %>%
  step(step = "end") %>%
  run()

helper_that_fails <- function() deeper_helper("b cannot go on")
deeper_helper <- function(why) stop(why)
