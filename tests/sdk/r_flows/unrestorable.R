# Values another process cannot use (a connection, an external pointer in a list) and a
# foreach over a data.frame: each is said on the task's stderr (issue 30).
library(ledgerflow)
ledgerflow("Unrestorable") %>%
  step(step = "start", r_function = function(self) {
    self$con <- file(tempfile(), "w")
    self$holder <- list(pointer = getNamespaceInfo("stats", "DLLs")[["stats"]][["info"]])
    self$fine <- 1
    self$table <- data.frame(a = 1:3, b = 4:6)
  }, next_step = "each", foreach = "table") %>%
  step(step = "each", r_function = function(self) {
    self$total <- sum(self$input)
  }, next_step = "join") %>%
  step(step = "join", r_function = function(self, inputs) {
    self$totals <- unlist(gather_inputs(inputs, "total"))
  }, join = TRUE, next_step = "end") %>%
  step(step = "end") %>%
  run()
