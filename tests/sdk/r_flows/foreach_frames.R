# A foreach over a character vector; each branch builds a data.frame and the join
# binds them. A parameter scales the numbers.
library(ledgerflow)
ledgerflow("ForeachFrames") %>%
  parameter("scale", default = 1, help = "multiplies every n") %>%
  step(step = "start", r_function = function(self) {
    self$names <- c("ada", "grace", "edsger")
  }, next_step = "count", foreach = "names") %>%
  step(step = "count", r_function = function(self) {
    print(paste("counting", self$input))
    message("to stderr: ", self$input)
    if (self$input == "ada") warning("a short name")
    self$frame <- data.frame(name = self$input, n = nchar(self$input) * self$scale)
  }, next_step = "bind") %>%
  step(step = "bind", r_function = function(self, inputs) {
    self$frame <- do.call(rbind, gather_inputs(inputs, "frame"))
    self$total <- sum(self$frame$n)
  }, join = TRUE, next_step = "end") %>%
  step(step = "end") %>%
  run()
