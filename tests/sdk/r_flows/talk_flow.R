# The talk's R flow, as written there (with ledgerflow for metaflow).
library(ledgerflow)
start <- function(self) { self$x <- 0 }
a <- function(self) { self$x <- self$x + 2 }
b <- function(self) { self$x <- self$x + 3 }
join <- function(self, inputs) { self$out <- max(gather_inputs(inputs, "x")) }
ledgerflow("MyFlow") %>%
  step(step = "start", r_function = start, next_step = c("a", "b")) %>%
  step(step = "a", r_function = a, next_step = "join") %>%
  step(step = "b", r_function = b, next_step = "join") %>%
  step(step = "join", r_function = join, join = TRUE, next_step = "end") %>%
  step(step = "end") %>%
  run()
