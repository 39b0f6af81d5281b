#' A step decorator
#'
#' Decorators change how a step runs; pass them to [step()] after its arguments. The
#' shorthands [resources()], [retry()], [catch()] and [timeout()] make the common ones.
#'
#' @param name The decorator: `"resources"`, `"retry"`, `"catch"`, `"timeout"` or
#'   `"environment"`.
#' @param ... Its options, as the Python decorator of the same name takes them.
#' @return A decorator.
#' @examples
#' # An environment variable for the step's code, as Python's @environment sets it.
#' flow <- ledgerflow("Greeting") %>%
#'   step(step = "start", r_function = function(self) self$who <- Sys.getenv("WHO"),
#'        next_step = "end", decorator("environment", vars = list(WHO = "world"))) %>%
#'   step(step = "end")
#' flow$steps$start$decorators[[1]]$options
#' if (interactive()) {
#'   run(flow)
#' }
#' @export
decorator <- function(name, ...) {
  known <- c("resources", "retry", "catch", "timeout", "environment")
  if (!(is.character(name) && length(name) == 1 && name %in% known)) {
    stop(sprintf("unknown decorator %s: use one of %s", deparse(name)[1],
                 paste(known, collapse = ", ")), call. = FALSE)
  }
  structure(list(name = name, options = list(...)), class = "ledgerflow_decorator")
}

#' The resources a step needs
#'
#' @param cpu CPU cores.
#' @param memory Memory in MB.
#' @param gpu GPUs.
#' @param image A container image to run the step in (remote runs).
#' @return A decorator for [step()].
#' @examples
#' flow <- ledgerflow("Big") %>%
#'   step(step = "start", r_function = function(self) self$n <- length(numeric(1e6)),
#'        next_step = "end", resources(cpu = 2, memory = 8192)) %>%
#'   step(step = "end")
#' if (interactive()) {
#'   run(flow)
#' }
#' @export
resources <- function(cpu = 1, memory = 4096, gpu = 0, image = "") {
  decorator("resources", cpu = cpu, memory = memory, gpu = gpu, image = image)
}

#' Run a failing step again
#'
#' @param times How many more attempts.
#' @param minutes_between_retries Minutes to wait before each, on executors (`run --remote`);
#'   a local run retries at once, as Metaflow's local runtime does.
#' @return A decorator for [step()].
#' @examples
#' # Fails one time in two; three more attempts make a failed run unlikely.
#' flow <- ledgerflow("Flaky") %>%
#'   step(step = "start", r_function = function(self) {
#'     if (runif(1) < 0.5) stop("unlucky")
#'     self$ok <- TRUE
#'   }, next_step = "end", retry(times = 3, minutes_between_retries = 0)) %>%
#'   step(step = "end")
#' if (interactive()) {
#'   run(flow)
#' }
#' @export
retry <- function(times = 3, minutes_between_retries = 2) {
  decorator("retry", times = times, minutes_between_retries = minutes_between_retries)
}

#' Let the flow go on when a step fails for good
#'
#' With `var = "err"`, the next steps read the error as `self$err` (in a join,
#' `inputs$a$err`): an R error condition that also holds its type and traceback
#' (`conditionMessage(self$err)` or `self$err$message`, `self$err$type`,
#' `self$err$traceback`; `stop(self$err)` raises it again), as a Python step reads a
#' `CaughtException`. When the step did not fail, `self$err` is `NULL`.
#'
#' @param var An artifact to store the error in.
#' @param print_exception Whether to print the error.
#' @return A decorator for [step()].
#' @examples
#' flow <- ledgerflow("Careful") %>%
#'   step(step = "start", r_function = function(self) stop("no data"),
#'        next_step = "end", catch(var = "err")) %>%
#'   step(step = "end", r_function = function(self) {
#'     if (!is.null(self$err)) message("start failed: ", conditionMessage(self$err))
#'   })
#' if (interactive()) {
#'   run(flow)  # succeeds; end's stderr: "start failed: no data (in start(self))"
#' }
#' @export
catch <- function(var = NULL, print_exception = TRUE) {
  decorator("catch", var = var, print_exception = print_exception)
}

#' Fail an attempt that runs too long
#'
#' @param seconds,minutes,hours The time allowed (added up).
#' @return A decorator for [step()].
#' @examples
#' flow <- ledgerflow("Patient") %>%
#'   step(step = "start", r_function = function(self) Sys.sleep(1),
#'        next_step = "end", timeout(minutes = 1, seconds = 30)) %>%
#'   step(step = "end")
#' if (interactive()) {
#'   run(flow)
#' }
#' @export
timeout <- function(seconds = 0, minutes = 0, hours = 0) {
  decorator("timeout", seconds = seconds, minutes = minutes, hours = hours)
}
