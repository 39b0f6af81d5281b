# Long numeric vectors and data.frames of numbers (issue 30's speed goals): stored as
# their columns' memory, not R's serialization; read back exactly in the next R step
# and by the R client, and as the README's table says in Python. Beside them, values
# that look alike but are stored as R's serialization (a classed frame, a short vector,
# character columns), and a long list that the R client reads from the datastore's file.
library(ledgerflow)
long_values <- function() {
  n <- 20000L
  list(
    doubles = c(rep(1.5, n), NA, NaN, Inf, -Inf, -0),
    ints = c(seq_len(n), NA, -5L),
    sequence = seq_len(n),
    flags = rep(c(TRUE, FALSE, NA), 5000),
    named = stats::setNames(as.numeric(seq_len(n)), paste0("n", seq_len(n))),
    frame = data.frame(x = c(rep(0.5, n - 1), NA), k = c(seq_len(n - 1), NA),
                       f = c(rep(TRUE, n - 1), NA), nan = c(NaN, rep(2, n - 2), NA)),
    classed = structure(data.frame(x = as.numeric(seq_len(n))), class = c("mine", "data.frame")),
    labelled = data.frame(x = as.numeric(seq_len(n)), row.names = paste0("r", seq_len(n))),
    words = data.frame(x = as.numeric(seq_len(n)), w = rep("a", n)),
    short = c(1.5, NA, NaN),
    zeros = numeric(n),
    attributed = structure(as.numeric(seq_len(n)), units = "m"),
    listed = as.list(seq_len(50000))
  )
}
ledgerflow("LongValues") %>%
  step(step = "start", r_function = function(self) {
    made <- long_values()
    for (name in names(made)) assign(name, made[[name]], envir = self)
  }, next_step = "end") %>%
  step(step = "end", r_function = function(self) {
    made <- long_values()
    same <- vapply(names(made), function(name) identical(get(name, envir = self), made[[name]]),
                   logical(1))
    self$not_identical <- names(made)[!same]
    self$na_kinds <- c(is.na(self$doubles[20001]) && !is.nan(self$doubles[20001]),
                       is.nan(self$doubles[20002]), is.na(self$ints[20001]),
                       is.na(self$flags[3]), is.na(self$frame$x[20000]))
  }) %>%
  run()
