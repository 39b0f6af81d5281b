# Every kind of R value r_client/README.md's round-trip table lists, for Python to read
# (issue 30: row names, NaN, repeated names, matrices, arrays and raw were lost), and
# read again in R, where each comes back exactly.
library(ledgerflow)
values <- function() {
  list(
    numbers = c(1.5, NA, NaN, Inf, -Inf),
    ints = c(1L, NA, 3L),
    flags = c(TRUE, NA, FALSE),
    words = c("a", NA, "c"),
    one = 2.5,
    named = c(x = 1, y = 2),
    levels = factor(c("low", NA, "high"), levels = c("low", "high")),
    days = as.Date(c("2026-11-27", NA)),
    stamps = as.POSIXct(c("2026-11-27 09:30:00", NA), tz = "America/New_York"),
    settings = list(alpha = 0.5, name = "x"),
    repeated = list(a = 1, a = 2, b = "three"),
    unnamed = list(1, "two"),
    matrix = matrix(1:6, nrow = 2),
    holes = matrix(c(1, NA, NaN, 4), nrow = 2),
    labelled = matrix(c(1.5, 2, 3, 4), nrow = 2, dimnames = list(c("r1", "r2"), c("x", "y"))),
    cube = array(1:24, dim = c(2, 3, 4)),
    named_cube = array(1:8, dim = c(2, 2, 2), dimnames = list(c("a", "b"), NULL, NULL)),
    counts = table(c("a", "a", "b")),
    bytes = as.raw(c(0, 1, 255)),
    complex = c(1+2i, NA, complex(real = NaN, imaginary = 1)),
    complex_matrix = matrix(c(1+1i, NA, 3, 4i), nrow = 2),
    frame = data.frame(n = c(1, NaN, NA), k = c(1L, 2L, NA), row.names = c("ada", "bob", "cy")),
    plain_frame = data.frame(n = 1:2),
    nothing = NULL,
    square = function(x) x^2
  )
}
ledgerflow("Conversions") %>%
  step(step = "start", r_function = function(self) {
    made <- values()
    for (name in names(made)) assign(name, made[[name]], envir = self)
    self$nothing <- NULL
  }, next_step = "end") %>%
  step(step = "end", r_function = function(self) {
    made <- values()
    same <- vapply(names(made), function(name) {
      identical(get(name, envir = self), made[[name]], ignore.environment = TRUE)
    }, logical(1))
    self$all_identical <- all(same)
    self$not_identical <- names(made)[!same]
    self$squared <- self$square(3)
  }) %>%
  run()
