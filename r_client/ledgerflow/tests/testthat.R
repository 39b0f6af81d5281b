library(testthat)
library(ledgerflow)

test_check("ledgerflow")
