# A data.frame with NA in every column, a factor, Dates and POSIXct, for Python to read.
library(ledgerflow)
ledgerflow("TypedFrame") %>%
  step(step = "start", r_function = function(self) {
    self$frame <- data.frame(
      number = c(1.5, NA, 3),
      count = c(1L, NA, 3L),
      flag = c(TRUE, NA, FALSE),
      word = c("a", NA, "c"),
      kind = factor(c("low", NA, "high"), levels = c("low", "high")),
      day = as.Date(c("2026-11-27", NA, "2026-01-01")),
      at = as.POSIXct(c("2026-11-27 09:30:00", NA, "2026-01-01 00:00:00"), tz = "UTC"),
      stringsAsFactors = FALSE
    )
    self$named <- list(a = 1, b = "two", c = c(TRUE, FALSE))
    self$model <- lm(dist ~ speed, data = cars)
  }, next_step = "end") %>%
  step(step = "end", r_function = function(self) {
    self$same_model <- identical(coef(self$model), coef(lm(dist ~ speed, data = cars)))
  }) %>%
  run()
