# R values over 64 KiB that compress well (issue 30: they came back as NULL).
library(ledgerflow)
start <- function(self) {
  self$ints <- 1:100000
  self$zeros <- rep(0, 1e5)
  self$words <- rep("ledger", 20000)
}
end <- function(self) {
  self$total <- sum(self$ints)
  self$zero_count <- length(self$zeros)
  self$word_count <- length(self$words)
}
ledgerflow("BigValuesFlow") %>%
  step(step = "start", r_function = start, next_step = "end") %>%
  step(step = "end", r_function = end) %>%
  run()
