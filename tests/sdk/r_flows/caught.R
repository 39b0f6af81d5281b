# catch(var = "err"): the next steps read the caught error (issue 30: it read as NULL),
# and NULL where the step did not fail.
library(ledgerflow)
ledgerflow("Caught") %>%
  step(step = "start", r_function = function(self) { self$x <- 1 },
       next_step = c("bad", "good")) %>%
  step(step = "bad", r_function = function(self) stop("no data for ", self$x),
       next_step = "inspect", catch(var = "err", print_exception = FALSE)) %>%
  step(step = "inspect", r_function = function(self) {
    err <- self$err
    self$seen <- paste(class(err)[1], err$type, conditionMessage(err), sep = "|")
    self$has_stack <- grepl("R call stack", err$traceback, fixed = TRUE)
    self$raised_again <- tryCatch(stop(err), error = function(e) conditionMessage(e))
    self$kept <- err
  }, next_step = "join") %>%
  step(step = "good", r_function = function(self) { self$y <- 2 },
       next_step = "join", catch(var = "err")) %>%
  step(step = "join", r_function = function(self, inputs) {
    self$good_err_null <- is.null(inputs$good$err)
    self$bad_err <- conditionMessage(inputs$inspect$err)
  }, join = TRUE, next_step = "end") %>%
  step(step = "end") %>%
  run()
