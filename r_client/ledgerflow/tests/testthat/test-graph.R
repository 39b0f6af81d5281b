noop <- function(self) NULL

talk_flow <- function() {
  ledgerflow("MyFlow") %>%
    step(step = "start", r_function = noop, next_step = c("a", "b")) %>%
    step(step = "a", r_function = noop, next_step = "join") %>%
    step(step = "b", r_function = noop, next_step = "join") %>%
    step(step = "join", r_function = function(self, inputs) NULL, join = TRUE,
         next_step = "end") %>%
    step(step = "end")
}

test_that("the talk's flow passes the graph checks", {
  expect_true(ledgerflow:::check_graph(talk_flow()))
})

test_that("an unknown next_step names the step, the name and the steps there are", {
  flow <- ledgerflow("MyFlow") %>%
    step(step = "start", r_function = noop, next_step = "joni") %>%
    step(step = "end")
  expect_error(ledgerflow:::check_graph(flow),
               "step 'start': next_step 'joni' is not a step of MyFlow \\(its steps: start, end\\)")
})

test_that("r_function must be a function", {
  expect_error(ledgerflow("F") %>% step(step = "start", r_function = "start"),
               "step 'start': r_function must be a function such as function\\(self\\)")
})

test_that("names must be identifiers", {
  expect_error(ledgerflow("My Flow"), "the flow name 'My Flow' is not a valid name")
  expect_error(ledgerflow("F") %>% step(step = "my.step"), "a step name 'my.step' is not a valid name")
  expect_error(ledgerflow("F") %>% parameter("2x"), "a parameter name '2x' is not a valid name")
})

test_that("a foreach that is never joined is refused", {
  flow <- ledgerflow("F") %>%
    step(step = "start", r_function = function(self) self$items <- 1:3,
         next_step = "work", foreach = "items") %>%
    step(step = "work", r_function = noop, next_step = "end") %>%
    step(step = "end")
  expect_error(ledgerflow:::check_graph(flow),
               "step 'start' starts a foreach over 'items' that is never joined")
})

test_that("start and end are required, and end has no next step", {
  expect_error(ledgerflow:::check_graph(ledgerflow("F") %>% step(step = "end")),
               "flow F has no 'start' step")
  flow <- ledgerflow("F") %>%
    step(step = "start", next_step = "end") %>%
    step(step = "end", next_step = "start")
  expect_error(ledgerflow:::check_graph(flow), "step 'end' ends the flow: remove its next_step")
})

test_that("a join's function takes self and inputs", {
  flow <- talk_flow()
  flow$steps$join$r_function <- function(self) NULL
  expect_error(ledgerflow:::check_graph(flow), "step 'join' is a join: its r_function takes \\(self, inputs\\)")
})

test_that("a step is added once and decorators are decorators", {
  flow <- ledgerflow("F") %>% step(step = "start", next_step = "end")
  expect_error(flow %>% step(step = "start"), "step 'start' is added twice")
  expect_error(flow %>% step(step = "end", r_function = NULL, next_step = NULL, foreach = NULL,
                             join = FALSE, list(memory = 1)),
               "pass decorators such as resources")
  expect_error(decorator("gpu"), "unknown decorator \"gpu\"")
})

test_that("decorators carry their options", {
  flow <- ledgerflow("F") %>%
    step(step = "start", next_step = "end", resources(memory = 512, cpu = 2), retry(times = 1),
         timeout(seconds = 5)) %>%
    step(step = "end")
  decorators <- flow$steps$start$decorators
  expect_equal(decorators[[1]]$name, "resources")
  expect_equal(decorators[[1]]$options$memory, 512)
  expect_equal(decorators[[2]]$options$times, 1)
  expect_equal(decorators[[3]]$name, "timeout")
  expect_false(flow$steps$start$join)
})

test_that("gather_inputs simplifies scalars and keeps anything else as a list", {
  one <- new.env(); assign("x", 2, envir = one); assign("df", data.frame(a = 1), envir = one)
  two <- new.env(); assign("x", 3, envir = two); assign("df", data.frame(a = 2), envir = two)
  inputs <- list(a = one, b = two)
  expect_equal(max(gather_inputs(inputs, "x")), 3)
  expect_equal(do.call(rbind, gather_inputs(inputs, "df"))$a, c(1, 2))
})

test_that("run() outside Rscript runs the session's flow, and inside source() too", {
  expect_null(ledgerflow:::script_path())
  file <- tempfile(fileext = ".R")
  writeLines("inside <- ledgerflow:::inside_source()", file)
  read <- new.env()
  source(file, local = read)
  expect_true(read$inside)
})

test_that("a session's flow is saved with the global objects its steps use", {
  assign("lf_test_bonus", 40, envir = globalenv())
  assign("lf_test_add", eval(quote(function(x) x + lf_test_bonus), globalenv()),
         envir = globalenv())
  assign("lf_test_unused", 1, envir = globalenv())
  start <- eval(quote(function(self) self$total <- lf_test_add(2)), globalenv())
  flow <- ledgerflow("Saved") %>%
    step(step = "start", r_function = start, next_step = "end") %>%
    step(step = "end")
  saved <- readRDS(ledgerflow:::save_session_flow(flow))
  rm(lf_test_bonus, lf_test_add, lf_test_unused, envir = globalenv())
  expect_setequal(names(saved$globals), c("lf_test_add", "lf_test_bonus"))
  expect_equal(saved$globals$lf_test_bonus, 40)
  expect_false("methods" %in% saved$packages)
  expect_equal(names(saved$flow$steps), c("start", "end"))
})

test_that("the flow spec the runtime reads names steps, decorators and parameters", {
  flow <- talk_flow() %>% parameter("alpha", default = 0.5, help = "a rate")
  spec <- jsonlite::fromJSON(ledgerflow:::flow_spec_json(flow, "/tmp/myflow.R"),
                             simplifyVector = FALSE)
  expect_equal(spec$name, "MyFlow")
  expect_equal(unlist(spec$steps[[1]]$next_step), c("a", "b"))
  expect_true(spec$steps[[4]]$join)
  expect_equal(spec$parameters[[1]]$default, 0.5)
  expect_equal(spec$parameters[[1]]$type, "numeric")
})

test_that("a step that several steps reach must be a join, and says so in R", {
  flow <- talk_flow()
  flow$steps$join$join <- FALSE
  flow$steps$join$r_function <- noop
  expect_error(ledgerflow:::check_graph(flow), paste0(
    "step 'join' is reached from a, b: make it a join, as in step(step = \"join\", ",
    "r_function = function(self, inputs) { ... }, join = TRUE)"), fixed = TRUE)
  unjoined <- ledgerflow("F") %>%
    step(step = "start", r_function = noop, next_step = c("a", "b")) %>%
    step(step = "a", r_function = noop, next_step = "end") %>%
    step(step = "b", r_function = noop, next_step = "end") %>%
    step(step = "end")
  expect_error(ledgerflow:::check_graph(unjoined), paste0(
    "step 'end' is reached from a, b: join them first: add a step with join = TRUE that ",
    "goes to \"end\""), fixed = TRUE)
})
