#' Start a flow
#'
#' The first link of a flow: add steps with [step()] and parameters with
#' [parameter()], then [run()] it.
#'
#' @param name The flow's name, a valid identifier such as `"MyFlow"`.
#' @return A flow object.
#' @examples
#' flow <- ledgerflow("MyFlow") %>%
#'   step(step = "start", r_function = function(self) self$x <- 1, next_step = "end") %>%
#'   step(step = "end")
#' if (interactive()) {
#'   run(flow)
#' }
#' @export
ledgerflow <- function(name) {
  check_identifier(name, "the flow name")
  structure(list(name = name, steps = list(), parameters = list()),
            class = "ledgerflow_flow")
}

#' Add a step to a flow
#'
#' @param flow A flow from [ledgerflow()].
#' @param step The step's name: `"start"` begins the flow and `"end"` ends it.
#' @param r_function The step's code, `function(self)`, or `function(self, inputs)` for
#'   a join. `self` holds the task's artifacts (`self$x <- 1` sets one); `self$input`
#'   is the task's item in a foreach. Leave it out for a step that does nothing.
#' @param next_step The step(s) that follow: one name, several for a branch.
#' @param foreach The name of an artifact (a vector or list) to run `next_step` once
#'   for each of its items.
#' @param join `TRUE` for a step that joins branches or a foreach.
#' @param ... Decorators: [resources()], [retry()], [catch()], [timeout()] or
#'   [decorator()].
#' @return The flow, with the step added.
#' @examples
#' # The talk's flow: a branch to a and b, and the join that reads both.
#' start <- function(self) self$x <- 0
#' a <- function(self) self$x <- self$x + 2
#' b <- function(self) self$x <- self$x + 3
#' join <- function(self, inputs) self$out <- max(gather_inputs(inputs, "x"))
#' flow <- ledgerflow("MyFlow") %>%
#'   step(step = "start", r_function = start, next_step = c("a", "b")) %>%
#'   step(step = "a", r_function = a, next_step = "join") %>%
#'   step(step = "b", r_function = b, next_step = "join") %>%
#'   step(step = "join", r_function = join, join = TRUE, next_step = "end") %>%
#'   step(step = "end")
#' names(flow$steps)
#'
#' # A foreach: one `square` task for each item of `self$numbers`, retried on failure.
#' squares <- ledgerflow("Squares") %>%
#'   step(step = "start", r_function = function(self) self$numbers <- 1:4,
#'        next_step = "square", foreach = "numbers") %>%
#'   step(step = "square", r_function = function(self) self$sq <- self$input^2,
#'        next_step = "total", retry(times = 2)) %>%
#'   step(step = "total", r_function = function(self, inputs) {
#'     self$total <- sum(gather_inputs(inputs, "sq"))
#'   }, join = TRUE, next_step = "end") %>%
#'   step(step = "end")
#' if (interactive()) {
#'   run(flow)     # needs Ledgerflow's Python package: see ?run
#'   run(squares)
#' }
#' @export
step <- function(flow, step, r_function = NULL, next_step = NULL, foreach = NULL,
                 join = FALSE, ...) {
  check_flow(flow)
  check_identifier(step, "a step name")
  # Decorators given without names land in the first free arguments: move them.
  decorators <- list(...)
  for (slot in c("join", "foreach", "next_step", "r_function")) {
    value <- get(slot)
    if (inherits(value, "ledgerflow_decorator")) {
      decorators <- c(list(value), decorators)
      assign(slot, if (slot == "join") FALSE else NULL)
    }
  }
  if (!is.null(flow$steps[[step]])) {
    stop(sprintf("step '%s' is added twice: give each step its own name", step),
         call. = FALSE)
  }
  if (!is.null(r_function) && !is.function(r_function)) {
    stop(sprintf(paste0("step '%s': r_function must be a function such as ",
                        "function(self) { ... }, not %s"), step, class(r_function)[1]),
         call. = FALSE)
  }
  if (!is.null(next_step) && (!is.character(next_step) || length(next_step) == 0)) {
    stop(sprintf("step '%s': next_step takes step names, e.g. next_step = \"end\"", step),
         call. = FALSE)
  }
  if (!is.null(foreach) && (!is.character(foreach) || length(foreach) != 1)) {
    stop(sprintf("step '%s': foreach takes the name of an artifact, e.g. foreach = \"items\"",
                 step), call. = FALSE)
  }
  for (item in decorators) {
    if (!inherits(item, "ledgerflow_decorator")) {
      stop(sprintf(paste0("step '%s': pass decorators such as resources(memory = 1024) ",
                          "or retry(times = 2) after the step's arguments"), step),
           call. = FALSE)
    }
  }
  flow$steps[[step]] <- list(name = step, r_function = r_function, next_step = next_step,
                             foreach = foreach, join = isTRUE(join),
                             decorators = decorators)
  flow
}

#' Add a parameter to a flow
#'
#' Parameters are set on the command line (`Rscript myflow.R run --alpha 0.5`) and
#' read in every step as `self$alpha`.
#'
#' @param flow A flow from [ledgerflow()].
#' @param name The parameter's name, a valid identifier.
#' @param default Its value when the command line does not set it; its type (number,
#'   integer, string, logical) is the parameter's type.
#' @param help What it means, shown by `Rscript myflow.R run --help`.
#' @param required `TRUE` when the command line must set it.
#' @return The flow, with the parameter added.
#' @examples
#' flow <- ledgerflow("Scaled") %>%
#'   parameter("alpha", default = 0.5, help = "how much to scale by") %>%
#'   step(step = "start", r_function = function(self) self$y <- 10 * self$alpha,
#'        next_step = "end") %>%
#'   step(step = "end")
#' str(flow$parameters$alpha)
#' if (interactive()) {
#'   run(flow, "run", "--alpha", "0.2")  # from a script: Rscript scaled.R run --alpha 0.2
#' }
#' @export
parameter <- function(flow, name, default = NULL, help = "", required = FALSE) {
  check_flow(flow)
  check_identifier(name, "a parameter name")
  if (!is.null(default) && !(is.atomic(default) && length(default) == 1)) {
    stop(sprintf("parameter '%s': the default must be one number, string or logical", name),
         call. = FALSE)
  }
  flow$parameters[[name]] <- list(name = name, default = default, help = help,
                                  required = isTRUE(required))
  flow
}

check_flow <- function(flow) {
  if (!inherits(flow, "ledgerflow_flow")) {
    stop("start a flow with ledgerflow(\"MyFlow\") and add steps with %>%", call. = FALSE)
  }
}

check_identifier <- function(value, what) {
  ok <- is.character(value) && length(value) == 1 && !is.na(value) &&
    grepl("^[A-Za-z_][A-Za-z0-9_]*$", value)
  if (!ok) {
    shown <- if (is.character(value)) paste0("'", value, "'") else deparse(value)[1]
    stop(sprintf(paste0("%s %s is not a valid name: use letters, digits and _, ",
                        "starting with a letter"), what, shown), call. = FALSE)
  }
}
