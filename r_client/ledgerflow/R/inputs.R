#' The values of one artifact across a join's inputs
#'
#' @param inputs The join step's `inputs`.
#' @param item The artifact's name.
#' @return An atomic vector when every input's value is a single number, string or
#'   logical (so `max(gather_inputs(inputs, "x"))` works), else a list.
#' @examples
#' # A join's inputs hold one `self` for each branch (or foreach task), by step name.
#' inputs <- list(a = list2env(list(x = 2)), b = list2env(list(x = 3)))
#' gather_inputs(inputs, "x")
#' max(gather_inputs(inputs, "x"))
#'
#' # In a flow: the join of a foreach binds its tasks' data.frames.
#' flow <- ledgerflow("Lengths") %>%
#'   step(step = "start", r_function = function(self) {
#'     self$names <- c("ada", "grace", "edsger")
#'   }, next_step = "count", foreach = "names") %>%
#'   step(step = "count", r_function = function(self) {
#'     self$frame <- data.frame(name = self$input, n = nchar(self$input))
#'   }, next_step = "bind") %>%
#'   step(step = "bind", r_function = function(self, inputs) {
#'     self$frame <- do.call(rbind, gather_inputs(inputs, "frame"))
#'   }, join = TRUE, next_step = "end") %>%
#'   step(step = "end")
#' if (interactive()) {
#'   run(flow)
#' }
#' @export
gather_inputs <- function(inputs, item) {
  values <- lapply(unname(inputs), function(input) get(item, envir = input))
  simple <- length(values) > 0 && all(vapply(values, function(v) {
    is.atomic(v) && length(v) == 1 && is.null(attributes(v))
  }, logical(1)))
  if (simple) unlist(values) else values
}

#' Carry a join's agreeing artifacts over
#'
#' In a join, copies to `self` every artifact on which all inputs agree. An artifact
#' whose value differs between inputs must be set on `self` first, or excluded.
#'
#' @param self The join's `self`.
#' @param inputs The join's `inputs`.
#' @param exclude Artifacts not to merge.
#' @param include Only these artifacts.
#' @return `self`, invisibly.
#' @examples
#' # `source` is the same in both branches and merges; `x` differs, so the join sets it.
#' flow <- ledgerflow("Merged") %>%
#'   step(step = "start", r_function = function(self) {
#'     self$source <- "survey"
#'     self$x <- 0
#'   }, next_step = c("a", "b")) %>%
#'   step(step = "a", r_function = function(self) self$x <- 2, next_step = "join") %>%
#'   step(step = "b", r_function = function(self) self$x <- 3, next_step = "join") %>%
#'   step(step = "join", r_function = function(self, inputs) {
#'     self$x <- sum(gather_inputs(inputs, "x"))
#'     merge_artifacts(self, inputs)
#'   }, join = TRUE, next_step = "end") %>%
#'   step(step = "end", r_function = function(self) print(c(self$source, self$x)))
#' if (interactive()) {
#'   run(flow)
#' }
#' @export
merge_artifacts <- function(self, inputs, exclude = character(), include = character()) {
  merge <- attr(self, "ledgerflow_merge")
  if (is.null(merge)) {
    stop("merge_artifacts(self, inputs) works inside a join step only", call. = FALSE)
  }
  merge(as.character(exclude), as.character(include), changed_names(self))
  invisible(self)
}

#' @importFrom magrittr %>%
#' @export
magrittr::`%>%`
