#' The values of one artifact across a join's inputs
#'
#' @param inputs The join step's `inputs`.
#' @param item The artifact's name.
#' @return An atomic vector when every input's value is a single number, string or
#'   logical (so `max(gather_inputs(inputs, "x"))` works), else a list.
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
